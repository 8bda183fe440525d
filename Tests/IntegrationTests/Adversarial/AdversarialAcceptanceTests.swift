import Foundation
import XCTest

/// A 2xx is acceptance only when its body is a JSON job object with a string `id`: anything else
/// is a transient failure (`invalid_response`), retried, then `upload_failed`; never counted as
/// uploaded, never passed by the checkpoint, so a rerun against a good server delivers it.
final class AdversarialAcceptanceTests: AdversarialTestCase {
    /// Every bulk request answered `status` with `body`; the run, its checks, and a rerun against the sandbox.
    private func assertNotAcceptance(
        status: Int, body: String, contentType: String = "application/json",
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(in: dir)
        let batchSize = 50
        let expected = try await expected(input, batchSize: batchSize)
        let flags = Self.baseFlags(batchSize: batchSize) + Self.boundFlags()
        try await withMisbehavingServer({ request, server in
            request.isBulk
                ? .respond(status: status, headers: [("Content-Type", contentType)], body: Data(body.utf8))
                : server.defaultAnswer(request)
        }) { server in
            let run = try await backfill(input, endpoint: server.baseURL, dir: dir, flags: flags, file: file, line: line)
            let report = try assertHonest(run, server: server, expected: expected, status: 1, file: file, line: line)
            XCTAssertEqual(report.uploadedUsers, 0, "nothing counted as uploaded: \(report.raw)", file: file, line: line)
            XCTAssertEqual(report.uploadedEvents, 0, "nothing counted as uploaded: \(report.raw)", file: file, line: line)
            XCTAssertEqual(report.failed, expected.mapped, file: file, line: line)
            assertAllUploadFailed(run, count: expected.mapped, detailContains: ["invalid_response"], file: file, line: line)
            assertEachBatchSent(server, attempts: 3, batches: expected.requests.count, file: file, line: line)
            XCTAssertGreaterThanOrEqual(
                report.retries, 2 * expected.requests.count, "retried as transient", file: file, line: line)
            try await assertRerunDelivers(
                input, dir: dir, firstServer: server, expected: expected, flags: flags, file: file, line: line)
        }
    }

    func test_200WithHTMLBody_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(
            status: 200, body: "<html><body><h1>Welcome to nginx!</h1></body></html>", contentType: "text/html")
    }

    func test_200WithEmptyObject_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(status: 200, body: "{}")
    }

    func test_200WithEmptyArray_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(status: 200, body: "[]")
    }

    func test_202JobWithoutID_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(
            status: 202,
            body: #"{"type":"job","app_id":"adv0app1","name":"api_bulk_job","state":"running","created_at":1764600000}"#)
    }

    func test_200JobWithNumericID_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(
            status: 200, body: #"{"type":"job","app_id":"adv0app1","id":4711,"name":"api_bulk_job","state":"running"}"#)
    }

    func test_204NoContent_isNotAcceptance_itemsRetriedThenRejected_rerunDelivers() async throws {
        try await assertNotAcceptance(status: 204, body: "")
    }

    /// A job answer over the answer cap (here 8 MiB: a proper job object padded out) is not read
    /// whole and not taken as acceptance.
    func test_jobAnswerOver8MiB_isNotAcceptance_itemsRetriedThenRejected() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 0, in: dir)
        let expected = try await expected(input, batchSize: 100)
        let padding = String(repeating: "x", count: 8 << 20)
        try await withMisbehavingServer({ request, server in
            guard request.isBulk else { return server.defaultAnswer(request) }
            let body =
                #"{"type":"job","app_id":"adv0app1","id":"job_padded","name":"api_bulk_job","state":"running","padding":"\#(padding)"}"#
            return .json(200, body)
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 100) + Self.boundFlags())
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.uploadedUsers, 0, "an answer over the cap is not acceptance: \(report.raw)")
            assertAllUploadFailed(run, count: expected.mapped, detailContains: [])
            assertEachBatchSent(server, attempts: 3, batches: 1)
        }
    }

    /// A 50 MB answer is never buffered whole: the process's peak RSS stays under 100 MB, and the
    /// batch fails as a transient error, retried, then `upload_failed`.
    func test_50MBAnswer_isNotBufferedWhole_peakRSSUnder100MB_batchRejected() async throws {
        let time = URL(fileURLWithPath: "/usr/bin/time")
        guard FileManager.default.isExecutableFile(atPath: time.path) else {
            throw XCTSkip("/usr/bin/time is not installed (apt-get install -y time): the peak-RSS check needs it")
        }
        guard let binary = Paths.binary else { throw XCTSkip("intercom-backfill is not built beside the tests") }
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 0, in: dir)
        let expected = try await expected(input, batchSize: 100)
        let chunk =
            Data(#"{"type":"job","id":"job_huge","padding":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: 65_536 - 40)
        try await withMisbehavingServer({ request, server in
            request.isBulk
                ? .stream(status: 200, headers: [("Content-Type", "application/json")], totalBytes: 50_000_000, chunk: chunk)
                : server.defaultAnswer(request)
        }) { server in
            let rss = dir.appendingPathComponent("rss.txt")
            let process = Process()
            process.executableURL = time
            process.arguments =
                ["-f", "%M", "-o", rss.path, binary.path]
                + arguments(input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 100) + Self.boundFlags())
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("INTERCOM_") }
            environment["INTERCOM_ACCESS_TOKEN"] = Self.token
            process.environment = environment
            process.currentDirectoryURL = dir
            let stderrURL = dir.appendingPathComponent("stderr.txt")
            _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: stderrURL)
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let ended = try await waitUntil(deadline: 90) { !process.isRunning }
            if !ended { process.terminate() }
            process.waitUntilExit()
            XCTAssertTrue(ended, "the run did not end within 90 s")
            let stderr = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
            let result = CLIResult(
                status: process.terminationStatus, exited: process.terminationReason == .exit, stdout: Data(),
                stderr: Data(stderr.utf8))
            let run = try outcome(result, dir: dir)
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.uploadedUsers, 0)
            assertAllUploadFailed(run, count: expected.mapped, detailContains: [])
            let text = try String(contentsOf: rss, encoding: .utf8)
            let kilobytes = try XCTUnwrap(
                text.split(whereSeparator: \.isNewline).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.last,
                "no %M figure in \(text)")
            XCTAssertLessThan(kilobytes, 100 * 1024, "peak RSS \(kilobytes) KiB: a 50 MB answer was buffered")
        }
    }
}
