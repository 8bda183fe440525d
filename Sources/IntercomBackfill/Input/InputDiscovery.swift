#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One input to read: a file or standard input, named the way reports and rejects will name it.
public struct InputFile: Sendable, Hashable {
    /// As the user gave it; a folder's file = the folder as given joined with its relative path
    /// ("logs/" + "a/b.gz" -> "logs/a/b.gz", no doubled slash); "-" for stdin.
    public var displayPath: String
    /// The path to open; nil for stdin.
    public var path: String?
    /// File size when known (progress), nil for stdin and pipes.
    public var size: Int64?
    public var isStandardInput: Bool { path == nil }

    public init(displayPath: String, path: String?, size: Int64?) {
        self.displayPath = displayPath
        self.path = path
        self.size = size
    }

    /// Standard input, named "-".
    public static let standardInput = InputFile(displayPath: "-", path: nil, size: nil)
}

/// Turns command-line arguments into the ordered list of inputs to read.
public enum InputDiscovery {
    /// Expands the arguments, in the order given: "-" is stdin, a file is itself, a folder is every
    /// regular file below it (recursive) in byte order of the path relative to the folder (as
    /// `LC_ALL=C sort`).
    ///
    /// Inside a folder, names that start with "." (files and folders) are skipped: they are
    /// editor swap files, `.DS_Store`, `.git` and partial downloads, not archives. Symlinks to
    /// files are followed (a dangling one is listed, so opening it reports it); symlinked folders
    /// are not descended, so there are no cycles. Pipes, sockets and devices inside a folder are
    /// skipped. A folder named directly as an argument is read even when it is a symlink. The same
    /// file named twice is listed twice.
    ///
    /// A path that does not exist throws `InputError(.notFound)` naming it, before any work starts,
    /// as does a folder that cannot be listed. "-" given twice is `.standardInputRepeated`.
    public static func expand(_ arguments: [String]) throws -> [InputFile] {
        var inputs: [InputFile] = []
        var sawStandardInput = false
        for argument in arguments {
            if argument == "-" {
                guard !sawStandardInput else {
                    throw InputError(
                        code: .standardInputRepeated, source: "-",
                        message: "standard input is named more than once and can be read only once")
                }
                sawStandardInput = true
                inputs.append(.standardInput)
                continue
            }
            var info = stat()
            guard stat(argument, &info) == 0 else {
                throw InputError.fromOpen(errno: errno, call: "stat", source: argument)
            }
            if info.st_mode & S_IFMT == S_IFDIR {
                inputs += try filesBelow(folder: argument)
            } else {
                let size = info.st_mode & S_IFMT == S_IFREG ? Int64(info.st_size) : nil
                inputs.append(InputFile(displayPath: argument, path: argument, size: size))
            }
        }
        return inputs
    }

    private struct Found {
        var relativePath: [UInt8]
        var size: Int64?
    }

    private static func filesBelow(folder: String) throws -> [InputFile] {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw InputError.fromOpen(errno: errno, call: "open", source: folder)
        }
        var found: [Found] = []
        try walk(descriptor, relative: [], folder: folder, into: &found)
        found.sort { $0.relativePath.lexicographicallyPrecedes($1.relativePath) }

        return try found.map { entry in
            guard let relative = String(validating: entry.relativePath, as: UTF8.self) else {
                throw InputError(
                    code: .invalidFileName, source: joined(folder, String(decoding: entry.relativePath, as: UTF8.self)),
                    message: "the file name is not valid UTF-8")
            }
            let path = joined(folder, relative)
            return InputFile(displayPath: path, path: path, size: entry.size)
        }
    }

    /// Lists the folder open on `descriptor` (and takes ownership of it), recursing into real subfolders.
    private static func walk(_ descriptor: Int32, relative: [UInt8], folder: String, into found: inout [Found]) throws {
        func failure(_ call: String, _ code: Int32) -> InputError {
            let shown = relative.isEmpty ? folder : joined(folder, String(decoding: relative, as: UTF8.self))
            return InputError.fromOpen(errno: code, call: call, source: shown)
        }
        guard let directory = fdopendir(descriptor) else {
            let code = errno
            _ = close(descriptor)
            throw failure("fdopendir", code)
        }
        defer { closedir(directory) }
        let directoryFD = dirfd(directory)
        let nameOffset = MemoryLayout<dirent>.offset(of: \.d_name)!

        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw failure("readdir", errno) }
                return
            }
            let name = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            guard name[0] != 0x2E else { continue }  // a name starting with "." is skipped
            let nameBytes = UnsafeRawBufferPointer(start: name, count: strlen(name))
            let childRelative = relative.isEmpty ? Array(nameBytes) : relative + [0x2F] + nameBytes

            var info = stat()
            guard fstatat(directoryFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw failure("fstatat", errno)
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(directoryFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    throw InputError.fromOpen(
                        errno: errno, call: "openat",
                        source: joined(folder, String(decoding: childRelative, as: UTF8.self)))
                }
                try walk(child, relative: childRelative, folder: folder, into: &found)
            case S_IFREG:
                found.append(Found(relativePath: childRelative, size: Int64(info.st_size)))
            case S_IFLNK:
                var target = stat()
                if fstatat(directoryFD, name, &target, 0) != 0 {
                    found.append(Found(relativePath: childRelative, size: nil))
                } else if target.st_mode & S_IFMT == S_IFREG {
                    found.append(Found(relativePath: childRelative, size: Int64(target.st_size)))
                }
            default:
                continue
            }
        }
    }

    private static func joined(_ folder: String, _ relative: String) -> String {
        folder.hasSuffix("/") ? folder + relative : folder + "/" + relative
    }
}
