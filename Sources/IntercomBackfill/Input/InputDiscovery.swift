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
    /// regular file below it (at any depth) in byte order of the path relative to the folder (as
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
        try walk(descriptor, folder: folder, into: &found)
        // Last first, so that each name's bytes are freed as its path is made: a folder of
        // 100,000 files does not hold both lists whole.
        found.sort { $1.relativePath.lexicographicallyPrecedes($0.relativePath) }
        var inputs: [InputFile] = []
        inputs.reserveCapacity(found.count)
        while let entry = found.popLast() {
            guard let relative = String(validating: entry.relativePath, as: UTF8.self) else {
                throw InputError(
                    code: .invalidFileName, source: joined(folder, String(decoding: entry.relativePath, as: UTF8.self)),
                    message: "the file name is not valid UTF-8")
            }
            let path = joined(folder, relative)
            inputs.append(InputFile(displayPath: path, path: path, size: entry.size))
        }
        return inputs
    }

    /// A folder being walked: its name, its descriptor while one is needed (to open the
    /// subfolders still to walk), and those subfolders' names.
    private struct Level {
        var name: [UInt8]
        var descriptor: Int32
        var subfolders: [[UInt8]]
        /// Where its path ends in the walk's path buffer.
        var end: Int
    }

    /// Descriptors held open at most by the walk, whatever the depth or width of the tree.
    static let maxOpenLevels = 4

    /// Lists the folder open on `top` (and takes ownership of it) and every real subfolder below
    /// it, depth first, without recursion (a tree of any depth cannot exhaust the stack), with
    /// one path buffer (memory grows with the depth, not with its square) and with at most
    /// `maxOpenLevels` descriptors open: a folder is listed whole and closed before its
    /// subfolders are walked, unless a sibling still needs it; then it may be closed and opened
    /// again from the nearest open level above, one `openat` per level (a deep path is longer
    /// than `open` takes).
    private static func walk(_ top: Int32, folder: String, into found: inout [Found]) throws {
        var path: [UInt8] = []
        var stack = [Level(name: [], descriptor: top, subfolders: [], end: 0)]
        var open = 1
        defer { for level in stack where level.descriptor >= 0 { _ = close(level.descriptor) } }
        func release(_ index: Int) {
            guard stack[index].descriptor >= 0 else { return }
            _ = close(stack[index].descriptor)
            stack[index].descriptor = -1
            open -= 1
        }
        stack[0].subfolders = try list(top, relative: path, folder: folder, into: &found)
        while let last = stack.indices.last {
            guard let name = stack[last].subfolders.popLast() else {
                release(last)
                stack.removeLast()
                continue
            }
            path.removeSubrange(stack[last].end...)
            if !path.isEmpty { path.append(0x2F) }
            path += name
            if stack[last].descriptor < 0 {
                stack[last].descriptor = try reopen(stack, at: last, folder: folder, path: path)
                open += 1
            }
            let child = openFolder(at: stack[last].descriptor, name)
            guard child >= 0 else {
                throw InputError.fromOpen(
                    errno: errno, call: "openat", source: joined(folder, String(decoding: path, as: UTF8.self)))
            }
            // Nothing more to open from the parent: a chain of folders holds one descriptor.
            if stack[last].subfolders.isEmpty { release(last) }
            stack.append(Level(name: name, descriptor: child, subfolders: [], end: path.count))
            open += 1
            stack[stack.count - 1].subfolders = try list(child, relative: path, folder: folder, into: &found)
            if stack[stack.count - 1].subfolders.isEmpty { release(stack.count - 1) }
            // Too many levels still wait for their siblings: the shallowest let theirs go.
            var index = 0
            while open > maxOpenLevels, index < stack.count {
                release(index)
                index += 1
            }
        }
    }

    /// Opens level `index` again, from the nearest open level above it (or the top folder).
    private static func reopen(_ stack: [Level], at index: Int, folder: String, path: [UInt8]) throws -> Int32 {
        var base = index - 1
        while base >= 0, stack[base].descriptor < 0 { base -= 1 }
        var descriptor =
            base >= 0
            ? openat(stack[base].descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            : open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for level in stack[(max(0, base) + 1)...index] where descriptor >= 0 {
            let next = openFolder(at: descriptor, level.name)
            _ = close(descriptor)
            descriptor = next
        }
        guard descriptor >= 0 else {
            throw InputError.fromOpen(errno: errno, call: "openat", source: joined(folder, String(decoding: path, as: UTF8.self)))
        }
        return descriptor
    }

    /// `openat` of a subfolder by its raw name bytes (not necessarily UTF-8), never through a symlink.
    private static func openFolder(at descriptor: Int32, _ name: [UInt8]) -> Int32 {
        (name + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) {
                openat(descriptor, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
    }

    /// Lists the folder open on `descriptor` (which stays open): its files go to `found`, and the
    /// names of its real subfolders are returned.
    private static func list(_ descriptor: Int32, relative: [UInt8], folder: String, into found: inout [Found]) throws
        -> [[UInt8]]
    {
        func failure(_ call: String, _ code: Int32) -> InputError {
            let shown = relative.isEmpty ? folder : joined(folder, String(decoding: relative, as: UTF8.self))
            return InputError.fromOpen(errno: code, call: call, source: shown)
        }
        // fdopendir takes the descriptor it is given: list through a copy, so the caller's stays open.
        let copy = dup(descriptor)
        guard copy >= 0, let directory = fdopendir(copy) else {
            let code = errno
            if copy >= 0 { _ = close(copy) }
            throw failure("fdopendir", code)
        }
        defer { closedir(directory) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \.d_name)!
        var subfolders: [[UInt8]] = []

        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw failure("readdir", errno) }
                return subfolders
            }
            let name = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            guard name[0] != 0x2E else { continue }  // a name starting with "." is skipped
            let nameBytes = UnsafeRawBufferPointer(start: name, count: strlen(name))
            let childRelative = relative.isEmpty ? Array(nameBytes) : relative + [0x2F] + nameBytes

            var info = stat()
            guard fstatat(descriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw failure("fstatat", errno)
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                subfolders.append(Array(nameBytes))
            case S_IFREG:
                found.append(Found(relativePath: childRelative, size: Int64(info.st_size)))
            case S_IFLNK:
                var target = stat()
                if fstatat(descriptor, name, &target, 0) != 0 {
                    found.append(Found(relativePath: childRelative, size: nil))
                } else if target.st_mode & S_IFMT == S_IFREG {
                    found.append(Found(relativePath: childRelative, size: Int64(target.st_size)))
                }
            default:
                continue
            }
        }
    }

    /// `open(2)` for reading an input, also by a path longer than the kernel takes (a file deep
    /// in a tree the walk found): then one `openat` per folder on the way. The errno of a failure
    /// is kept for the caller.
    static func openForReading(_ path: String, _ flags: Int32) -> Int32 {
        let descriptor = open(path, flags)
        guard descriptor < 0, errno == ENAMETOOLONG else { return descriptor }
        let components = path.utf8.split(separator: 0x2F).map { Array($0) + [0] }
        guard let last = components.last else { return descriptor }
        var folder = open(path.hasPrefix("/") ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for component in components.dropLast() where folder >= 0 {
            let next = component.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { openat(folder, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            }
            let code = errno
            _ = close(folder)
            folder = next
            errno = code
        }
        guard folder >= 0 else { return -1 }
        let opened = last.withUnsafeBufferPointer {
            $0.withMemoryRebound(to: CChar.self) { openat(folder, $0.baseAddress!, flags) }
        }
        let code = errno
        _ = close(folder)
        errno = code
        return opened
    }

    private static func joined(_ folder: String, _ relative: String) -> String {
        folder.hasSuffix("/") ? folder + relative : folder + "/" + relative
    }
}
