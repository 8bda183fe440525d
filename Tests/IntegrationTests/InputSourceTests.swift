import Foundation
import XCTest

/// Standard input (`-`, and no INPUT at all) and folders (order, display paths).
final class InputSourceTests: IntegrationTestCase {
    private var firstSampleFile: URL { Paths.sampleFiles[0] }

    func test_stdin_dash_readsPipedGzipLikeTheFile() async throws {
        let dir = try makeTemporaryDirectory()
        let fromFile = try await dryRun([firstSampleFile.path], in: dir)
        let fileOutput = try Data(contentsOf: dir.appendingPathComponent("out.ndjson"))

        let stdin = try await dryRun(["-"], stdin: .bytes(try Data(contentsOf: firstSampleFile)), in: dir)
        let stdinOutput = try Data(contentsOf: dir.appendingPathComponent("out.ndjson"))
        XCTAssertGreaterThan(stdin.report.records, 1000)
        XCTAssertEqual(stdinOutput, fileOutput, "the same requests from stdin as from the file")
        XCTAssertEqual(stdin.report.records, fromFile.report.records)
        XCTAssertEqual(stdin.result.status, fromFile.result.status)
        XCTAssertFalse(stdin.rejects.isEmpty)
        XCTAssertEqual(
            stdin.rejects.map { $0["source"] as? String }, Array(repeating: "-", count: stdin.rejects.count), "stdin is named '-'"
        )
        XCTAssertEqual(stdin.rejects.map { $0["line"] as? Int }, fromFile.rejects.map { $0["line"] as? Int })
    }

    func test_stdin_noInputGiven_readsPipedStdin() async throws {
        let dir = try makeTemporaryDirectory()
        let lines = [
            #"{"type":"identify","userId":"s1","timestamp":"2026-11-01T10:00:00Z","traits":{"email":"s1@example.com"}}"#,
            #"{"type":"track","userId":"s1","event":"Piped","timestamp":"2026-11-01T10:00:01Z"}"#,
            #"{"type":"bogus","userId":"s1"}"#,
        ]
        let run = try await dryRun([], stdin: .bytes(Data((lines.joined(separator: "\n") + "\n").utf8)), in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertEqual(run.report.records, 3)
        XCTAssertEqual(run.report.mappedUsers, 1)
        XCTAssertEqual(run.report.mappedEvents, 1)
        XCTAssertEqual(run.report.rejected, ["unknown_type": 1])
        XCTAssertEqual(run.requests.map(\.path), ["/bulk/users", "/bulk/events"])
        XCTAssertEqual(run.rejects.first?["source"] as? String, "-")
        XCTAssertEqual(run.rejects.first?["line"] as? Int, 3)
    }

    func test_stdin_empty_zeroRecordsExitZero() async throws {
        let dir = try makeTemporaryDirectory()
        for arguments in [["-"], []] {
            let run = try await dryRun(arguments, stdin: .bytes(Data()), in: dir)
            XCTAssertEqual(run.result.status, 0, "\(arguments): \(run.result.stderrText)")
            XCTAssertEqual(run.report.records, 0)
            XCTAssertEqual(run.report.mapped, 0)
            XCTAssertTrue(run.requests.isEmpty)
            XCTAssertTrue(run.rejects.isEmpty)
        }
    }

    /// A folder's files in byte order of their relative path (as `LC_ALL=C sort`), dot-files
    /// skipped, each named as the folder as given joined with its relative path.
    func test_folder_readInByteOrder_displayPathsInRejects() async throws {
        let dir = try makeTemporaryDirectory()
        let folder = dir.appendingPathComponent("in")
        // Byte order: "Z.ndjson" < "a-b.ndjson" < "a.ndjson" < "a/b.ndjson" < "b.ndjson.gz"
        // (not the order a person or a locale-aware sort would give).
        let names = ["a.ndjson", "b.ndjson.gz", "Z.ndjson", "a/b.ndjson", "a-b.ndjson", ".hidden.ndjson"]
        for name in names {
            let url = folder.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let text = """
                {"type":"track","userId":"f","event":"from \(name)","timestamp":"2026-11-01T10:00:00Z"}

                {"type":"nope","file":"\(name)"}

                """
            if name.hasSuffix(".gz") {
                let plain = dir.appendingPathComponent("plain")
                try text.write(to: plain, atomically: true, encoding: .utf8)
                let gzip = Process()
                gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                gzip.arguments = ["gzip", "-c", plain.path]
                _ = FileManager.default.createFile(atPath: url.path, contents: nil)
                gzip.standardOutput = try FileHandle(forWritingTo: url)
                try gzip.run()
                gzip.waitUntilExit()
                XCTAssertEqual(gzip.terminationStatus, 0)
            } else {
                try text.write(to: url, atomically: true, encoding: .utf8)
            }
        }
        let order = ["Z.ndjson", "a-b.ndjson", "a.ndjson", "a/b.ndjson", "b.ndjson.gz"]

        for given in ["in", "in/"] {
            let run = try await dryRun([given], in: dir)
            XCTAssertEqual(run.result.status, 1, run.result.stderrText)
            XCTAssertEqual(run.report.records, 10, "\(given): two records per file, the dot-file skipped")
            let events = run.requests.flatMap(\.items).compactMap { ($0["data"] as? [String: Any])?["event_name"] as? String }
            XCTAssertEqual(events, order.map { "from \($0)" }, "\(given): files in byte order")
            XCTAssertEqual(
                run.rejects.compactMap { $0["source"] as? String }, order.map { "in/" + $0 }, "\(given): display paths")
            XCTAssertEqual(
                run.rejects.compactMap { $0["line"] as? Int }, Array(repeating: 3, count: order.count), "blank lines count")
        }
    }
}
