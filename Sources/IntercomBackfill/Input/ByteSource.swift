#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A stream of (decompressed) input bytes, read chunk by chunk into caller-owned memory.
///
/// Pulling into the caller's buffer keeps memory constant and lets the line splitter work on the
/// bytes where they land. A source is owned and read by one task at a time.
public protocol ByteSource: AnyObject {
    /// Fills `buffer` from its start; returns how many bytes were written, 0 at the end of input.
    /// On damage it first returns every good byte decoded before the damage, then the next call throws `InputError`.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Raw bytes consumed from the underlying file or pipe so far (compressed bytes for gzip), for progress.
    var rawBytesRead: Int64 { get }
}

/// Reads a file, a pipe or standard input through a POSIX file descriptor, with `read(2)`.
public final class FileByteSource: ByteSource {
    /// The input as the user named it, for errors.
    public let displayPath: String
    public private(set) var rawBytesRead: Int64 = 0

    private var fd: Int32
    private let ownsDescriptor: Bool
    /// Bytes read ahead by `peek` (at most a few), handed out before reading the descriptor again.
    private var peeked: [UInt8] = []
    private var failure: InputError?

    /// Opens `path` for reading; a folder, a missing file or a denied one throws ``InputError``.
    public init(path: String, displayPath: String) throws {
        var descriptor: Int32
        repeat {
            descriptor = systemOpen(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else {
            throw InputError.fromOpen(errno: errno, call: "open", source: displayPath)
        }
        var info = stat()
        if fstat(descriptor, &info) == 0 {
            let kind = info.st_mode & S_IFMT
            if kind == S_IFDIR {
                _ = systemClose(descriptor)
                throw InputError(code: .isDirectory, source: displayPath, message: "is a folder, not a file")
            }
            if kind == S_IFREG {
                _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
            }
        }
        self.fd = descriptor
        self.ownsDescriptor = true
        self.displayPath = displayPath
    }

    /// Reads an already open descriptor, such as 0 for standard input; it is closed only if `closeWhenDone`.
    public init(fileDescriptor: Int32, displayPath: String, closeWhenDone: Bool) {
        self.fd = fileDescriptor
        self.ownsDescriptor = closeWhenDone
        self.displayPath = displayPath
    }

    deinit {
        close()
    }

    /// Releases the descriptor if this source opened it; reading afterwards returns end of input.
    public func close() {
        if fd >= 0 && ownsDescriptor {
            _ = systemClose(fd)
        }
        fd = -1
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failure { throw failure }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        if !peeked.isEmpty {
            let n = min(peeked.count, buffer.count)
            peeked.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: n) }
            peeked.removeFirst(n)
            rawBytesRead += Int64(n)
            return n
        }
        let n = try readDescriptor(base, buffer.count)
        rawBytesRead += Int64(n)
        return n
    }

    /// Reads ahead up to `count` bytes (fewer only at the end of input) without consuming them,
    /// so the format can be told from the first bytes even on a pipe that cannot seek.
    func peek(_ count: Int) throws -> [UInt8] {
        if let failure { throw failure }
        var scratch = [UInt8](repeating: 0, count: count)
        while peeked.count < count {
            let wanted = count - peeked.count
            let n = try scratch.withUnsafeMutableBytes { try readDescriptor($0.baseAddress!, wanted) }
            if n == 0 { break }
            peeked.append(contentsOf: scratch[0..<n])
        }
        return peeked
    }

    private func readDescriptor(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        guard fd >= 0 else { return 0 }
        while true {
            let n = systemRead(fd, base, count)
            if n >= 0 { return n }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                // A non-blocking standard input: wait until it is readable instead of spinning.
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&poller, 1, -1)
                continue
            case EISDIR:
                failure = InputError(
                    code: .isDirectory, source: displayPath, message: "is a folder, not a file",
                    cause: SystemCallError(systemCall: "read", errno: code))
            default:
                failure = InputError(
                    code: .unreadable, source: displayPath, message: "reading failed",
                    compressedOffset: rawBytesRead + Int64(peeked.count),
                    cause: SystemCallError(systemCall: "read", errno: code))
            }
            throw failure!
        }
    }
}

// File-scope names, so that the calls are not shadowed by `FileByteSource`'s own `read` and `close`.
private func systemOpen(_ path: String, _ flags: Int32) -> Int32 { InputDiscovery.openForReading(path, flags) }
private func systemRead(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, base, count) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
