import XCTest

@testable import IntercomBackfill

final class OutputBufferTests: XCTestCase {
    func test_appends_ofEverySize_keepTheBytesInOrder() {
        var buffer = OutputBuffer(capacity: 16)
        var expected: [UInt8] = []
        for size in 0...40 {
            let piece = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ size) }
            piece.withUnsafeBytes { buffer.appendBytes($0) }
            buffer.append(UInt8(size))
            expected += piece + [UInt8(size)]
        }
        XCTAssertEqual(Array(buffer.bytes), expected)
    }

    func test_truncateAndRemoveAll_keepTheMemory() {
        var buffer = OutputBuffer(capacity: 16)
        buffer.append("hello, world")
        buffer.truncate(to: 5)
        XCTAssertEqual(Array(buffer.bytes), Array("hello".utf8))
        buffer.removeAll()
        XCTAssertTrue(buffer.isEmpty)
        XCTAssertNil(buffer.last)
    }

    func test_aCopy_afterMakeUnique_doesNotSeeTheOriginalsWrites() {
        var original = OutputBuffer(capacity: 16)
        original.append("abc")
        var copy = original
        copy.makeUnique()
        copy.append("def")
        original.makeUnique()
        original.append("xyz")
        XCTAssertEqual(Array(copy.bytes), Array("abcdef".utf8))
        XCTAssertEqual(Array(original.bytes), Array("abcxyz".utf8))
    }

    func test_aCopiedMapper_keepsItsOwnItem() {
        var first = RecordMapper()
        let (_, a) = mapRecord(#"{"type":"track","event":"A","userId":"u1","timestamp":"2024-01-01T00:00:00Z"}"#, mapper: &first)
        var second = first
        let (_, b) = mapRecord(#"{"type":"track","event":"B","userId":"u2","timestamp":"2024-01-01T00:00:00Z"}"#, mapper: &second)
        XCTAssertEqual(String(decoding: first.data, as: UTF8.self), a)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(String(decoding: second.itemBytes, as: UTF8.self), b)
    }
}
