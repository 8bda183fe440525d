#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `--record` NDJSON file: one accepted item a line, appended in acceptance order.
///
/// Only used under the engine's lock, so a plain descriptor is enough; each request's lines go
/// out in one write.
struct RecordFile: Sendable {
    let path: String
    private let descriptor: CInt

    /// Creates (or truncates) the file, so a record shows one sandbox run.
    init(path: String) throws(SandboxError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw SandboxError(
                .recordFileUnwritable,
                "cannot create the record file \(path): \(reason); check that its folder exists and is writable")
        }
        self.path = path
        self.descriptor = descriptor
    }

    /// Appends `text`; returns what went wrong, if anything.
    func append(_ text: String) -> String? {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { buffer -> String? in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                offset += written
            }
            return nil
        }
    }

    func closeFile() {
        _ = close(descriptor)
    }
}
