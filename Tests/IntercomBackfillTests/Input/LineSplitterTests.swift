import XCTest

@testable import IntercomBackfill

final class LineSplitterTests: XCTestCase {
    func test_lines_emptyStreamGivesNoLines() {
        XCTAssertEqual(splitLines(""), [])
    }

    func test_lines_lfAndCrlfTerminatorsAreStripped() {
        XCTAssertEqual(splitLines("a\nbc\r\nd\n").map(\.text), ["a", "bc", "d"])
    }

    func test_lines_exactOffsetsAndNumbers() {
        let expected = [
            Line("{\"a\":1}", number: 1, byteOffset: 0, endOffset: 8),
            Line("", number: 2, byteOffset: 8, endOffset: 10),
            Line("  ", number: 3, byteOffset: 10, endOffset: 13),
            Line("xyz", number: 4, byteOffset: 13, endOffset: 18),
            Line("last", number: 5, byteOffset: 18, endOffset: 22),
        ]
        for chunkSize in [1, 2, 3, 7, 1 << 16] {
            XCTAssertEqual(
                splitLines("{\"a\":1}\n\r\n  \nxyz\r\nlast", chunkSize: chunkSize), expected, "chunk size \(chunkSize)")
        }
    }

    func test_lines_blankAndWhitespaceOnlyLinesAreDeliveredAndCounted() {
        let lines = splitLines("\n \n\t\r\n\nx\n")
        XCTAssertEqual(lines.map(\.text), ["", " ", "\t", "", "x"])
        XCTAssertEqual(lines.map(\.number), [1, 2, 3, 4, 5])
    }

    func test_lines_carriageReturnNotBeforeNewlineIsKept() {
        XCTAssertEqual(splitLines("a\rb\n\r\r\nc\r").map(\.text), ["a\rb", "\r", "c\r"])
        XCTAssertEqual(splitLines("a\rb\n\r\r\nc\r", chunkSize: 1).map(\.text), ["a\rb", "\r", "c\r"])
    }

    func test_lines_crSplitFromLfAcrossChunksIsOneTerminator() {
        for chunkSize in [1, 2, 4] {
            let lines = splitLines("abc\r\n\r\nxy\r\n", chunkSize: chunkSize)
            XCTAssertEqual(lines.map(\.text), ["abc", "", "xy"], "chunk size \(chunkSize)")
            XCTAssertEqual(lines.map(\.endOffset), [5, 7, 11])
        }
    }

    func test_lines_crAtChunkEndFollowedByDataIsKept() {
        // "ab\r" | "c\n": the held-back \r is data.
        XCTAssertEqual(splitLines("ab\rc\n", chunkSize: 3).map(\.text), ["ab\rc"])
        XCTAssertEqual(splitLines("ab\rc\n", chunkSize: 3).map(\.length), [4])
    }

    func test_lines_bomAtStreamStartIsSkipped() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("{}\nx\n".utf8)
        let lines = splitLines(bytes, chunkSize: 1 << 16)
        XCTAssertEqual(lines.map(\.text), ["{}", "x"])
        XCTAssertEqual(lines.first?.byteOffset, 3, "the offset stays the stream offset")
        XCTAssertEqual(lines.first?.endOffset, 6)
    }

    func test_lines_bomSplitAcrossOneByteChunksIsSkipped() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("{}\nx".utf8)
        for chunkSize in [1, 2, 4] {
            XCTAssertEqual(
                splitLines(bytes, chunkSize: chunkSize), splitLines(bytes, chunkSize: 1 << 16), "chunk size \(chunkSize)")
        }
        XCTAssertEqual(splitLines(bytes, chunkSize: 1).map(\.text), ["{}", "x"])
    }

    func test_lines_bomAfterTheStreamStartIsData() {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let lines = splitLines(Array("a\n".utf8) + bom + Array("b\n".utf8), chunkSize: 1)
        XCTAssertEqual(lines.map(\.bytes), [Array("a".utf8), bom + Array("b".utf8)])
    }

    func test_lines_partialBomIsData() {
        for chunkSize in [1, 2, 16] {
            XCTAssertEqual(splitLines([0xEF, 0xBB, 0x78, 0x0A], chunkSize: chunkSize).map(\.bytes), [[0xEF, 0xBB, 0x78]])
            XCTAssertEqual(splitLines([0xEF, 0xBB], chunkSize: chunkSize).map(\.bytes), [[0xEF, 0xBB]])
            XCTAssertEqual(splitLines([0xEF, 0x0A], chunkSize: chunkSize).map(\.bytes), [[0xEF]])
        }
        XCTAssertEqual(splitLines([0xEF, 0xBB, 0xBF], chunkSize: 1), [], "a BOM alone is an empty stream")
    }

    func test_lines_lastLineWithoutTerminatorIsDelivered() {
        let lines = splitLines("a\nlast", chunkSize: 4)
        XCTAssertEqual(lines.last, Line("last", number: 2, byteOffset: 2, endOffset: 6))
    }

    func test_lines_straddlingChunkBoundariesGiveTheSameLinesWhateverTheChunkSize() {
        var generator = SeededGenerator(state: 7)
        var text = ""
        for index in 0..<3000 {
            let length = Int.random(in: 0...300, using: &generator)
            text += "{\"n\":\(index),\"pad\":\"" + String(repeating: "x", count: length) + "\"}"
            text += Bool.random(using: &generator) ? "\n" : "\r\n"
            if index % 97 == 0 { text += "\n   \r\n" }
        }
        text += "{\"tail\":true}"
        let reference = splitLines(text, chunkSize: text.utf8.count)
        XCTAssertEqual(reference.count, 3000 + 2 * 31 + 1)
        for chunkSize in [1, 7, 64 << 10] {
            XCTAssertEqual(splitLines(text, chunkSize: chunkSize), reference, "chunk size \(chunkSize)")
        }
    }

    func test_lines_tooLongLineKeepsItsPrefixAndLengthAndLaterLinesStayRight() {
        let longLength = 20_000_000
        var bytes = Array("first\n".utf8)
        bytes += (0..<longLength).map { UInt8(truncatingIfNeeded: $0 % 26 + 97) }
        bytes += Array("\r\nafter\nend".utf8)

        for chunkSize in [64 << 10, bytes.count] {
            var finalCounts = (lines: 0, bytes: Int64(0))
            let lines = splitLines(
                bytes, chunkSize: chunkSize, splitter: LineSplitter(maxLineBytes: 8 << 20, keptPrefixBytes: 1024)
            ) {
                XCTAssertLessThanOrEqual($0.carryCapacity, 8 << 20, "the carry buffer is bounded by maxLineBytes")
                finalCounts = ($0.linesDelivered, $0.bytesConsumed)
            }

            XCTAssertEqual(lines.count, 4, "chunk size \(chunkSize)")
            guard lines.count == 4 else { continue }
            XCTAssertEqual(lines[0], Line("first", number: 1, byteOffset: 0, endOffset: 6))
            XCTAssertTrue(lines[1].isTooLong)
            XCTAssertEqual(lines[1].length, Int64(longLength))
            XCTAssertEqual(lines[1].bytes, Array(bytes[6..<(6 + 1024)]))
            XCTAssertEqual(lines[1].number, 2)
            XCTAssertEqual(lines[1].byteOffset, 6)
            XCTAssertEqual(lines[1].endOffset, Int64(6 + longLength + 2))
            XCTAssertEqual(
                lines[2], Line("after", number: 3, byteOffset: Int64(6 + longLength + 2), endOffset: Int64(6 + longLength + 8)))
            XCTAssertEqual(lines[3].text, "end")
            XCTAssertEqual(lines[3].number, 4)
            XCTAssertEqual(finalCounts.lines, 4)
            XCTAssertEqual(finalCounts.bytes, Int64(bytes.count))
        }
    }

    func test_lines_lineOfExactlyMaxBytesIsNotTooLong_oneMoreIs() {
        let splitter = LineSplitter(maxLineBytes: 8, keptPrefixBytes: 3)
        let text = "12345678\r\n123456789\n12345678\r"
        for chunkSize in [1, 3, 100] {
            let lines = splitLines(Array(text.utf8), chunkSize: chunkSize, splitter: splitter)
            XCTAssertEqual(lines.map(\.isTooLong), [false, true, true], "chunk size \(chunkSize)")
            XCTAssertEqual(lines.map(\.text), ["12345678", "123", "123"], "chunk size \(chunkSize)")
            XCTAssertEqual(lines.map(\.length), [8, 9, 9], "a final \\r not before \\n is data")
        }
    }

    func test_lines_copiesOfASplitterDoNotShareTheirPendingLine() {
        var first = LineSplitter()
        Array("abc".utf8).withUnsafeBytes { first.consume($0) { _ in XCTFail("no line yet") } }
        var second = first
        var fromFirst: [String] = []
        var fromSecond: [String] = []
        Array("1\n".utf8).withUnsafeBytes { first.consume($0) { fromFirst.append(String(decoding: $0.bytes, as: UTF8.self)) } }
        Array("2\n".utf8).withUnsafeBytes { second.consume($0) { fromSecond.append(String(decoding: $0.bytes, as: UTF8.self)) } }
        XCTAssertEqual(fromFirst, ["abc1"])
        XCTAssertEqual(fromSecond, ["abc2"])
    }

    func test_lines_bytesConsumedIsTheEndOfTheLastDeliveredLine() {
        var splitter = LineSplitter()
        Array("ab\ncd".utf8).withUnsafeBytes { splitter.consume($0) { _ in } }
        XCTAssertEqual(splitter.bytesConsumed, 3)
        XCTAssertEqual(splitter.linesDelivered, 1)
        splitter.finish { _ in }
        XCTAssertEqual(splitter.bytesConsumed, 5)
        XCTAssertEqual(splitter.linesDelivered, 2)
    }
}
