#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of an input, without its terminator (`\n` or `\r\n`) and, on line 1, without a UTF-8 BOM.
public struct LineSlice {
    /// The line's bytes; valid only inside the callback that received the slice.
    public let bytes: UnsafeRawBufferPointer
    /// 1-based line number in this input (blank lines count).
    public let number: Int
    /// Uncompressed offset of the line's first byte (after any BOM it is still the offset in the stream).
    public let byteOffset: Int64
    /// Uncompressed offset just past the line's terminator.
    public let endOffset: Int64
    /// Longer than `maxLineBytes`: `bytes` holds only the first `keptPrefixBytes`.
    public let isTooLong: Bool
    /// The full line length in bytes, without terminator.
    public let length: Int64

    public init(bytes: UnsafeRawBufferPointer, number: Int, byteOffset: Int64, endOffset: Int64, isTooLong: Bool, length: Int64) {
        self.bytes = bytes
        self.number = number
        self.byteOffset = byteOffset
        self.endOffset = endOffset
        self.isTooLong = isTooLong
        self.length = length
    }
}

/// Cuts a byte stream, fed in chunks of any size, into lines.
///
/// Every line is delivered, blank ones included, so line numbers match what `sed -n Np` shows.
/// Lines inside a chunk are handed out where they lie (no copy); only a line that straddles
/// chunks is assembled, in one reused carry buffer that never grows past `maxLineBytes`. A longer
/// line is not buffered: its first `keptPrefixBytes` are kept, the rest is skipped up to its
/// `\n`, and it is delivered once with `isTooLong`. `\r` is dropped only directly before `\n`,
/// also when the two arrive in different chunks; a UTF-8 BOM at the start of the stream is
/// skipped, also when split across chunks.
///
/// If `body` throws, the error propagates and the splitter must not be fed again.
public struct LineSplitter: Sendable {
    public let maxLineBytes: Int
    public let keptPrefixBytes: Int
    public private(set) var linesDelivered: Int = 0

    /// Offset just past the last delivered line (past the BOM, if one was skipped and no line was
    /// delivered yet): where reading would resume to see only lines not yet delivered.
    public var bytesConsumed: Int64 { lineStart }

    /// Offset of the first byte of the next chunk.
    private var streamOffset: Int64 = 0
    /// Offset of the first byte of the line being assembled (= end of the last delivered line).
    private var lineStart: Int64 = 0
    private var carry = CarryStorage()
    /// Bytes of the pending line held in `carry` (all of it, or its kept prefix once too long).
    private var carryCount = 0
    /// Bytes of the pending line seen so far, not counting a `pendingCR`.
    private var partialLength: Int64 = 0
    /// The previous chunk ended in `\r`: a terminator if the next byte is `\n`, else line data.
    private var pendingCR = false
    private var checkingBOM = true
    private var bomBytesMatched = 0

    private static let newline: UInt8 = 0x0A
    private static let carriageReturn: UInt8 = 0x0D
    private static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// `maxLineBytes` bounds the memory one line may take; `keptPrefixBytes` of a longer line are
    /// kept so a reject can still show how it starts.
    public init(maxLineBytes: Int = 8 << 20, keptPrefixBytes: Int = 1024) {
        precondition(maxLineBytes >= 1, "maxLineBytes must be positive")
        precondition(keptPrefixBytes >= 0 && keptPrefixBytes <= maxLineBytes, "keptPrefixBytes must be within 0...maxLineBytes")
        self.maxLineBytes = maxLineBytes
        self.keptPrefixBytes = keptPrefixBytes
    }

    /// A splitter that continues a stream at a line boundary (a resumed run): the next line is
    /// number `line + 1` and starts at `offset`; no BOM is looked for mid-stream.
    public init(resumingAfterLine line: Int, offset: Int64, maxLineBytes: Int = 8 << 20, keptPrefixBytes: Int = 1024) {
        self.init(maxLineBytes: maxLineBytes, keptPrefixBytes: keptPrefixBytes)
        linesDelivered = line
        streamOffset = offset
        lineStart = offset
        checkingBOM = offset == 0
    }

    /// The carry buffer's allocated size, for tests that check memory stays bounded.
    var carryCapacity: Int { carry.capacity }

    /// Feeds the next chunk of the stream; calls `body` for each complete line in order.
    public mutating func consume(_ chunk: UnsafeRawBufferPointer, _ body: (LineSlice) throws -> Void) rethrows {
        guard let base = chunk.baseAddress, chunk.count > 0 else { return }
        let count = chunk.count
        let chunkStart = streamOffset
        streamOffset += Int64(count)
        var index = 0

        if checkingBOM {
            index = skipByteOrderMark(base, count)
            if index == count { return }
        }

        // Finish the line left over from earlier chunks.
        if pendingCR {
            pendingCR = false
            if base.load(fromByteOffset: index, as: UInt8.self) == Self.newline {
                index += 1
                try deliverCarried(endOffset: chunkStart + Int64(index), body)
            } else {
                withUnsafeBytes(of: Self.carriageReturn) { append($0.baseAddress!, 1) }
            }
        }
        if partialLength > 0 {
            guard let found = memchr(base + index, Int32(Self.newline), count - index) else {
                appendTail(base + index, count - index)
                return
            }
            let newlineIndex = UnsafeRawPointer(found) - base
            var contentEnd = newlineIndex
            if contentEnd > index && base.load(fromByteOffset: contentEnd - 1, as: UInt8.self) == Self.carriageReturn {
                contentEnd -= 1
            }
            append(base + index, contentEnd - index)
            index = newlineIndex + 1
            try deliverCarried(endOffset: chunkStart + Int64(index), body)
        }

        // The hot loop: whole lines inside this chunk, delivered in place.
        while index < count, let found = memchr(base + index, Int32(Self.newline), count - index) {
            let newlineIndex = UnsafeRawPointer(found) - base
            var contentEnd = newlineIndex
            if contentEnd > index && base.load(fromByteOffset: contentEnd - 1, as: UInt8.self) == Self.carriageReturn {
                contentEnd -= 1
            }
            let length = contentEnd - index
            let isTooLong = length > maxLineBytes
            let start = lineStart
            let end = chunkStart + Int64(newlineIndex + 1)
            linesDelivered += 1
            lineStart = end
            try body(
                LineSlice(
                    bytes: UnsafeRawBufferPointer(start: base + index, count: isTooLong ? keptPrefixBytes : length),
                    number: linesDelivered, byteOffset: start, endOffset: end,
                    isTooLong: isTooLong, length: Int64(length)))
            index = newlineIndex + 1
        }
        if index < count {
            appendTail(base + index, count - index)
        }
    }

    /// The stream ended: delivers a last line that had no terminator (if any bytes are pending).
    public mutating func finish(_ body: (LineSlice) throws -> Void) rethrows {
        if checkingBOM {
            checkingBOM = false
            Self.byteOrderMark.withUnsafeBytes { append($0.baseAddress!, bomBytesMatched) }
        }
        if pendingCR {
            pendingCR = false
            withUnsafeBytes(of: Self.carriageReturn) { append($0.baseAddress!, 1) }
        }
        if partialLength > 0 {
            try deliverCarried(endOffset: streamOffset, body)
        }
    }

    /// Consumes the start of a BOM at the stream's start; returns the index of the first byte not consumed.
    /// A partial match that turns out not to be a BOM becomes the start of line 1.
    private mutating func skipByteOrderMark(_ base: UnsafeRawPointer, _ count: Int) -> Int {
        var index = 0
        while index < count {
            if base.load(fromByteOffset: index, as: UInt8.self) != Self.byteOrderMark[bomBytesMatched] {
                checkingBOM = false
                Self.byteOrderMark.withUnsafeBytes { append($0.baseAddress!, bomBytesMatched) }
                return index
            }
            index += 1
            bomBytesMatched += 1
            if bomBytesMatched == Self.byteOrderMark.count {
                checkingBOM = false
                lineStart = Int64(bomBytesMatched)
                return index
            }
        }
        return index
    }

    private mutating func deliverCarried(endOffset: Int64, _ body: (LineSlice) throws -> Void) rethrows {
        let slice = LineSlice(
            bytes: UnsafeRawBufferPointer(start: carry.base, count: carryCount),
            number: linesDelivered + 1, byteOffset: lineStart, endOffset: endOffset,
            isTooLong: partialLength > Int64(maxLineBytes), length: partialLength)
        linesDelivered += 1
        lineStart = endOffset
        carryCount = 0
        partialLength = 0
        try body(slice)
    }

    /// Adds the unterminated end of a chunk to the pending line; a final `\r` is held back until
    /// the next byte shows whether it ends the line.
    private mutating func appendTail(_ bytes: UnsafeRawPointer, _ count: Int) {
        if bytes.load(fromByteOffset: count - 1, as: UInt8.self) == Self.carriageReturn {
            append(bytes, count - 1)
            pendingCR = true
        } else {
            append(bytes, count)
        }
    }

    private mutating func append(_ bytes: UnsafeRawPointer, _ count: Int) {
        guard count > 0 else { return }
        let newLength = partialLength + Int64(count)
        defer { partialLength = newLength }
        if !isKnownUniquelyReferenced(&carry) {
            carry = carry.copy(keeping: carryCount)
        }
        if newLength > Int64(maxLineBytes) {
            // Too long: keep only its prefix; the rest is counted, not stored.
            carryCount = min(carryCount, keptPrefixBytes)
            let kept = min(keptPrefixBytes - carryCount, count)
            if kept > 0 {
                carry.reserve(keptPrefixBytes, keeping: carryCount, limit: maxLineBytes)
                (carry.base! + carryCount).copyMemory(from: bytes, byteCount: kept)
                carryCount += kept
            }
            return
        }
        carry.reserve(Int(newLength), keeping: carryCount, limit: maxLineBytes)
        (carry.base! + carryCount).copyMemory(from: bytes, byteCount: count)
        carryCount += count
    }
}

/// The carry buffer's memory, shared copy-on-write between copies of a `LineSplitter`.
private final class CarryStorage: @unchecked Sendable {
    // Unchecked: it is mutated only after `isKnownUniquelyReferenced`, like an Array's buffer.
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0

    deinit { base?.deallocate() }

    func copy(keeping count: Int) -> CarryStorage {
        let copy = CarryStorage()
        if capacity > 0 {
            copy.base = .allocate(byteCount: capacity, alignment: 16)
            copy.capacity = capacity
            if count > 0 { copy.base!.copyMemory(from: base!, byteCount: count) }
        }
        return copy
    }

    /// Makes room for `needed` bytes, growing geometrically but never past `limit`.
    func reserve(_ needed: Int, keeping count: Int, limit: Int) {
        guard needed > capacity else { return }
        let grown = min(max(needed, capacity * 2, 4096), limit)
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
        if count > 0 { newBase.copyMemory(from: base!, byteCount: count) }
        base?.deallocate()
        base = newBase
        capacity = grown
    }
}
