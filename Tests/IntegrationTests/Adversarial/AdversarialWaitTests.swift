import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits the server asks for: validated and clamped to `--max-wait` (never a trap on a huge or
/// infinite value, never a hang on a zero, negative or NaN one), a backoff with jitter on every
/// 429, and a SIGTERM that ends a long wait at once.
final class AdversarialWaitTests: AdversarialTestCase {
    /// The first bulk request is answered `status` with `headers`; every other request well.
    /// The run must end by exiting 0 with every item delivered.
    private func assertFirstAnswerSurvived(
        status: Int, headers: @escaping @Sendable () -> [(String, String)], maxWait: Double = 2,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> AdversarialTestCase.Outcome {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 30, events: 60, in: dir)
        let batchSize = 30
        let expected = try await expected(input, batchSize: batchSize)
        let bulk = Counter()
        return try await withMisbehavingServer({ request, server in
            guard request.isBulk, bulk.next() == 1 else { return server.defaultAnswer(request) }
            if status == 429 { return .json(429, Self.tooManyRequests, headers: headers()) }
            let answer = server.defaultAnswer(request)
            guard case .respond(let code, let base, let body) = answer else { return answer }
            return .respond(status: code, headers: base + headers(), body: body)
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir,
                flags: Self.baseFlags(batchSize: batchSize) + Self.boundFlags(maxWait: maxWait), file: file, line: line)
            let report = try assertHonest(run, server: server, expected: expected, status: 0, file: file, line: line)
            XCTAssertEqual(
                report.uploadedUsers, expected.users.count, "every user delivered after the wait", file: file, line: line)
            XCTAssertEqual(
                report.uploadedEvents, expected.events.count, "every event delivered after the wait", file: file, line: line)
            XCTAssertEqual(run.rejects.count, 0, file: file, line: line)
            return run
        }
    }

    // MARK: Huge or infinite waits: no trap, clamped to --max-wait

    func test_429WithResetInMilliseconds_noTrap_waitClampedToMaxWait_runEndsDelivered() async throws {
        let run = try await assertFirstAnswerSurvived(status: 429) {
            Self.rateLimitHeaders(remaining: "0", reset: "\((Self.now + 3600) * 1000)")
        }
        XCTAssertTrue(run.stderr.lowercased().contains("wait"), "a long wait is logged: \(run.stderr.suffix(1500))")
    }

    func test_429WithResetInf_noTrap_waitClampedToMaxWait_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { Self.rateLimitHeaders(remaining: "0", reset: "inf") }
    }

    func test_429WithReset1e300_noTrap_waitClampedToMaxWait_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { Self.rateLimitHeaders(remaining: "0", reset: "1e300") }
    }

    func test_429WithRetryAfterInf_noTrap_waitClampedToMaxWait_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { [("Retry-After", "inf")] }
    }

    /// `Remaining: 0` with an unbounded Reset on a good answer: that answer is acceptance, and the
    /// rate-limit wait it implies is clamped, not a trap.
    func test_acceptedAnswerWithRemaining0AndReset1e300_noTrap_waitClamped_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 200) { Self.rateLimitHeaders(remaining: "0", reset: "1e300") }
    }

    // MARK: Zero, negative or NaN waits: a finite backoff, never a hang

    func test_429WithReset0_backsOffFinitely_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { Self.rateLimitHeaders(remaining: "0", reset: "0") }
    }

    func test_429WithNegativeReset_backsOffFinitely_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { Self.rateLimitHeaders(remaining: "0", reset: "-1764600000") }
    }

    func test_429WithRetryAfterNaN_backsOffFinitely_runEndsDelivered() async throws {
        _ = try await assertFirstAnswerSurvived(status: 429) { [("Retry-After", "nan")] }
    }

    /// Every bulk request answered 429 with `Reset: 0`: the retries are bounded, then the items
    /// are `upload_failed`; the run ends.
    func test_every429WithReset0_retriesBounded_thenUploadFailed_runEnds() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 40, in: dir)
        let expected = try await expected(input, batchSize: 20)
        try await withMisbehavingServer({ request, server in
            request.isBulk
                ? .json(429, Self.tooManyRequests, headers: Self.rateLimitHeaders(remaining: "0", reset: "0"))
                : server.defaultAnswer(request)
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags(maxWait: 2))
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, 0)
            assertAllUploadFailed(run, count: expected.mapped, detailContains: ["429"])
            assertEachBatchSent(server, attempts: 3, batches: expected.requests.count)
        }
    }

    // MARK: Rate-limit waits: clamped, logged, interruptible

    /// `Remaining: 0` and a Reset a day ahead: the wait is clamped to `--max-wait` and logged,
    /// and the run goes on to deliver everything.
    func test_remaining0WithResetADayAhead_waitClampedToMaxWaitAndLogged_runEndsDelivered() async throws {
        let run = try await assertFirstAnswerSurvived(status: 200) {
            Self.rateLimitHeaders(remaining: "0", reset: "\(Self.now + 86_400)")
        }
        XCTAssertTrue(run.stderr.lowercased().contains("wait"), "a long rate-limit wait is logged: \(run.stderr.suffix(1500))")
    }

    /// A SIGTERM during a long rate-limit wait ends the wait at once: exit 143, the summary on
    /// stderr, the report and the checkpoint written; a rerun delivers the rest.
    func test_sigtermDuringLongRateLimitWait_endsAtOnce_exit143_summaryReportCheckpoint_rerunDelivers() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 30, events: 60, in: dir)
        let batchSize = 30
        let expected = try await expected(input, batchSize: batchSize)
        let flags = Self.baseFlags(batchSize: batchSize) + Self.boundFlags(maxWait: 900)
        let bulk = Counter()
        try await withMisbehavingServer({ request, server in
            let answer = server.defaultAnswer(request)
            guard request.isBulk, bulk.next() == 1, case .respond(let code, let base, let body) = answer else { return answer }
            return .respond(
                status: code, headers: base + Self.rateLimitHeaders(remaining: "0", reset: "\(Self.now + 86_400)"), body: body)
        }) { server in
            let process = try launch(
                arguments(input, endpoint: server.baseURL, dir: dir, flags: flags),
                environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            let answered = try await waitUntil(deadline: 30) {
                server.bulkRequests.first.flatMap { server.arrivedWhenAnswered($0.index) } != nil || !process.isRunning
            }
            XCTAssertTrue(answered, "the first bulk request was never answered")
            XCTAssertTrue(process.isRunning, "the run must be in its long wait, not ended")
            let bulkBefore = server.bulkRequests.count
            process.send(SIGTERM)
            let result = try await process.wait(deadline: 30)
            let run = try outcome(result, dir: dir)
            XCTAssertTrue(result.exited, "ended by exiting, not by the signal")
            XCTAssertEqual(result.status, 143, run.stderr.suffix(2000).description)
            XCTAssertTrue(run.stderr.contains("records in"), "the summary is on stderr: \(run.stderr.suffix(1500))")
            let report = try XCTUnwrap(run.report, "the report is written on SIGTERM")
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: run.stateDir.appendingPathComponent("checkpoint.json").path),
                "checkpoint.json is written")
            XCTAssertEqual(
                report.uploadedUsers + report.uploadedEvents, server.accepted.total,
                "the report counts what the server took: \(report.raw)")
            XCTAssertEqual(server.bulkRequests.count, bulkBefore, "no batch was sent once stopped during the wait")
            try await assertRerunDelivers(
                input, dir: dir, firstServer: server, expected: expected,
                flags: Self.baseFlags(batchSize: batchSize) + Self.boundFlags())
        }
    }

    // MARK: Retry storms

    /// A burst of 429s whose Reset is already past still backs off with jitter: the burst (1.5 s
    /// of server time) does not see the batch's every retry, and the batch is delivered after it.
    func test_429BurstWithResetInThePast_stillBacksOff_retriesNotBurnedInTheBurst_delivered() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 0, in: dir)
        let expected = try await expected(input, batchSize: 100)
        let burstStart = LockedBox<Date?>(nil)
        let inBurst = Counter()
        try await withMisbehavingServer({ request, server in
            guard request.isBulk else { return server.defaultAnswer(request) }
            let start: Date = burstStart.withLock {
                if $0 == nil { $0 = Date() }
                return $0!
            }
            guard Date().timeIntervalSince(start) < 1.5 else { return server.defaultAnswer(request) }
            _ = inBurst.next()
            return .json(429, Self.tooManyRequests, headers: Self.rateLimitHeaders(remaining: "0", reset: "\(Self.now - 30)"))
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir,
                flags: Self.baseFlags(batchSize: 100, concurrency: 1, maxRetries: 6) + Self.boundFlags())
            XCTAssertLessThan(
                inBurst.value, 7, "all 1 + 6 attempts of the batch were spent inside a 1.5 s burst of 429s: no backoff")
            let report = try assertHonest(run, server: server, expected: expected, status: 0)
            XCTAssertEqual(report.uploadedUsers, expected.users.count, "delivered once the burst was over")
        }
    }
}
