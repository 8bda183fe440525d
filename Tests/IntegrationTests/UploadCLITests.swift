import Foundation
import IntercomSandbox
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The upload through the binary (contract §1): `--endpoint` pointed at an in-process sandbox on a free loopback
/// port, the token in the child's environment only.
final class UploadCLITests: IntegrationTestCase {
    static let token = "itest-token-3f9c2a7d1b"

    struct UploadRun {
        var result: CLIResult
        var report: Report?
        var rejects: [[String: Any]]
        var rejectsText: String
        var reportText: String
    }

    private func uploadArguments(_ inputs: [String], server: IntercomSandboxServer, extra: [String], in dir: URL) -> [String] {
        [
            "--endpoint", server.baseURL, "--state-dir", dir.appendingPathComponent("state").path,
            "--report", dir.appendingPathComponent("report.json").path, "--job-wait", "60",
        ] + extra + inputs
    }

    private func finish(_ result: CLIResult, in dir: URL, file: StaticString = #filePath, line: UInt = #line) throws -> UploadRun
    {
        let reportURL = dir.appendingPathComponent("report.json")
        let rejectsURL = dir.appendingPathComponent("state/rejects.ndjson")
        let report =
            FileManager.default.fileExists(atPath: reportURL.path) ? try Report(url: reportURL, file: file, line: line) : nil
        if let report { assertAddsUp(report, file: file, line: line) }
        return UploadRun(
            result: result, report: report, rejects: try ndjsonObjects(rejectsURL, file: file, line: line),
            rejectsText: (try? String(contentsOf: rejectsURL, encoding: .utf8)) ?? "",
            reportText: (try? String(contentsOf: reportURL, encoding: .utf8)) ?? "")
    }

    private func upload(
        _ inputs: [String], to server: IntercomSandboxServer, token: String = UploadCLITests.token,
        extra: [String] = [], in dir: URL, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> UploadRun {
        let result = try await run(
            uploadArguments(inputs, server: server, extra: extra, in: dir),
            environment: ["INTERCOM_ACCESS_TOKEN": token], in: dir, file: file, line: line)
        return try finish(result, in: dir, file: file, line: line)
    }

    /// The dry-run requests of the same input, in a folder of their own.
    private func dryRunRequests(_ inputs: [String], extra: [String] = []) async throws -> (DryRun, [DryRunRequest]) {
        let dir = try makeTemporaryDirectory()
        let run = try await dryRun(inputs, extra: extra, in: dir)
        return (run, run.requests)
    }

    private func write(_ lines: [String], to url: URL) throws {
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    // MARK: -

    func test_upload_cleanRun_everyMappedItemArrivesExactlyOnce() async throws {
        let dir = try makeTemporaryDirectory()
        let (dry, requests) = try await dryRunRequests([Paths.sample.path])
        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            let up = try await upload([Paths.sample.path], to: server, in: dir)
            XCTAssertEqual(up.result.status, 1, "the sample has rejected records: exit 1\n\(up.result.stderrText)")
            let report = try XCTUnwrap(up.report)
            XCTAssertEqual(report.mappedUsers, dry.report.mappedUsers)
            XCTAssertEqual(report.mappedEvents, dry.report.mappedEvents)
            XCTAssertEqual(report.uploadedUsers, report.mappedUsers, "uploaded = mapped")
            XCTAssertEqual(report.uploadedEvents, report.mappedEvents, "uploaded = mapped")
            XCTAssertEqual(report.failed, 0)
            XCTAssertEqual(report.retries, 0)
            XCTAssertGreaterThanOrEqual(report.requests, requests.count)
            XCTAssertEqual(up.rejects.count, report.rejectedTotal, "only the mapping rejects")

            let accepted = Accepted(server.acceptedItems())
            let stats = server.stats()
            let sentUsers = requests.filter(\.isUsers).flatMap(\.data)
            let sentEvents = requests.filter { !$0.isUsers }.flatMap(\.data)
            XCTAssertEqual(accepted.users.sortedMultiset, sentUsers.sortedMultiset, "every user item arrived exactly once")
            XCTAssertEqual(
                accepted.events.count + stats.duplicates, sentEvents.count,
                "every event arrived once (or was a duplicate Intercom ignores)")
            XCTAssertTrue(Set(sentEvents).isSuperset(of: accepted.events), "nothing arrived that was not sent")
            let acceptedKeys = Set(accepted.ordered.filter { $0.type == "event" }.map { eventKey($0.data) })
            let sentKeys = Set(
                requests.filter { !$0.isUsers }.flatMap(\.items).map { eventKey($0["data"] as? [String: Any] ?? [:]) })
            XCTAssertEqual(acceptedKeys, sentKeys)
            XCTAssertEqual(stats.itemsFailed, 0)
            XCTAssertEqual(stats.unauthorized, 0)
            XCTAssertTrue(
                up.result.stderrText.contains("uploaded: \(report.mappedUsers) users, \(report.mappedEvents) events"),
                up.result.stderrText)
        }
    }

    func test_upload_wrongToken_exit3_saysCheckTheToken_neverShowsIt() async throws {
        let dir = try makeTemporaryDirectory()
        let wrong = "wrong-token-Zq81xY0sEcReT"
        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            let up = try await upload(
                [Paths.sampleFiles[0].path], to: server, token: wrong, extra: ["--log-level", "trace"], in: dir)
            XCTAssertEqual(up.result.status, 3, up.result.stderrText)
            XCTAssertTrue(
                up.result.stderrText.contains("INTERCOM_ACCESS_TOKEN"), "says which token to check: \(up.result.stderrText)")
            XCTAssertTrue(up.result.stderrText.lowercased().contains("check"), up.result.stderrText)
            for (name, text) in [
                ("stdout", up.result.stdoutText), ("stderr", up.result.stderrText), ("rejects", up.rejectsText),
                ("report", up.reportText),
            ] {
                XCTAssertFalse(text.contains(wrong), "the token appears in \(name)")
                XCTAssertFalse(text.contains("Zq81xY0sEcReT"), "part of the token appears in \(name)")
            }
            XCTAssertGreaterThanOrEqual(server.stats().unauthorized, 1)
            XCTAssertEqual(server.stats().itemsAccepted, SandboxStats.ItemCounts(users: 0, events: 0))
            XCTAssertLessThanOrEqual(server.stats().unauthorized, 8, "the run stops at once instead of trying every batch")
        }
    }

    /// A whole request answered 4xx (here 413: the body is over the sandbox's limit): its items
    /// go to the rejects file with the error code and their source lines; the run goes on.
    func test_upload_requestLevel4xx_itemsRejectedWithCodeAndLine_runGoesOn() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("sizes.ndjson")
        let wide = (0..<40).map { #""attr\#($0)":"\#(String(repeating: "x", count: 200))""# }.joined(separator: ",")
        try write(
            [
                #"{"type":"identify","userId":"small1","timestamp":"2026-11-01T10:00:00Z","traits":{"plan":"a"}}"#,
                #"{"type":"identify","userId":"big","timestamp":"2026-11-01T10:00:00Z","traits":{\#(wide)}}"#,
                #"{"type":"identify","userId":"small2","timestamp":"2026-11-01T10:00:00Z","traits":{"plan":"b"}}"#,
                #"{"type":"track","userId":"small2","event":"After","timestamp":"2026-11-01T10:00:01Z"}"#,
            ], to: input)
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.maxBodyBytes = 4096
        }) { server in
            let up = try await upload([input.path], to: server, extra: ["--batch-size", "1", "--concurrency", "1"], in: dir)
            XCTAssertEqual(up.result.status, 1, up.result.stderrText)
            let report = try XCTUnwrap(up.report)
            XCTAssertEqual(report.mapped, 4)
            XCTAssertEqual(report.failed, 1)
            XCTAssertEqual(report.uploadedUsers, 2)
            XCTAssertEqual(report.uploadedEvents, 1)
            XCTAssertEqual(up.rejects.count, 1)
            let reject = try XCTUnwrap(up.rejects.first)
            XCTAssertEqual(reject["reason"] as? String, "request_entity_too_large")
            XCTAssertEqual(reject["source"] as? String, input.path)
            XCTAssertEqual(reject["line"] as? Int, 2)
            XCTAssertTrue((reject["detail"] as? String ?? "").contains("413"), "\(reject)")
            XCTAssertTrue((reject["record"] as? String ?? "").contains("\"big\""), "the item is in the reject: \(reject)")
            let accepted = Accepted(server.acceptedItems())
            XCTAssertEqual(
                accepted.ordered.compactMap { $0.data["user_id"] as? String }, ["small1", "small2", "small2"],
                "the run went on after the 413")
        }
    }

    /// Items Intercom takes in a job and then fails (here: an email the sandbox refuses) end up in
    /// the rejects file with Intercom's code and the file and line they came from.
    func test_upload_itemsFailingInsideAJob_rejectedWithIntercomsCodeAndTheirLine() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("jobfail.ndjson")
        try write(
            [
                #"{"type":"identify","userId":"bad-user","timestamp":"2026-11-01T10:00:00Z","traits":{"email":"not-an-email"}}"#,
                #"{"type":"identify","userId":"good-user","timestamp":"2026-11-01T10:00:00Z","traits":{"email":"good@example.com"}}"#,
                "",
                #"{"type":"track","userId":"good-user","event":"Fine","timestamp":"2026-11-01T10:00:01Z"}"#,
                #"{"type":"track","event":"Bad Email","timestamp":"2026-11-01T10:00:02Z","properties":{"email":"not-an-email"}}"#,
            ], to: input)
        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            let up = try await upload([input.path], to: server, in: dir)
            XCTAssertEqual(up.result.status, 1, "items failed at Intercom: exit 1\n\(up.result.stderrText)")
            let report = try XCTUnwrap(up.report)
            XCTAssertEqual(report.mapped, 4)
            XCTAssertEqual(report.failed, 2)
            XCTAssertEqual(report.raw["failed_reasons"] as? [String: Int], ["parameter_invalid": 2])
            XCTAssertEqual(report.uploadedUsers, 1)
            XCTAssertEqual(report.uploadedEvents, 1)
            XCTAssertEqual(server.stats().itemsFailed, 2)

            let rejects = up.rejects.sorted { ($0["line"] as? Int ?? 0) < ($1["line"] as? Int ?? 0) }
            XCTAssertEqual(rejects.map { $0["line"] as? Int }, [1, 5])
            for reject in rejects {
                XCTAssertEqual(reject["reason"] as? String, "parameter_invalid", "\(reject)")
                XCTAssertEqual(reject["source"] as? String, input.path, "\(reject)")
                XCTAssertTrue((reject["detail"] as? String ?? "").contains("email"), "Intercom's message: \(reject)")
                XCTAssertTrue((reject["record"] as? String ?? "").contains("not-an-email"), "\(reject)")
            }
        }
    }

    func test_upload_sigterm_exit143_reportAddsUp_processEnds() async throws {
        let dir = try makeTemporaryDirectory()
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.latencyMilliseconds = 100
        }) { server in
            let process = try launch(
                uploadArguments([Paths.sample.path], server: server, extra: ["--batch-size", "5"], in: dir),
                environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            let started = try await waitUntil(deadline: 60) { server.stats().requests >= 3 || !process.isRunning }
            XCTAssertTrue(started, "the run sent no requests")
            XCTAssertTrue(process.isRunning, "the run must still be going (about 600 requests at 100 ms each)")
            process.send(SIGTERM)
            let result = try await process.wait(deadline: 60)
            XCTAssertTrue(result.exited, "ended by exiting, not by the signal")
            XCTAssertEqual(result.status, 143, result.stderrText)
            let up = try finish(result, in: dir)
            let report = try XCTUnwrap(up.report, "the report is written on SIGTERM too")
            XCTAssertLessThan(report.records, 3971, "stopped before the end of the input")
            let stats = server.stats()
            XCTAssertLessThanOrEqual(stats.itemsAccepted.users, report.mappedUsers)
            XCTAssertLessThanOrEqual(stats.itemsAccepted.events + stats.duplicates, report.mappedEvents)
            XCTAssertEqual(report.uploadedUsers, stats.itemsAccepted.users, "the report counts what the sandbox took")
            XCTAssertEqual(report.uploadedEvents, stats.itemsAccepted.events + stats.duplicates)
        }
    }

    /// With 4 requests in flight, an event is accepted only after the user items that came before
    /// it in the input (see `assertUsersAcceptedBeforeTheirEvents`).
    func test_upload_concurrency4_usersAcceptedBeforeTheEventsThatFollowThem() async throws {
        let dir = try makeTemporaryDirectory()
        let extra = ["--batch-size", "7", "--concurrency", "4"]
        let (_, requests) = try await dryRunRequests([Paths.sample.path], extra: extra)
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.threads = 4
        }) { server in
            let up = try await upload([Paths.sample.path], to: server, extra: extra, in: dir)
            XCTAssertEqual(up.result.status, 1, up.result.stderrText)

            let checked = assertUsersAcceptedBeforeTheirEvents(sent: requests, accepted: server.acceptedItems())
            XCTAssertGreaterThan(checked, 100, "enough events with an earlier user to make the check mean something")
        }
    }

    /// Tokens are never taken from argv (they would show in `ps`): `--token` is not an option.
    func test_tokenOption_doesNotExist_exit2() async throws {
        let dir = try makeTemporaryDirectory()
        let secret = "argv-token-NotAllowed77"
        let result = try await run(
            [
                "run", "--token", secret, "--dry-run", "--state-dir", dir.appendingPathComponent("s").path,
                Paths.edge.appendingPathComponent("crlf_bom.ndjson").path,
            ], in: dir)
        XCTAssertTrue(result.stderrText.contains("--token"), result.stderrText)
        XCTAssertTrue(result.stdout.isEmpty, "nothing ran")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("s").path), "nothing ran")
        try assertUsageErrorExit(result)
    }
}
