/// Turns an ``InputFile`` into the bytes it holds, decompressing gzip when the data is gzip.
public enum InputOpener {
    /// Opens the file, or standard input for `-`, and detects gzip by its magic bytes (0x1f 0x8b),
    /// not by the file's name: archives are often renamed, and stdin has no name.
    /// An empty input is valid and reads as empty. Failures throw ``InputError``.
    public static func open(_ input: InputFile) throws -> any ByteSource {
        let file: FileByteSource
        if let path = input.path {
            file = try FileByteSource(path: path, displayPath: input.displayPath)
        } else {
            file = FileByteSource(fileDescriptor: 0, displayPath: input.displayPath, closeWhenDone: false)
        }
        // The peeked bytes stay inside `file` and are read again by whoever reads it next.
        let magic = try file.peek(2)
        if magic == [0x1f, 0x8b] {
            return try GzipByteSource(wrapping: file, displayPath: input.displayPath)
        }
        return file
    }
}
