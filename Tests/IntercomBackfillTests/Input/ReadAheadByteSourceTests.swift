import XCTest

@testable import IntercomBackfill

/// A source that plays a script: byte runs (handed out in pieces as small as the caller's
/// buffer) and then, optionally, an error; after the script, the end of input.
private final class ScriptedByteSource: ByteSource {
    enum Step {
        case bytes([UInt8])
        case fail(any Error)
    }

    private var steps: [Step]
    private var offsetInStep = 0
    private(set) var rawBytesRead: Int64 = 0

    init(_ steps: [Step]) { self.steps = steps }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let step = steps.first else { return 0 }
        switch step {
        case .fail(let error):
            throw error
        case .bytes(let bytes):
            let n = min(bytes.count - offsetInStep, buffer.count)
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offsetInStep, byteCount: n) }
            offsetInStep += n
            rawBytesRead += Int64(n)
            if offsetInStep == bytes.count {
                steps.removeFirst()
                offsetInStep = 0
            }
            return n
        }
    }
}

/// Bytes forever: a stream the consumer abandons before its end.
private final class EndlessByteSource: ByteSource {
    private(set) var rawBytesRead: Int64 = 0

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        buffer.initializeMemory(as: UInt8.self, repeating: 0x61)
        rawBytesRead += Int64(buffer.count)
        return buffer.count
    }
}

private struct PlannedFailure: Error, Equatable {
    var id: Int
}

private func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// Reads `source` to its end or error with `withNextChunk`, checking chunks are never empty.
private func readAllChunks(_ source: ReadAheadByteSource, maxCalls: Int = 1_000_000) -> ReadOutcome {
    var outcome = ReadOutcome()
    for _ in 0..<maxCalls {
        do {
            let more = try source.withNextChunk { chunk -> Bool in
                XCTAssertGreaterThan(chunk.count, 0, "a lent chunk is never empty")
                outcome.bytes += chunk
                return true
            }
            if more == nil { return outcome }
        } catch {
            outcome.error = error
            return outcome
        }
    }
    XCTFail("the source never reached its end")
    return outcome
}

final class ReadAheadByteSourceTests: XCTestCase {
    func test_bytes_arriveInOrder_whateverTheBufferAndSlotSizes() {
        let data = pattern(30_003)
        for slotSize in [1, 7, 4096, 200_000] {
            for bufferSize in [1, 13, 4096, 1 << 20] {
                let upstream = ScriptedByteSource([.bytes(Array(data[0..<15_000])), .bytes(Array(data[15_000...]))])
                let source = ReadAheadByteSource(wrapping: upstream, slotCount: 3, slotSize: slotSize)
                let outcome = readAll(source, bufferSize: bufferSize)
                XCTAssertNil(outcome.error)
                XCTAssertEqual(outcome.bytes, data, "slot \(slotSize), buffer \(bufferSize)")
                XCTAssertEqual(source.rawBytesRead, Int64(data.count))
            }
        }
    }

    func test_withNextChunk_lendsEveryByteWithoutCopying() {
        let data = pattern(1_000_000, seed: 5)
        let source = ReadAheadByteSource(wrapping: ScriptedByteSource([.bytes(data)]), slotCount: 4, slotSize: 64 << 10)
        let outcome = readAllChunks(source)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, data)
    }

    func test_readAndWithNextChunk_canBeMixed_theRestOfAPartlyReadChunkComesFirst() throws {
        let data = pattern(10_000)
        let source = ReadAheadByteSource(wrapping: ScriptedByteSource([.bytes(data)]), slotCount: 2, slotSize: 4096)
        var bytes: [UInt8] = []
        let small = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 1)
        defer { small.deallocate() }
        let n = try source.read(into: small)
        bytes += small[0..<n]
        while let chunk = try source.withNextChunk({ Array($0) }) { bytes += chunk }
        XCTAssertEqual(n, 100)
        XCTAssertEqual(bytes, data)
    }

    func test_error_arrivesAfterEveryGoodByte_andAgainOnEveryLaterRead() {
        let good = pattern(30_000)
        for slotSize in [1000, 1 << 20] {
            let upstream = ScriptedByteSource([.bytes(good), .fail(PlannedFailure(id: 7)), .bytes([1, 2, 3])])
            let source = ReadAheadByteSource(wrapping: upstream, slotCount: 3, slotSize: slotSize)
            let outcome = readAll(source, bufferSize: 777)
            XCTAssertEqual(outcome.bytes, good, "slot \(slotSize)")
            XCTAssertEqual(outcome.error as? PlannedFailure, PlannedFailure(id: 7))
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
            defer { buffer.deallocate() }
            XCTAssertThrowsError(try source.read(into: buffer)) { XCTAssertEqual($0 as? PlannedFailure, PlannedFailure(id: 7)) }
            XCTAssertThrowsError(try source.withNextChunk { _ in }) {
                XCTAssertEqual($0 as? PlannedFailure, PlannedFailure(id: 7))
            }
        }
    }

    func test_errorBeforeAnyByte_isThrownByTheFirstRead() {
        let source = ReadAheadByteSource(wrapping: ScriptedByteSource([.fail(PlannedFailure(id: 1))]))
        let outcome = readAllChunks(source)
        XCTAssertEqual(outcome.bytes, [])
        XCTAssertEqual(outcome.error as? PlannedFailure, PlannedFailure(id: 1))
    }

    func test_truncatedGzip_givesTheSameBytesAndErrorAsReadingItDirectly() throws {
        var text = ""
        for k in 0..<20_000 { text += "{\"type\":\"track\",\"event\":\"e\(k)\",\"userId\":\"u\(k % 97)\"}\n" }
        let archive = try gzipped(text)
        let cut = Array(archive[0..<(archive.count * 2 / 3)])
        let folder = try TemporaryFolder()
        let path = try folder.write("cut.ndjson.gz", cut)

        let direct = readAll(try openInput(path), bufferSize: 256 << 10)
        let ahead = ReadAheadByteSource(wrapping: try openInput(path), slotCount: 3, slotSize: 32 << 10)
        let viaThread = readAll(ahead, bufferSize: 256 << 10)

        XCTAssertGreaterThan(direct.bytes.count, 0)
        XCTAssertEqual(viaThread.bytes, direct.bytes)
        XCTAssertEqual(viaThread.inputError?.code, .truncatedGzip)
        XCTAssertEqual(viaThread.inputError?.description, direct.inputError?.description)
        XCTAssertEqual(ahead.rawBytesRead, Int64(cut.count))
    }

    func test_emptyInput_endsAtOnce() throws {
        let source = ReadAheadByteSource(wrapping: ScriptedByteSource([]))
        XCTAssertNil(try source.withNextChunk { _ in true })
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { buffer.deallocate() }
        XCTAssertEqual(try source.read(into: buffer), 0)
        XCTAssertEqual(try source.read(into: buffer), 0)
    }

    func test_afterTheEnd_droppingTheSourceEndsTheThreadAndReleasesTheWrappedSource() {
        weak var weakUpstream: ScriptedByteSource?
        do {
            let upstream = ScriptedByteSource([.bytes(pattern(5000))])
            weakUpstream = upstream
            let source = ReadAheadByteSource(wrapping: upstream, slotCount: 2, slotSize: 1024)
            XCTAssertEqual(readAll(source).bytes.count, 5000)
        }
        // deinit joined the thread, and the thread let go of the wrapped source before ending.
        XCTAssertNil(weakUpstream)
    }

    func test_closeMidStream_stopsTheThread_evenWhileItWaitsForAFreeBuffer() throws {
        weak var weakUpstream: EndlessByteSource?
        let source: ReadAheadByteSource
        do {
            let upstream = EndlessByteSource()
            weakUpstream = upstream
            source = ReadAheadByteSource(wrapping: upstream, slotCount: 2, slotSize: 4096)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 1)
        defer { buffer.deallocate() }
        XCTAssertEqual(try source.read(into: buffer), 100)
        source.close()
        XCTAssertNil(weakUpstream, "the thread ended and released the wrapped source")
        XCTAssertEqual(try source.read(into: buffer), 0, "a closed source reads as ended")
        XCTAssertNil(try source.withNextChunk { _ in true })
        source.close()  // closing twice is harmless
    }

    func test_droppedUnread_doesNotHangOrLeakTheThread() {
        weak var weakUpstream: EndlessByteSource?
        do {
            let upstream = EndlessByteSource()
            weakUpstream = upstream
            _ = ReadAheadByteSource(wrapping: upstream, slotCount: 2, slotSize: 4096)
        }
        XCTAssertNil(weakUpstream)
    }

    func test_linesThroughReadAhead_matchLinesReadDirectly() throws {
        var text = ""
        for k in 0..<5000 { text += "{\"n\":\(k)}\r\n" }
        let data = Array(text.utf8)
        var direct: [[UInt8]] = []
        var splitter = LineSplitter()
        data.withUnsafeBytes { splitter.consume($0) { direct.append(Array($0.bytes)) } }
        splitter.finish { direct.append(Array($0.bytes)) }

        var ahead: [[UInt8]] = []
        var splitter2 = LineSplitter()
        let source = ReadAheadByteSource(wrapping: ScriptedByteSource([.bytes(data)]), slotCount: 3, slotSize: 1001)
        while try source.withNextChunk({ splitter2.consume($0) { ahead.append(Array($0.bytes)) } }) != nil {}
        splitter2.finish { ahead.append(Array($0.bytes)) }
        XCTAssertEqual(ahead, direct)
        XCTAssertEqual(ahead.count, 5000)
    }
}
