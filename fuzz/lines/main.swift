// Fuzz target: LineSplitter, alone and behind GzipByteSource, on gzip streams the fuzzer builds
// and then damages.
//
// The input is a few parameter bytes and a plain text. The text is split into gzip members
// (system zlib, level chosen by the fuzzer), the stream is damaged at or after the start of a
// chosen member (cut, flipped byte, inserted or deleted bytes, trailing zeros or garbage), and
// read back through GzipByteSource in chunks of a chosen size. Checks: no trap; bounded work (a
// read that returns bytes returns at least one, and no more bytes come out than deflate can
// expand the stream to); every line whose terminator lies in the members before the damage comes
// out byte for byte as the reference split of the text gives it; an undamaged (or only
// zero-padded) stream reads to the end without error and yields every line.
import CZlib

@testable import IntercomBackfill

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLines(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard input.count >= 12 else { return 0 }
    let p = Array(input[0..<12])
    let text = Array(input[12...])

    let memberCount = 1 + Int(p[0] % 4)
    let level = Int32(p[1] % 10)
    let readSize = 1 + Int(p[2]) * 2  // 1...511 bytes per read of the consumer
    let upstreamReadSize = 1 + Int(p[3] % 64)  // how much the "file" hands out at a time
    let inputBufferSize = 2 + Int(p[4] % 200)  // GzipByteSource's compressed buffer
    let damage = Damage(rawValue: p[5] % 7)!
    let damagedMember = Int(p[6]) % memberCount
    let damageOffset = Int(p[7])
    let damageByte = p[8] | 1  // never zero: an XOR must change the byte, garbage must not be padding
    let maxLineBytes = p[9] == 0 ? 8 << 20 : Int(p[9] % 64) + 1
    let keptPrefixBytes = min(Int(p[10] % 64), maxLineBytes)
    let splitSeed = Int(p[11])

    // The plain path first: the splitter over the text in chunks of `readSize`.
    let expected = referenceLines(text, maxLineBytes: maxLineBytes, keptPrefixBytes: keptPrefixBytes)
    var splitter = LineSplitter(maxLineBytes: maxLineBytes, keptPrefixBytes: keptPrefixBytes)
    var plainLines: [Line] = []
    text.withUnsafeBytes { bytes in
        var start = 0
        while start < bytes.count {
            let end = min(start + readSize, bytes.count)
            splitter.consume(UnsafeRawBufferPointer(rebasing: bytes[start..<end])) { plainLines.append(Line($0)) }
            start = end
        }
    }
    splitter.finish { plainLines.append(Line($0)) }
    check(
        plainLines == expected.complete + expected.last, "plain text: lines differ", plainLines, expected.complete + expected.last
    )

    // Members: cut points chosen from the seed, in order (empty members allowed).
    var cuts = (1..<memberCount).map { k in text.count * ((splitSeed * 37 + k * 71) % 256) / 256 }
    cuts.sort()
    let bounds = [0] + cuts + [text.count]
    var stream: [UInt8] = []
    var memberStarts: [Int] = []
    for k in 0..<memberCount {
        memberStarts.append(stream.count)
        stream += gzipMember(Array(text[bounds[k]..<bounds[k + 1]]), level: level)
    }

    // The damage, at or after the start of `damagedMember`: everything before it is intact.
    var goodText = Array(text[0..<bounds[damagedMember]])
    let at = min(memberStarts[damagedMember] + damageOffset, stream.count)
    var expectClean = false
    switch damage {
    case .none:
        expectClean = true
        goodText = text
    case .cut:
        stream.removeSubrange(at...)
    case .flip:
        if at < stream.count { stream[at] ^= damageByte }
    case .insert:
        stream.insert(contentsOf: [damageByte, UInt8(truncatingIfNeeded: damageOffset), 0x8b], at: at)
    case .delete:
        stream.removeSubrange(at..<min(at + 1 + damageOffset % 5, stream.count))
    case .zeroPadding:
        expectClean = true
        goodText = text
        stream += [UInt8](repeating: 0, count: 1 + damageOffset % 9)
    case .trailingGarbage:
        goodText = text
        stream += [UInt8](repeating: 0, count: damageOffset % 3) + [damageByte]
    }
    let good = referenceLines(goodText, maxLineBytes: maxLineBytes, keptPrefixBytes: keptPrefixBytes)

    // Read it back.
    var lines: [Line] = []
    var failed = false
    var splitter2 = LineSplitter(maxLineBytes: maxLineBytes, keptPrefixBytes: keptPrefixBytes)
    let upstream = MemorySource(stream, readSize: upstreamReadSize)
    let gzip = try! GzipByteSource(wrapping: upstream, displayPath: "fuzz", inputBufferSize: inputBufferSize)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 1)
    defer { buffer.deallocate() }
    // Deflate expands at most about 1032:1; anything beyond is a loop or garbage out of nowhere.
    let outputLimit = 1032 * stream.count + 64
    var produced = 0
    while true {
        let n: Int
        do {
            n = try gzip.read(into: buffer)
        } catch {
            failed = true
            // Once failed, it stays failed: the next read throws again rather than inventing bytes.
            check((try? gzip.read(into: buffer)) == nil, "a read after an error did not throw again", [], [])
            break
        }
        if n == 0 { break }
        check(n <= readSize, "a read returned more bytes than asked for", [], [])
        produced += n
        check(produced <= outputLimit, "more output than the stream can hold: a loop?", [], [])
        splitter2.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { lines.append(Line($0)) }
    }
    if !failed {
        check((try? gzip.read(into: buffer)) == 0, "a read after the end returned bytes", [], [])
        splitter2.finish { lines.append(Line($0)) }
    }

    if expectClean {
        check(!failed, "an undamaged stream failed", lines, good.complete + good.last)
        check(lines == good.complete + good.last, "undamaged stream: lines differ", lines, good.complete + good.last)
    } else {
        let prefix = Array(lines.prefix(good.complete.count))
        check(prefix == good.complete, "lines before the damage differ", prefix, good.complete)
    }
    return 0
}

private enum Damage: UInt8 {
    case none, cut, flip, insert, delete, zeroPadding, trailingGarbage
}

/// What the splitter reports of one line, copied out of the callback.
private struct Line: Equatable, CustomStringConvertible {
    var bytes: [UInt8]
    var number: Int
    var endOffset: Int64
    var isTooLong: Bool
    var length: Int64

    init(bytes: [UInt8], number: Int, endOffset: Int64, isTooLong: Bool, length: Int64) {
        self.bytes = bytes
        self.number = number
        self.endOffset = endOffset
        self.isTooLong = isTooLong
        self.length = length
    }

    init(_ slice: LineSlice) {
        self.init(
            bytes: Array(slice.bytes), number: slice.number, endOffset: slice.endOffset, isTooLong: slice.isTooLong,
            length: slice.length)
    }

    var description: String {
        "#\(number) \(String(decoding: bytes, as: UTF8.self).debugDescription) end \(endOffset) long \(isTooLong) length \(length)"
    }
}

/// The text's lines as contract §2 defines them, split here independently: a BOM at the start
/// dropped, lines end at `\n`, a `\r` right before it dropped. `complete` are the terminated lines;
/// `last` is the unterminated rest, if any.
private func referenceLines(_ text: [UInt8], maxLineBytes: Int, keptPrefixBytes: Int) -> (complete: [Line], last: [Line]) {
    var start = text.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    var complete: [Line] = []
    func line(_ content: ArraySlice<UInt8>, end: Int) -> Line {
        var content = content
        let tooLong = content.count > maxLineBytes
        let length = Int64(content.count)
        if tooLong { content = content.prefix(keptPrefixBytes) }
        return Line(bytes: Array(content), number: complete.count + 1, endOffset: Int64(end), isTooLong: tooLong, length: length)
    }
    while let newline = text[start...].firstIndex(of: 0x0A) {
        var content = text[start..<newline]
        if content.last == 0x0D { content = content.dropLast() }
        complete.append(line(content, end: newline + 1))
        start = newline + 1
    }
    let last = start < text.count ? [line(text[start...], end: text.count)] : []
    return (complete, last)
}

/// One gzip member holding `plain`: zlib's `compress2` gives a zlib stream, whose deflate data
/// between its 2-byte header and 4-byte Adler-32 goes into a gzip header and CRC-32/size trailer
/// (deflateInit2 is a macro Swift cannot call).
private func gzipMember(_ plain: [UInt8], level: Int32) -> [UInt8] {
    var capacity = compressBound(uLong(plain.count))
    var zlib = [UInt8](repeating: 0, count: Int(capacity))
    // One spare byte, so an empty text still has an address to hand to zlib.
    let source = plain + [0]
    let status = compress2(&zlib, &capacity, source, uLong(plain.count), level)
    precondition(status == Z_OK, "compress2 failed: \(status)")
    let deflate = zlib[2..<(Int(capacity) - 4)]
    let crc = plain.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
    let size = UInt32(truncatingIfNeeded: plain.count)
    func littleEndian(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    return [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + deflate + littleEndian(crc) + littleEndian(size)
}

/// A file in memory that hands out at most `readSize` bytes per read, as a pipe may.
private final class MemorySource: ByteSource {
    let bytes: [UInt8]
    let readSize: Int
    var position = 0
    var rawBytesRead: Int64 { Int64(position) }

    init(_ bytes: [UInt8], readSize: Int) {
        self.bytes = bytes
        self.readSize = readSize
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, readSize, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

private func check(_ condition: Bool, _ message: String, _ actual: [Line], _ expected: [Line]) {
    guard !condition else { return }
    fatalError("lines: \(message)\n  got      \(actual.prefix(8))\n  expected \(expected.prefix(8))")
}
