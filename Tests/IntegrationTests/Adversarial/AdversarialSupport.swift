import Foundation
import IntercomSandbox
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The base of the adversarial-server tests: runs of the built binary against a
/// `MisbehavingServer`, with small retry, timeout and wait bounds so every row is quick, and the
/// checks every row makes (the report adds up and is true, nothing counted as uploaded that the
/// server did not take, every mapped item accepted or in the rejects file).
class AdversarialTestCase: IntegrationTestCase {
    static let token = "adv-token-8c41e07b"

    /// The time-bound flags the upload path must take. Set `ADVERSARIAL_WITHOUT_NEW_FLAGS=1` to
    /// leave them out (to check the harness against a binary that does not know them yet).
    static func boundFlags(requestTimeout: Double = 2, maxWait: Double = 5) -> [String] {
        if ProcessInfo.processInfo.environment["ADVERSARIAL_WITHOUT_NEW_FLAGS"] != nil { return [] }
        return ["--request-timeout", number(requestTimeout), "--max-wait", number(maxWait)]
    }

    /// The common flags of a row; `extra` comes last, so a row can override any of them.
    static func baseFlags(batchSize: Int, concurrency: Int = 4, maxRetries: Int = 2, jobWait: Double = 3) -> [String] {
        [
            "--no-progress", "--max-retries", "\(maxRetries)", "--job-wait", number(jobWait), "--batch-size", "\(batchSize)",
            "--concurrency", "\(concurrency)",
        ]
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))" : "\(value)"
    }

    /// One run's outputs, read back.
    struct Outcome {
        var result: CLIResult
        var report: Report?
        var rejects: [[String: Any]]
        var stateDir: URL
        var reportURL: URL
        var stderr: String { result.stderrText }

        /// The canonical `data` of every rejected item (upload and job failures write the item's data as `record`).
        var rejectedData: [String] { rejects.compactMap { ($0["record"] as? String).map { canonicalJSON(text: $0) } } }
        var unreadJobFeeds: [String]? { report?.raw["unread_job_feeds"] as? [String] }
        var jobItemsUnmatched: Int? { report?.raw["job_items_unmatched"] as? Int }
        var failedReasons: [String: Int] { report?.raw["failed_reasons"] as? [String: Int] ?? [:] }
    }

    /// What a dry run of `input` would send: the canonical `data` of every mapped item, by kind,
    /// and the requests at `batchSize`.
    struct Expected {
        var users: [String]
        var events: [String]
        var requests: [DryRunRequest]
        var mapped: Int { users.count + events.count }
        var all: Set<String> { Set(users).union(events) }
    }

    func expected(_ input: URL, batchSize: Int) async throws -> Expected {
        let dir = try makeTemporaryDirectory()
        let dry = try await dryRun([input.path], extra: ["--batch-size", "\(batchSize)", "--no-progress"], in: dir)
        return Expected(
            users: dry.requests.filter(\.isUsers).flatMap(\.data),
            events: dry.requests.filter { !$0.isUsers }.flatMap(\.data), requests: dry.requests)
    }

    /// `users` identify lines (`u0`...), then `events` track lines spread over those users, each
    /// event at its own second (no duplicate Intercom would ignore).
    func smallInput(users: Int = 50, events: Int = 150, in dir: URL) throws -> URL {
        var lines: [String] = []
        for i in 0..<users {
            lines.append(
                #"{"type":"identify","userId":"u\#(i)","timestamp":"2026-11-01T10:00:00Z","traits":{"email":"u\#(i)@example.com","plan":"p\#(i % 3)"}}"#
            )
        }
        for i in 0..<events {
            let second = String(format: "%02d:%02d", (i / 60) % 60, i % 60)
            lines.append(
                #"{"type":"track","userId":"u\#(i % max(1, users))","event":"Adv Event","timestamp":"2026-11-01T11:\#(second)Z","properties":{"n":\#(i)}}"#
            )
        }
        let url = dir.appendingPathComponent("adv-\(users)u-\(events)e.ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func arguments(_ input: URL, endpoint: String, dir: URL, flags: [String], report: String = "report.json") -> [String] {
        [
            "--endpoint", endpoint, "--state-dir", dir.appendingPathComponent("state").path,
            "--report", dir.appendingPathComponent(report).path,
        ] + flags + [input.path]
    }

    /// Runs the binary to its end (a hang is a failure: killed at `deadline`).
    func backfill(
        _ input: URL, endpoint: String, dir: URL, flags: [String], report: String = "report.json",
        deadline: Double = 60, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> Outcome {
        let reportURL = dir.appendingPathComponent(report)
        try? FileManager.default.removeItem(at: reportURL)
        let result = try await run(
            arguments(input, endpoint: endpoint, dir: dir, flags: flags, report: report),
            environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir, deadline: deadline, file: file, line: line)
        return try outcome(result, dir: dir, report: report, file: file, line: line)
    }

    func outcome(
        _ result: CLIResult, dir: URL, report: String = "report.json", file: StaticString = #filePath, line: UInt = #line
    ) throws -> Outcome {
        let reportURL = dir.appendingPathComponent(report)
        let state = dir.appendingPathComponent("state")
        let parsed =
            FileManager.default.fileExists(atPath: reportURL.path) ? try Report(url: reportURL, file: file, line: line) : nil
        if let parsed { assertAddsUp(parsed, file: file, line: line) }
        return Outcome(
            result: result, report: parsed,
            rejects: try ndjsonObjects(state.appendingPathComponent("rejects.ndjson"), file: file, line: line),
            stateDir: state, reportURL: reportURL)
    }

    // MARK: The checks every row makes

    /// Ended by exiting with `status`; the report exists and adds up; nothing counted as uploaded
    /// that the server did not take with a valid job; every mapped item accepted or rejected;
    /// on a complete run uploaded + failed = mapped.
    @discardableResult
    func assertHonest(
        _ run: Outcome, server: MisbehavingServer, expected: Expected, status: Int32, complete: Bool = true,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> Report {
        XCTAssertTrue(
            run.result.exited, "died of signal \(run.result.status) (a trap?): \(run.stderr.suffix(2000))", file: file, line: line
        )
        XCTAssertEqual(run.result.status, status, "exit code; stderr:\n\(run.stderr.suffix(3000))", file: file, line: line)
        let report = try XCTUnwrap(run.report, "no report written; stderr:\n\(run.stderr.suffix(2000))", file: file, line: line)
        XCTAssertEqual(report.mappedUsers, expected.users.count, "mapped users", file: file, line: line)
        XCTAssertEqual(report.mappedEvents, expected.events.count, "mapped events", file: file, line: line)
        let accepted = server.accepted
        XCTAssertLessThanOrEqual(
            report.uploadedUsers, Set(accepted.users).intersection(expected.users).count,
            "users counted as uploaded that the server did not take with a valid job", file: file, line: line)
        XCTAssertLessThanOrEqual(
            report.uploadedEvents, Set(accepted.events).intersection(expected.events).count,
            "events counted as uploaded that the server did not take with a valid job", file: file, line: line)
        XCTAssertGreaterThanOrEqual(report.uploadedUsers, 0, file: file, line: line)
        XCTAssertGreaterThanOrEqual(report.uploadedEvents, 0, file: file, line: line)
        if complete {
            XCTAssertEqual(
                report.uploadedUsers + report.uploadedEvents + report.failed, report.mapped,
                "uploaded + failed = mapped on a complete run: \(report.raw)", file: file, line: line)
            let settled = Set(accepted.users + accepted.events).union(run.rejectedData)
            let missing = expected.all.subtracting(settled)
            XCTAssertTrue(
                missing.isEmpty,
                "\(missing.count) mapped items neither taken by the server nor in the rejects file, e.g. \(missing.first ?? "")",
                file: file, line: line)
            XCTAssertEqual(
                run.rejects.count, report.failed + report.rejectedTotal,
                "one rejects line per failed or rejected item", file: file, line: line)
        }
        return report
    }

    /// Every rejects line is `upload_failed` and its detail says `why`.
    func assertAllUploadFailed(
        _ run: Outcome, count: Int, detailContains why: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(run.rejects.count, count, "rejects lines", file: file, line: line)
        XCTAssertEqual(run.failedReasons, count == 0 ? [:] : ["upload_failed": count], "failed_reasons", file: file, line: line)
        for reject in run.rejects.prefix(3) {
            XCTAssertEqual(reject["reason"] as? String, "upload_failed", "\(reject)", file: file, line: line)
            let detail = (reject["detail"] as? String ?? "").lowercased()
            for word in why {
                XCTAssertTrue(detail.contains(word.lowercased()), "the detail says \(word): \(reject)", file: file, line: line)
            }
        }
    }

    /// Each distinct bulk request body (a batch) was sent `attempts` times.
    func assertEachBatchSent(
        _ server: MisbehavingServer, attempts: Int, batches: Int, file: StaticString = #filePath, line: UInt = #line
    ) {
        var byItems: [String: Int] = [:]
        for request in server.bulkRequests {
            byItems[canonicalJSON(request.items.map { $0["data"] ?? NSNull() }), default: 0] += 1
        }
        XCTAssertEqual(byItems.count, batches, "distinct batches sent", file: file, line: line)
        XCTAssertEqual(
            Set(byItems.values), [attempts], "each batch sent once plus --max-retries times: \(byItems.values.sorted())",
            file: file, line: line)
    }

    /// Runs again with the same state folder against a well-behaved sandbox: together the two
    /// servers took every mapped item.
    func assertRerunDelivers(
        _ input: URL, dir: URL, firstServer: MisbehavingServer, expected: Expected, flags: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        try await withSandbox({ $0.bearerToken = Self.token }) { sandbox in
            let rerun = try await backfill(
                input, endpoint: sandbox.baseURL, dir: dir, flags: flags, report: "rerun-report.json",
                file: file, line: line)
            XCTAssertTrue(rerun.result.exited, file: file, line: line)
            XCTAssertTrue(
                [0, 1].contains(rerun.result.status), "rerun exit \(rerun.result.status): \(rerun.stderr.suffix(2000))",
                file: file, line: line)
            let delivered = Accepted(sandbox.acceptedItems())
            let first = firstServer.accepted
            let users = Set(first.users).union(delivered.users)
            let events = Set(first.events).union(delivered.events)
            let missingUsers = Set(expected.users).subtracting(users)
            let missingEvents = Set(expected.events).subtracting(events)
            XCTAssertTrue(
                missingUsers.isEmpty && missingEvents.isEmpty,
                "after the rerun \(missingUsers.count) users and \(missingEvents.count) events were still never delivered; rerun stderr:\n\(rerun.stderr.suffix(1500))",
                file: file, line: line)
        }
    }

    // MARK: Answers

    static func rateLimitHeaders(remaining: String, reset: String, limit: String = "1000") -> [(String, String)] {
        [("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", remaining), ("X-RateLimit-Reset", reset)]
    }

    static var now: Int { Int(Date().timeIntervalSince1970) }

    static let tooManyRequests =
        #"{"type":"error.list","request_id":"adv429","errors":[{"code":"rate_limit_exceeded","message":"Exceeded rate limit"}]}"#
}

/// A counter shared with a server behaviour closure.
final class Counter: @unchecked Sendable {
    private let box = LockedBox(0)
    /// Adds one and returns the new value (1 for the first call).
    func next() -> Int {
        box.withLock {
            $0 += 1
            return $0
        }
    }
    var value: Int { box.withLock { $0 } }
}
