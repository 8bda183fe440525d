import XCTest

@testable import IntercomBackfill

/// A line as delivered, copied out of the callback.
struct Line: Equatable, CustomStringConvertible {
    var bytes: [UInt8]
    var number: Int
    var byteOffset: Int64
    var endOffset: Int64
    var isTooLong: Bool
    var length: Int64

    init(_ slice: LineSlice) {
        bytes = Array(slice.bytes)
        number = slice.number
        byteOffset = slice.byteOffset
        endOffset = slice.endOffset
        isTooLong = slice.isTooLong
        length = slice.length
    }

    init(_ text: String, number: Int, byteOffset: Int64, endOffset: Int64) {
        bytes = Array(text.utf8)
        self.number = number
        self.byteOffset = byteOffset
        self.endOffset = endOffset
        isTooLong = false
        length = Int64(bytes.count)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
    var description: String {
        "#\(number) \(byteOffset)..<\(endOffset) \(text.debugDescription)\(isTooLong ? " (too long: \(length))" : "")"
    }
}

/// Splits `bytes` fed in chunks of `chunkSize`, copying every line out; `observe` sees the
/// splitter after each chunk and after `finish`.
func splitLines(
    _ bytes: [UInt8], chunkSize: Int, splitter: LineSplitter = LineSplitter(),
    observe: (LineSplitter) -> Void = { _ in }
) -> [Line] {
    var splitter = splitter
    var lines: [Line] = []
    bytes.withUnsafeBytes { all in
        var start = 0
        while start < all.count {
            let end = min(start + chunkSize, all.count)
            splitter.consume(UnsafeRawBufferPointer(rebasing: all[start..<end])) { lines.append(Line($0)) }
            observe(splitter)
            start = end
        }
    }
    splitter.finish { lines.append(Line($0)) }
    observe(splitter)
    return lines
}

func splitLines(_ text: String, chunkSize: Int = 1 << 16) -> [Line] {
    splitLines(Array(text.utf8), chunkSize: chunkSize)
}

/// A deterministic pseudo-random generator, so a failing fuzz case can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
