import Foundation
import XCTest

@testable import IntercomBackfill

/// What reading a source to its end gave: the bytes, and the error that stopped it, if any.
struct ReadOutcome {
    var bytes: [UInt8] = []
    var error: (any Error)?
    var inputError: InputError? { error as? InputError }
}

/// Reads `source` until its end or an error, `bufferSize` bytes at a time; a bounded number of
/// calls, so a source that never ends fails the test instead of hanging it.
func readAll(_ source: any ByteSource, bufferSize: Int = 64 << 10, maxCalls: Int = 10_000_000) -> ReadOutcome {
    var outcome = ReadOutcome()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
    defer { buffer.deallocate() }
    for _ in 0..<maxCalls {
        do {
            let n = try source.read(into: buffer)
            if n == 0 { return outcome }
            outcome.bytes += buffer[0..<n]
        } catch {
            outcome.error = error
            return outcome
        }
    }
    XCTFail("the source never reached its end")
    return outcome
}

func openInput(_ path: String) throws -> any ByteSource {
    try InputOpener.open(InputFile(displayPath: path, path: path, size: nil))
}

final class ByteSourceTests: XCTestCase {
    private func sampleText(lines: Int, seed: UInt64 = 1) -> String {
        var generator = SeededGenerator(state: seed)
        var text = ""
        for index in 1...lines {
            let word = String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 36)
            text += "{\"type\":\"track\",\"n\":\(index),\"w\":\"\(word)\"}\n"
        }
        return text
    }

    func test_plainFile_isReadAsIs() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 5000)
        let path = try folder.write("events.ndjson", text)
        let source = try openInput(path)
        let outcome = readAll(source, bufferSize: 4096)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, Array(text.utf8))
        XCTAssertEqual(source.rawBytesRead, Int64(text.utf8.count))
    }

    func test_emptyFile_isAValidEmptyInput() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("empty.ndjson", [])
        let outcome = readAll(try openInput(path))
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, [])
    }

    func test_gzip_isDetectedByMagicBytesNotByName() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 100)
        let gzipNamedTxt = try folder.write("really-gzip.txt", try gzipped(text))
        let plainNamedGz = try folder.write("really-plain.gz", text)

        let fromGzip = try openInput(gzipNamedTxt)
        XCTAssertTrue(fromGzip is GzipByteSource)
        XCTAssertEqual(readAll(fromGzip).bytes, Array(text.utf8))

        let fromPlain = try openInput(plainNamedGz)
        XCTAssertTrue(fromPlain is FileByteSource)
        XCTAssertEqual(readAll(fromPlain).bytes, Array(text.utf8))
    }

    func test_gzip_oneByteFileStartingLikeGzipIsPlain() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("one", [0x1F])
        let outcome = readAll(try openInput(path))
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, [0x1F])
    }

    func test_gzip_multiMemberStreamIsReadWhole() throws {
        let folder = try TemporaryFolder()
        let first = sampleText(lines: 3000, seed: 1)
        let second = sampleText(lines: 10, seed: 2)
        let third = sampleText(lines: 2000, seed: 3)
        let path = try folder.write("joined.gz", try gzipped(first) + gzipped(second) + gzipped(third))
        for bufferSize in [1, 1000, 1 << 20] {
            let outcome = readAll(try openInput(path), bufferSize: bufferSize)
            XCTAssertNil(outcome.error, "buffer size \(bufferSize)")
            XCTAssertEqual(outcome.bytes, Array((first + second + third).utf8), "buffer size \(bufferSize)")
        }
    }

    func test_gzip_tinyInputBufferStillReadsMultipleMembers() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("joined.gz", try gzipped("a\n") + gzipped("b\n"))
        let source = try GzipByteSource(
            wrapping: FileByteSource(path: path, displayPath: "joined.gz"), displayPath: "joined.gz", inputBufferSize: 2)
        let outcome = readAll(source, bufferSize: 3)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, Array("a\nb\n".utf8))
    }

    func test_gzip_zeroPaddingAfterTheLastMemberIsAccepted() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 100)
        let compressed = try gzipped(text)
        for padding in [1, 7, 512, 300_000] {
            let path = try folder.write("padded-\(padding).gz", compressed + [UInt8](repeating: 0, count: padding))
            let source = try openInput(path)
            let outcome = readAll(source)
            XCTAssertNil(outcome.error, "padding \(padding)")
            XCTAssertEqual(outcome.bytes, Array(text.utf8))
            XCTAssertEqual(source.rawBytesRead, Int64(compressed.count + padding))
        }
    }

    func test_gzip_garbageAfterTheLastMemberIsTrailingGarbageAtItsOffset_goodBytesDelivered() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 100)
        let compressed = try gzipped(text)
        let cases: [(name: String, tail: [UInt8], offset: Int)] = [
            ("text", Array("garbage".utf8), compressed.count),
            ("lone magic byte", [0x1F], compressed.count),
            ("after padding", [0, 0, 0, 0x41], compressed.count + 3),
        ]
        for (name, tail, offset) in cases {
            let path = try folder.write("tail.gz", compressed + tail)
            let outcome = readAll(try openInput(path))
            XCTAssertEqual(outcome.bytes, Array(text.utf8), name)
            XCTAssertEqual(outcome.inputError?.code, .trailingGarbage, name)
            XCTAssertEqual(outcome.inputError?.compressedOffset, Int64(offset), name)
            XCTAssertEqual(outcome.inputError?.uncompressedOffset, Int64(text.utf8.count), name)
            XCTAssertEqual(outcome.inputError?.source, path, name)
        }
    }

    func test_gzip_truncatedStreamDeliversEveryByteBeforeTheCutThenThrowsTruncated() throws {
        let folder = try TemporaryFolder()
        let first = sampleText(lines: 2000, seed: 4)
        let second = sampleText(lines: 50_000, seed: 5)
        let full = Array((first + second).utf8)
        let firstMember = try gzipped(first)
        let compressed = try firstMember + gzipped(second)

        // Inside the second member's data: the first member is whole, the rest a prefix.
        let middle = firstMember.count + (compressed.count - firstMember.count) / 2
        // Inside the last trailer: every data byte was inflated already.
        let inTrailer = compressed.count - 3
        for cut in [middle, inTrailer] {
            let path = try folder.write("cut.gz", Array(compressed[..<cut]))
            let outcome = readAll(try openInput(path), bufferSize: 10_000)
            XCTAssertEqual(outcome.inputError?.code, .truncatedGzip, "cut at \(cut)")
            XCTAssertEqual(outcome.inputError?.compressedOffset, Int64(cut), "cut at \(cut)")
            XCTAssertEqual(outcome.inputError?.uncompressedOffset, Int64(outcome.bytes.count))
            XCTAssertGreaterThan(outcome.bytes.count, first.utf8.count, "the whole first member and more")
            XCTAssertEqual(outcome.bytes, Array(full[..<outcome.bytes.count]), "what was delivered is the true start")
            if cut == inTrailer {
                XCTAssertEqual(outcome.bytes, full)
            }
        }
    }

    func test_gzip_truncatedStreamLinesBeforeTheCutAllReachTheSplitter() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 20_000)
        let compressed = try gzipped(text)
        let path = try folder.write("cut.gz", Array(compressed[..<(compressed.count - 6)]))
        let source = try openInput(path)
        var splitter = LineSplitter()
        var numbers: [Int] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        XCTAssertThrowsError(
            try {
                while true {
                    let n = try source.read(into: buffer)
                    if n == 0 { break }
                    splitter.consume(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { numbers.append($0.number) }
                }
            }()
        ) { error in
            XCTAssertEqual((error as? InputError)?.code, .truncatedGzip)
        }
        XCTAssertEqual(numbers, Array(1...20_000))
    }

    func test_gzip_corruptDataIsCorruptGzipWithItsOffset() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 3000)
        let compressed = try gzipped(text)

        var badMethod = compressed
        badMethod[2] = 7
        var badChecksum = compressed
        badChecksum[compressed.count - 6] ^= 0xFF
        var badLength = compressed
        badLength[compressed.count - 1] ^= 0x01
        for (name, bytes, offsets) in [
            ("header", badMethod, 0...10),
            ("checksum", badChecksum, (compressed.count - 8)...(compressed.count)),
            ("length", badLength, (compressed.count - 4)...(compressed.count)),
        ] {
            let path = try folder.write("bad.gz", bytes)
            let outcome = readAll(try openInput(path))
            XCTAssertEqual(outcome.inputError?.code, .corruptGzip, name)
            let offset = Int(outcome.inputError?.compressedOffset ?? -1)
            XCTAssertTrue(offsets.contains(offset), "\(name): offset \(offset) not in \(offsets)")
            XCTAssertEqual(outcome.inputError?.uncompressedOffset, Int64(outcome.bytes.count))
        }
    }

    func test_gzip_flippedBytesInTheDataNeverCrashOrHang() throws {
        let folder = try TemporaryFolder()
        let text = sampleText(lines: 3000)
        let compressed = try gzipped(text)
        var generator = SeededGenerator(state: 99)
        for round in 0..<40 {
            var bytes = compressed
            for _ in 0..<(1 + round % 4) {
                bytes[Int.random(in: 10..<(bytes.count - 8), using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            }
            let path = try folder.write("flipped.gz", bytes)
            let outcome = readAll(try openInput(path), bufferSize: 777)
            // A flip is almost always found by the data or the checksum; it must never pass unnoticed silently with wrong bytes.
            if outcome.error == nil {
                XCTAssertEqual(outcome.bytes, Array(text.utf8), "round \(round): wrong bytes without an error")
            } else {
                let code = outcome.inputError?.code
                XCTAssertTrue(
                    code == .corruptGzip || code == .truncatedGzip || code == .trailingGarbage,
                    "round \(round): \(String(describing: outcome.error))")
            }
        }
    }

    func test_randomBytesAsInputNeverCrashOrHang() throws {
        let folder = try TemporaryFolder()
        var generator = SeededGenerator(state: 2024)
        for round in 0..<300 {
            let count = Int.random(in: 0...3000, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            switch round % 3 {
            case 0: bytes = [0x1F, 0x8B] + bytes
            case 1: bytes = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 0xFF] + bytes
            default: break
            }
            let path = try folder.write("random", bytes)
            let outcome = readAll(try openInput(path), bufferSize: [1, 64, 4096][round % 3])
            if let error = outcome.error {
                XCTAssertNotNil(error as? InputError, "round \(round): \(error)")
            }
            let lines = splitLines(outcome.bytes, chunkSize: 1 + round % 50)
            XCTAssertEqual(lines.last?.endOffset ?? 0, lines.isEmpty ? 0 : Int64(outcome.bytes.count), "round \(round)")
        }
    }

    func test_open_missingFileIsNotFound() {
        XCTAssertThrowsError(try openInput("/nonexistent/input-tests/none.gz")) { error in
            XCTAssertEqual((error as? InputError)?.code, .notFound)
            XCTAssertEqual((error as? InputError)?.source, "/nonexistent/input-tests/none.gz")
        }
    }

    func test_open_folderIsNotAFile() throws {
        let folder = try TemporaryFolder()
        XCTAssertThrowsError(try openInput(folder.path)) { error in
            XCTAssertEqual((error as? InputError)?.code, .isDirectory)
        }
    }

    func test_open_unreadableFileIsPermissionDenied() throws {
        try XCTSkipIf(geteuid() == 0, "root may read any file")
        let folder = try TemporaryFolder()
        let path = try folder.write("secret", "x\n")
        XCTAssertEqual(chmod(path, 0), 0)
        XCTAssertThrowsError(try openInput(path)) { error in
            XCTAssertEqual((error as? InputError)?.code, .permissionDenied)
        }
    }

    func test_open_standardInputGzipIsDetectedWithoutLosingThePeekedBytes() throws {
        let text = sampleText(lines: 200)
        let compressed = try gzipped(text)
        XCTAssertLessThan(compressed.count, 60_000, "must fit in a pipe buffer")
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        _ = compressed.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        close(ends[1])
        let savedStandardInput = dup(0)
        XCTAssertEqual(dup2(ends[0], 0), 0)
        close(ends[0])
        defer {
            dup2(savedStandardInput, 0)
            close(savedStandardInput)
        }
        let source = try InputOpener.open(.standardInput)
        XCTAssertTrue(source is GzipByteSource)
        let outcome = readAll(source, bufferSize: 1000)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, Array(text.utf8))
    }

    func test_fileByteSource_readingAfterCloseIsTheEnd() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("a", "abc")
        let source = try FileByteSource(path: path, displayPath: "a")
        source.close()
        XCTAssertEqual(readAll(source).bytes, [])
    }

    func test_error_descriptionNamesFileOffsetAndWhatToDo() {
        let error = InputError(
            code: .truncatedGzip, source: "logs/2024-01-01.ndjson.gz",
            message: "the gzip data ends in the middle of a member",
            compressedOffset: 1234, uncompressedOffset: 56789)
        XCTAssertTrue(error.description.hasPrefix("logs/2024-01-01.ndjson.gz: the gzip data ends"), error.description)
        XCTAssertTrue(error.description.contains("compressed byte 1234"), error.description)
        XCTAssertTrue(error.description.contains("56789"), error.description)
        XCTAssertTrue(error.description.contains("Re-copy"), error.description)
    }
}
