#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif

/// Why an output (dry-run lines, rejects, report, state) could not be written.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var operation: String
    public var errno: Int32

    public var description: String {
        let reason = String(cString: strerror(errno))
        var hint = ""
        if errno == ENOSPC || errno == EDQUOT {
            hint = ": the disk is full; free space and run the same command again (the state is kept)"
        } else if errno == EACCES || errno == EPERM || errno == EROFS {
            hint = ": check the permissions of that path, or choose another with --state-dir/--out/--report"
        }
        return "cannot \(operation) \(path): \(reason)\(hint)"
    }
}

/// An append-only file (or stdout) with a write buffer, on a plain file descriptor: the output
/// side of the hot path, where `FileHandle` would add an allocation per write.
public final class BufferedFileWriter {
    public let path: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: [UInt8] = []
    private let capacity: Int

    /// Opens `path` for writing (`-` is stdout), truncating it unless `append`.
    public init(path: String, append: Bool = false, capacity: Int = 256 * 1024) throws {
        self.path = path
        self.capacity = capacity
        if path == "-" {
            fd = STDOUT_FILENO
            ownsDescriptor = false
        } else {
            let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC)
            let opened = open(path, flags, 0o644)
            guard opened >= 0 else { throw OutputError(path: path, operation: "open", errno: errno) }
            fd = opened
            ownsDescriptor = true
        }
        buffer.reserveCapacity(capacity)
    }

    deinit {
        if ownsDescriptor { _ = close(fd) }
    }

    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (raw) in try write(raw) }
    }

    public func write(_ string: String) throws {
        var copy = string
        try copy.withUTF8 { (utf8) in try write(UnsafeRawBufferPointer(utf8)) }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        // Write from the buffer itself and keep its storage: no copy, no new allocation.
        defer { buffer.removeAll(keepingCapacity: true) }
        try buffer.withUnsafeBytes { raw in try writeAll(raw) }
    }

    /// Flushes and fsyncs, so what was written survives a crash or a power cut.
    public func sync() throws {
        try flush()
        if ownsDescriptor, fsync(fd) != 0 { throw OutputError(path: path, operation: "sync", errno: errno) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputError(path: path, operation: "write to", errno: errno)
            }
            offset += n
        }
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// `mkdir -p`: creates `path` and its missing parents, with errno-precise errors.
public func createDirectories(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component + "/"
        if mkdir(prefix, 0o755) != 0, errno != EEXIST {
            throw OutputError(path: path, operation: "create the folder", errno: errno)
        }
    }
    var info = stat()
    guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
        throw OutputError(path: path, operation: "use as a folder", errno: ENOTDIR)
    }
}
