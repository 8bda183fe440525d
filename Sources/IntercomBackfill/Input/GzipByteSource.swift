import CZlib

/// Inflates a gzip stream from another source, straight into the caller's buffer.
///
/// Concatenated members (`cat a.gz b.gz`) are read as one stream. After the last member, zero
/// bytes (padding added by some archive and tape tools) are ignored; anything else is
/// ``InputError/Code/trailingGarbage``. A stream cut inside a member is
/// ``InputError/Code/truncatedGzip`` and damaged data ``InputError/Code/corruptGzip``; either is
/// thrown only after every byte inflated before the damage has been returned. Memory is constant:
/// one input buffer and zlib's window, whatever the size of the file.
public final class GzipByteSource: ByteSource {
    /// The input as the user named it, for errors.
    public let displayPath: String

    private let upstream: any ByteSource
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawBufferPointer
    /// Compressed bytes received from `upstream`; the inflate position is this minus `avail_in`.
    private var compressedReceived: Int64 = 0
    private var decompressedProduced: Int64 = 0
    private var upstreamEnded = false
    private var phase: Phase = .inMember
    private var failure: (any Error)?

    private enum Phase {
        /// Inflating a member (the first one starts here; zlib checks its header).
        case inMember
        /// A member ended; the next bytes decide: another member, zero padding, the end, or garbage.
        case betweenMembers
        /// Zero padding after the last member; only zeros or the end may follow.
        case padding
        case finished
    }

    /// Wraps `upstream`, whose bytes must start with a gzip header; `inputBufferSize` is how much
    /// compressed data is read from it at a time.
    public init(wrapping upstream: any ByteSource, displayPath: String, inputBufferSize: Int = 128 << 10) throws {
        precondition(inputBufferSize >= 2, "the input buffer must hold at least a gzip magic number")
        self.upstream = upstream
        self.displayPath = displayPath
        self.input = .allocate(byteCount: inputBufferSize, alignment: 16)
        self.stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 16: the largest window, gzip wrapper only (the caller saw the gzip magic).
        let status = czlib_inflateInit2(stream, 15 + 16)
        guard status == Z_OK else {
            stream.deallocate()
            input.deallocate()
            throw InputError(
                code: .unreadable, source: displayPath,
                message: "zlib could not start inflating (\(Self.zlibStatusName(status)); out of memory?)")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
        input.deallocate()
    }

    public var rawBytesRead: Int64 { compressedReceived - Int64(stream.pointee.avail_in) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failure { throw failure }
        guard let out = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let capacity = min(buffer.count, Int(UInt32.max))
        stream.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(capacity)
        var produced: Int { capacity - Int(stream.pointee.avail_out) }

        do {
            while true {
                switch phase {
                case .finished:
                    return account(produced)
                case .inMember:
                    if stream.pointee.avail_in == 0 {
                        // Hand out what is ready before blocking on the pipe, and before reporting a cut.
                        if produced > 0 { return account(produced) }
                        if try !refill(keeping: 0) {
                            throw damage(.truncatedGzip, "the gzip data ends in the middle of a member", produced: produced)
                        }
                    }
                    let status = inflate(stream, Z_NO_FLUSH)
                    switch status {
                    case Z_OK:
                        if stream.pointee.avail_out == 0 { return account(produced) }
                    case Z_STREAM_END:
                        phase = .betweenMembers
                        if stream.pointee.avail_out == 0 { return account(produced) }
                    case Z_BUF_ERROR:
                        // No progress possible. With input left and room to write this cannot
                        // happen in a sound stream; never retry it, so no loop can spin.
                        if stream.pointee.avail_out == 0 { return account(produced) }
                        if stream.pointee.avail_in != 0 {
                            throw damage(.corruptGzip, "zlib could make no progress on the gzip data", produced: produced)
                        }
                    case Z_MEM_ERROR:
                        throw damage(.unreadable, "zlib ran out of memory", produced: produced)
                    default:
                        // Z_DATA_ERROR (bad header, bad data, checksum or length mismatch), Z_NEED_DICT, Z_STREAM_ERROR.
                        let detail = stream.pointee.msg.map { String(cString: $0) } ?? Self.zlibStatusName(status)
                        throw damage(.corruptGzip, "the gzip data is corrupt (\(detail))", produced: produced)
                    }
                case .betweenMembers:
                    if stream.pointee.avail_in < 2 && !upstreamEnded {
                        if produced > 0 { return account(produced) }
                        _ = try refill(keeping: Int(stream.pointee.avail_in))
                        continue
                    }
                    guard let next = stream.pointee.next_in, stream.pointee.avail_in > 0 else {
                        phase = .finished
                        continue
                    }
                    if next[0] == 0 {
                        phase = .padding
                    } else if stream.pointee.avail_in >= 2 && next[0] == 0x1f && next[1] == 0x8b {
                        inflateReset(stream)
                        phase = .inMember
                    } else {
                        throw damage(.trailingGarbage, "unexpected bytes after the last gzip member", produced: produced)
                    }
                case .padding:
                    if stream.pointee.avail_in == 0 {
                        if produced > 0 { return account(produced) }
                        if try !refill(keeping: 0) {
                            phase = .finished
                            continue
                        }
                    }
                    let count = Int(stream.pointee.avail_in)
                    let bytes = UnsafeRawBufferPointer(start: stream.pointee.next_in, count: count)
                    let zeros = bytes.firstIndex(where: { $0 != 0 }) ?? count
                    stream.pointee.next_in += zeros
                    stream.pointee.avail_in -= UInt32(zeros)
                    if zeros < count {
                        throw damage(
                            .trailingGarbage, "unexpected bytes after the zero padding that follows the last gzip member",
                            produced: produced)
                    }
                }
            }
        } catch {
            failure = error
            phase = .finished
            if produced > 0 { return account(produced) }
            throw error
        }
    }

    private func account(_ produced: Int) -> Int {
        decompressedProduced += Int64(produced)
        return produced
    }

    /// Moves the `keeping` unread bytes to the front of the input buffer and reads more after them.
    /// Returns false at the end of the upstream input.
    private func refill(keeping: Int) throws -> Bool {
        guard !upstreamEnded else { return false }
        let base = input.baseAddress!
        if keeping > 0, let next = stream.pointee.next_in, UnsafeMutableRawPointer(next) != base {
            base.copyMemory(from: next, byteCount: keeping)
        }
        let n = try upstream.read(into: UnsafeMutableRawBufferPointer(rebasing: input[keeping...]))
        compressedReceived += Int64(n)
        stream.pointee.next_in = base.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = UInt32(keeping + n)
        if n == 0 { upstreamEnded = true }
        return n > 0
    }

    /// An error at the current inflate position; `produced` bytes of the caller's buffer are already written.
    private func damage(_ code: InputError.Code, _ message: String, produced: Int) -> InputError {
        InputError(
            code: code, source: displayPath, message: message,
            compressedOffset: rawBytesRead, uncompressedOffset: decompressedProduced + Int64(produced))
    }

    private static func zlibStatusName(_ status: Int32) -> String {
        switch status {
        case Z_STREAM_ERROR: "Z_STREAM_ERROR"
        case Z_DATA_ERROR: "Z_DATA_ERROR"
        case Z_MEM_ERROR: "Z_MEM_ERROR"
        case Z_BUF_ERROR: "Z_BUF_ERROR"
        case Z_NEED_DICT: "Z_NEED_DICT"
        case Z_VERSION_ERROR: "Z_VERSION_ERROR"
        default: "zlib status \(status)"
        }
    }
}
