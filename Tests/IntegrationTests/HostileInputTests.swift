import Foundation
import XCTest

/// Hostile input never crashes or hangs the tool: every run here has a deadline (killed and
/// failed past it) and must end by exiting with a documented code.
final class HostileInputTests: IntegrationTestCase {
    private let deadline = 60.0

    func test_randomBytes_plain_rejectedNotCrashed() async throws {
        let dir = try makeTemporaryDirectory()
        var random = SeededBytes(seed: 42)
        var bytes = random.bytes(256 << 10)
        bytes[bytes.startIndex] = UInt8(ascii: "x")  // not the gzip magic
        let input = dir.appendingPathComponent("random.bin")
        try bytes.write(to: input)
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertGreaterThan(run.report.records, 100, "random bytes hold many newlines: many garbage records")
        XCTAssertEqual(run.report.mapped, 0)
        XCTAssertEqual(run.rejects.count, run.report.rejectedTotal)
    }

    func test_randomBytes_afterGzipMagic_isDamagedInputExit3() async throws {
        let dir = try makeTemporaryDirectory()
        var random = SeededBytes(seed: 7)
        let input = dir.appendingPathComponent("random.gz")
        try (Data([0x1F, 0x8B, 0x08, 0x00]) + random.bytes(64 << 10)).write(to: input)
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 3, run.result.stderrText)
        XCTAssertTrue(run.result.stderrText.contains(input.path), "the error names the file: \(run.result.stderrText)")
    }

    func test_randomBytes_insideValidGzip_rejectedNotCrashed() async throws {
        let dir = try makeTemporaryDirectory()
        var random = SeededBytes(seed: 99)
        let plain = dir.appendingPathComponent("random.bin")
        try random.bytes(128 << 10).write(to: plain)
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", "-k", plain.path]
        try gzip.run()
        gzip.waitUntilExit()
        let run = try await dryRun([plain.path + ".gz"], in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertGreaterThan(run.report.records, 50)
        XCTAssertEqual(run.report.mapped, 0)
    }

    func test_truncatedGzip_goodRecordsProcessed_exit3NamesTheFile() async throws {
        let dir = try makeTemporaryDirectory()
        let whole = try Data(contentsOf: Paths.sampleFiles[0])
        let input = dir.appendingPathComponent("cut.ndjson.gz")
        try whole.prefix(whole.count / 2).write(to: input)
        let full = inputLines(try decodedInput(Paths.sampleFiles[0])).count
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 3, run.result.stderrText)
        XCTAssertTrue(run.result.stderrText.contains(input.path), run.result.stderrText)
        XCTAssertGreaterThan(run.report.records, 100, "the records before the cut are processed")
        XCTAssertLessThan(run.report.records, full)
        XCTAssertEqual(run.requests.reduce(0) { $0 + $1.items.count }, run.report.mapped)
    }

    func test_twentyMegabyteLine_rejectedLineTooLong_nextLinesKeepTheirNumbers() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("long.ndjson")
        let head = #"{"type":"track","userId":"long","event":"Huge","timestamp":"2026-11-01T10:00:00Z","pad":""#
        var data = Data()
        data += Data((#"{"type":"identify","userId":"long","timestamp":"2026-11-01T10:00:00Z"}"# + "\n").utf8)
        let longLine = Data(head.utf8) + Data(repeating: UInt8(ascii: "A"), count: 20_000_000) + Data("\"}".utf8)
        data += longLine + Data("\n".utf8)
        data += Data((#"{"type":"mystery","userId":"long"}"# + "\n").utf8)
        data += Data((#"{"type":"track","userId":"long","event":"After","timestamp":"2026-11-01T10:00:01Z"}"# + "\n").utf8)
        try data.write(to: input)

        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertEqual(run.report.records, 4)
        XCTAssertEqual(run.report.rejected, ["line_too_long": 1, "unknown_type": 1])
        XCTAssertEqual(run.report.mappedUsers, 1)
        XCTAssertEqual(run.report.mappedEvents, 1)
        let events = run.requests.flatMap(\.items).compactMap { ($0["data"] as? [String: Any])?["event_name"] as? String }
        XCTAssertEqual(events, ["After"])

        XCTAssertEqual(run.rejects.count, 2)
        let tooLong = try XCTUnwrap(run.rejects.first { $0["reason"] as? String == "line_too_long" })
        XCTAssertEqual(tooLong["line"] as? Int, 2)
        XCTAssertEqual(tooLong["source"] as? String, input.path)
        XCTAssertEqual(
            tooLong["record"] as? String, String(decoding: longLine.prefix(1024), as: UTF8.self), "its first 1 KiB is kept")
        let next = try XCTUnwrap(run.rejects.first { $0["reason"] as? String == "unknown_type" })
        XCTAssertEqual(next["line"] as? Int, 3, "the line after the long one keeps its number")
        XCTAssertEqual(next["record"] as? String, #"{"type":"mystery","userId":"long"}"#)
    }

    func test_invalidUTF8_rejectedWithRecordBase64OfTheExactBytes() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("latin1.ndjson")
        let bad =
            Data(#"{"type":"track","userId":"x","event":"caf"#.utf8) + Data([0xE9, 0xFF, 0xC0, 0x80])
            + Data(#"","timestamp":"2026-11-01T10:00:00Z"}"#.utf8)
        let good = Data(#"{"type":"track","userId":"x","event":"ok","timestamp":"2026-11-01T10:00:00Z"}"#.utf8)
        try (good + Data([0x0A]) + bad + Data([0x0D, 0x0A]) + good + Data([0x0A])).write(to: input)
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1)
        XCTAssertEqual(run.report.records, 3)
        XCTAssertEqual(run.report.rejected, ["invalid_json": 1])
        let reject = try XCTUnwrap(run.rejects.first)
        XCTAssertEqual(reject["line"] as? Int, 2)
        XCTAssertNil(reject["record"])
        XCTAssertEqual(
            (reject["record_base64"] as? String).flatMap { Data(base64Encoded: $0) }, bad, "the exact bytes, without the CRLF")
    }

    func test_emptyFile_zeroRecordsExitZero() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("empty.ndjson")
        try Data().write(to: input)
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 0, run.result.stderrText)
        XCTAssertEqual(run.report.records, 0)
        XCTAssertTrue(run.requests.isEmpty)
    }

    func test_missingPath_exit2WithAClearMessage() async throws {
        let dir = try makeTemporaryDirectory()
        let missing = dir.appendingPathComponent("no-such-file.ndjson.gz").path
        let result = try await run(
            [
                "--dry-run", "--state-dir", dir.appendingPathComponent("state").path,
                Paths.edge.appendingPathComponent("crlf_bom.ndjson").path, missing,
            ],
            in: dir, deadline: deadline)
        XCTAssertEqual(result.status, 2, result.stderrText)
        XCTAssertTrue(result.stderrText.contains(missing), "names the path: \(result.stderrText)")
        XCTAssertTrue(result.stderrText.contains("no such file"), result.stderrText)
        XCTAssertTrue(result.stdout.isEmpty, "nothing is processed before the inputs are checked")
    }

    func test_batchSizeZero_exit2() async throws {
        let dir = try makeTemporaryDirectory()
        let result = try await run(
            [
                "--dry-run", "--batch-size", "0", "--state-dir", dir.appendingPathComponent("state").path,
                Paths.edge.appendingPathComponent("crlf_bom.ndjson").path,
            ], in: dir, deadline: deadline)
        XCTAssertTrue(result.stderrText.contains("--batch-size"), result.stderrText)
        XCTAssertTrue(result.stdout.isEmpty)
        try assertUsageErrorExit(result)
    }
}
