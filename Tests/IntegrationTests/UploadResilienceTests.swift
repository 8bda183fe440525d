import Foundation
import IntercomBackfill
import IntercomSandbox
import XCTest

/// The upload in process (contract §1): Pipeline + Uploader + IntercomClient over loopback HTTP to the sandbox,
/// sharing one virtual clock with it, so rate-limit windows and backoff pass without sleeping.
final class UploadResilienceTests: IntegrationTestCase {
    static let token = "itest-resilience-token"

    func test_faultsAndATightRateLimit_everyItemStillArrives_reportAddsUp() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.sample.path
        let batchSize = 25
        let dry = try await dryRun([input], extra: ["--batch-size", "\(batchSize)"], in: dir)
        let sentUsers = dry.requests.filter(\.isUsers).flatMap(\.data)
        let sentEvents = dry.requests.filter { !$0.isUsers }.flatMap(\.data)

        let clock = SandboxManualClock()
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.failRate = 0.05
            $0.seed = 20_261_101
            $0.rateLimitPerWindow = 5
            $0.clock = clock.clock
        }) { server in
            let run = try await uploadInProcess(
                inputs: [input], to: server, token: Self.token, clock: VirtualUploadClock(clock: clock),
                stateDir: dir.appendingPathComponent("upload-state"), batchSize: batchSize, concurrency: 4)
            let report = try Report(run.report)
            assertAddsUp(report)
            XCTAssertEqual(report.records, dry.report.records)
            XCTAssertEqual(report.mappedUsers, sentUsers.count)
            XCTAssertEqual(report.mappedEvents, sentEvents.count)
            XCTAssertEqual(report.failed, 0, "every transient failure was retried to success: \(run.report.failed)")
            XCTAssertEqual(report.uploadedUsers, report.mappedUsers)
            XCTAssertEqual(report.uploadedEvents, report.mappedEvents)
            XCTAssertEqual(run.rejects.count, dry.rejects.count, "only the mapping rejects")

            let stats = server.stats()
            XCTAssertGreaterThan(stats.faults.total, 0, "the seed injects faults")
            XCTAssertGreaterThanOrEqual(report.retries, stats.faults.total, "every fault was retried")
            XCTAssertGreaterThan(report.retries, 0)
            // The limiter reads X-RateLimit-*: only the odd request meets a 429, not one per window.
            let windows = Int((clock.now - 1_700_000_000) / 10) + 1
            XCTAssertGreaterThan(windows, dry.requests.count / 5 - 1, "the virtual clock moved through the rate-limit windows")
            XCTAssertLessThanOrEqual(stats.rateLimited, 3, "\(stats.rateLimited) requests were answered 429 in \(stats.requests)")

            let accepted = Accepted(server.acceptedItems())
            XCTAssertEqual(accepted.users.sortedMultiset, sentUsers.sortedMultiset, "every user item arrived exactly once")
            XCTAssertEqual(
                accepted.events.count + stats.duplicates, sentEvents.count, "every event arrived, once or as an ignored duplicate"
            )
            XCTAssertTrue(Set(sentEvents).isSuperset(of: accepted.events))
            let sentKeys = Set(
                dry.requests.filter { !$0.isUsers }.flatMap(\.items).map { eventKey($0["data"] as? [String: Any] ?? [:]) })
            XCTAssertEqual(Set(accepted.ordered.filter { $0.type == "event" }.map { eventKey($0.data) }), sentKeys)
        }
    }

    /// Users before the events that follow them, with 4 requests in flight, even when a users
    /// request fails and is retried: the events batches behind it wait (injected faults make
    /// users batches late often enough that a missing barrier shows).
    func test_concurrency4_withRetries_usersAcceptedBeforeTheEventsThatFollowThem() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.sample.path
        let dry = try await dryRun([input], extra: ["--batch-size", "10"], in: dir)
        let clock = SandboxManualClock()
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.failRate = 0.15
            $0.seed = 7
            $0.threads = 4
            $0.clock = clock.clock
        }) { server in
            let run = try await uploadInProcess(
                inputs: [input], to: server, token: Self.token, clock: VirtualUploadClock(clock: clock),
                stateDir: dir.appendingPathComponent("upload-state"), batchSize: 10, concurrency: 4)
            let report = try Report(run.report)
            assertAddsUp(report)
            XCTAssertEqual(report.failed, 0)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, report.mapped)
            XCTAssertGreaterThan(server.stats().faults.total, 20, "enough late users batches")
            let checked = assertUsersAcceptedBeforeTheirEvents(sent: dry.requests, accepted: server.acceptedItems())
            XCTAssertGreaterThan(checked, 100)
        }
    }
    /// Jobs rotate every few items here, so their error feeds are read while the run goes on
    /// (memory stays bounded); every failed item is still traced to its file and line.
    func test_rotatedJobs_errorFeedsReadDuringTheRun_failedItemsKeepTheirLines() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("bad-emails.ndjson")
        var lines: [String] = []
        for n in 1...30 {
            let email = n % 3 == 0 ? "broken-\(n)" : "user\(n)@example.com"
            lines.append("{\"type\":\"identify\",\"userId\":\"u\(n)\",\"traits\":{\"email\":\"\(email)\"}}")
        }
        try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
        let clock = SandboxManualClock()
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.clock = clock.clock
        }) { server in
            let run = try await uploadInProcess(
                inputs: [input.path], to: server, token: Self.token, clock: VirtualUploadClock(clock: clock),
                stateDir: dir.appendingPathComponent("state"), batchSize: 2, concurrency: 2
            ) {
                $0.maxItemsPerJob = 4
            }
            XCTAssertGreaterThan(server.stats().jobs, 2, "jobs were rotated")
            XCTAssertEqual(run.report.failed["parameter_invalid"], 10)
            XCTAssertEqual(run.report.uploadedUsers, 20)
            let failedLines = run.rejects.compactMap { $0["reason"] as? String == "parameter_invalid" ? $0["line"] as? Int : nil }
                .sorted()
            XCTAssertEqual(failedLines, Array(stride(from: 3, through: 30, by: 3)))
            XCTAssertTrue(run.rejects.allSatisfy { ($0["source"] as? String) == input.path })
        }
    }
}
