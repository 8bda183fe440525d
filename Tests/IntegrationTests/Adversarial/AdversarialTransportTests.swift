import Foundation
import XCTest

/// The transport seen from a hostile server: bodies trickled or never sent, dropped connections,
/// redirects, server-chosen job ids in paths, and a 401 in the middle of a run.
final class AdversarialTransportTests: AdversarialTestCase {
    private func assertFirstBulkRequestRetried(
        _ answer: MisbehavingServer.Answer, requestTimeout: Double = 2,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 40, in: dir)
        let expected = try await expected(input, batchSize: 20)
        let bulk = Counter()
        try await withMisbehavingServer({ request, server in
            request.isBulk && bulk.next() == 1 ? answer : server.defaultAnswer(request)
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir,
                flags: Self.baseFlags(batchSize: 20) + Self.boundFlags(requestTimeout: requestTimeout), deadline: 45, file: file,
                line: line)
            let report = try assertHonest(run, server: server, expected: expected, status: 0, file: file, line: line)
            XCTAssertEqual(
                report.uploadedUsers + report.uploadedEvents, expected.mapped, "delivered after the retry", file: file, line: line
            )
            XCTAssertGreaterThanOrEqual(report.retries, 1, "the stalled request was retried", file: file, line: line)
            XCTAssertEqual(
                server.bulkRequests.count, expected.requests.count + 1, "one batch sent twice, the others once", file: file,
                line: line)
        }
    }

    /// Headers at once, then the body a byte a second: `--request-timeout` covers reading the
    /// whole body, and the request is retried like a timeout.
    func test_trickledAnswerBody_timesOutWithinRequestTimeout_retried_delivered() async throws {
        let body = Data(#"{"type":"job","app_id":"adv0app1","id":"job_trickle","name":"api_bulk_job","state":"running"}"#.utf8)
        try await assertFirstBulkRequestRetried(
            .trickle(status: 200, headers: [("Content-Type", "application/json")], body: body, interval: 1))
    }

    /// A request read and never answered: timed out after `--request-timeout`, retried.
    func test_requestNeverAnswered_timesOutWithinRequestTimeout_retried_delivered() async throws {
        try await assertFirstBulkRequestRetried(.never)
    }

    /// A connection closed after the request was read, without a byte of answer: retried.
    func test_connectionDroppedAfterTheBody_retriedAsTransient_delivered() async throws {
        try await assertFirstBulkRequestRetried(.dropAfterBody)
    }

    /// A connection closed before the body was read: retried.
    func test_connectionDroppedBeforeTheBody_retriedAsTransient_delivered() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 40, in: dir)
        let expected = try await expected(input, batchSize: 20)
        let heads = Counter()
        try await withMisbehavingServer(dropsBeforeBody: { $0.isBulk && heads.next() == 1 }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags())
            let report = try assertHonest(run, server: server, expected: expected, status: 0)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, expected.mapped)
            XCTAssertGreaterThanOrEqual(heads.value, expected.requests.count + 1, "the dropped request was sent again")
        }
    }

    // MARK: Redirects

    /// What a redirect of a bulk POST does once it is refused. `false`: the batch fails like a
    /// transient error, is retried, then `upload_failed` naming the target (exit 1). `true`: the run
    /// stops at once (exit 3) naming the target on stderr, nothing retried. Either way the
    /// redirect is never followed and the target receives nothing.
    static let redirectEndsTheRun = true

    /// A redirect of a bulk POST (to another origin, or elsewhere on the same one) is not
    /// followed: the target receives nothing, nothing is counted as uploaded, and what follows is
    /// as `redirectEndsTheRun` says, naming the target.
    private func assertRedirectNotFollowed(status: Int, crossOrigin: Bool, file: StaticString = #filePath, line: UInt = #line)
        async throws
    {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 20, in: dir)
        let expected = try await expected(input, batchSize: 20)
        try await withMisbehavingServer { other in
            let location = LockedBox<String>("")
            try await withMisbehavingServer({ request, server in
                guard request.isBulk else { return server.defaultAnswer(request) }
                let target = crossOrigin ? other.baseURL + request.path : server.baseURL + "/elsewhere" + request.path
                location.withLock { $0 = target }
                return .respond(status: status, headers: [("Location", target)], body: Data("moved".utf8))
            }) { server in
                let run = try await backfill(
                    input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags(),
                    file: file, line: line)
                XCTAssertEqual(
                    other.requestCount, 0, "the other origin received requests: \(other.requests.map(\.target))", file: file,
                    line: line)
                XCTAssertFalse(
                    server.requests.contains { $0.path.hasPrefix("/elsewhere") }, "a redirect of a POST was followed", file: file,
                    line: line)
                let named = crossOrigin ? "127.0.0.1:\(other.port)" : "/elsewhere"
                XCTAssertFalse(location.withLock { $0 }.isEmpty, "no redirect was given", file: file, line: line)
                if Self.redirectEndsTheRun {
                    XCTAssertTrue(run.result.exited, file: file, line: line)
                    XCTAssertEqual(run.result.status, 3, run.stderr.suffix(2000).description, file: file, line: line)
                    XCTAssertTrue(
                        run.stderr.contains(named), "stderr names the redirect target \(named): \(run.stderr.suffix(1500))",
                        file: file, line: line)
                    let report = try XCTUnwrap(run.report, "the report is written", file: file, line: line)
                    XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, 0, file: file, line: line)
                    XCTAssertLessThanOrEqual(
                        server.bulkRequests.count, 4, "nothing retried after a redirect", file: file, line: line)
                } else {
                    let report = try assertHonest(run, server: server, expected: expected, status: 1, file: file, line: line)
                    XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, 0, file: file, line: line)
                    assertAllUploadFailed(run, count: expected.mapped, detailContains: [named], file: file, line: line)
                    assertEachBatchSent(server, attempts: 3, batches: expected.requests.count, file: file, line: line)
                }
            }
        }
    }

    func test_307ToAnotherOrigin_notFollowed_otherOriginReceivesNothing_batchRetriedThenUploadFailedNamingTheTarget() async throws
    {
        try await assertRedirectNotFollowed(status: 307, crossOrigin: true)
    }

    func test_301ToAnotherOrigin_notFollowed_otherOriginReceivesNothing_batchRetriedThenUploadFailedNamingTheTarget() async throws
    {
        try await assertRedirectNotFollowed(status: 301, crossOrigin: true)
    }

    func test_307OfAPostOnTheSameOrigin_notFollowed_batchRetriedThenUploadFailedNamingTheTarget() async throws {
        try await assertRedirectNotFollowed(status: 307, crossOrigin: false)
    }

    // MARK: Server-chosen job ids

    /// The segments after `/jobs/` of a request target, each percent-decoded (nil: not under
    /// `/jobs/`, or with a query).
    private static func decodedJobSegments(_ target: String) -> [String]? {
        guard target.hasPrefix("/jobs/"), !target.contains("?") else { return nil }
        let segments = target.dropFirst("/jobs/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        return segments.map { $0.removingPercentEncoding ?? $0 }
    }

    /// A job id like `job/../../x?y` is one percent-encoded path segment in `/jobs/{id}` and
    /// `/jobs/{id}/error`: it never adds segments, a query, or climbs out of `/jobs/`.
    func test_jobIDWithSlashesDotsAndQuery_percentEncodedAsOnePathSegment() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 20, in: dir)
        let expected = try await expected(input, batchSize: 20)
        let hostile = "job/../../x?y"
        try await withMisbehavingServer({ request, server in
            if request.isBulk {
                server.recordAccepted(request.items, kind: request.isUsers ? "user" : "event")
                return .json(200, server.jobJSON(id: hostile, state: "running"))
            }
            guard request.method == "GET", let segments = Self.decodedJobSegments(request.target), segments.first == hostile
            else {
                return .json(404, #"{"type":"error.list","errors":[{"code":"not_found","message":"no such job"}]}"#)
            }
            if segments == [hostile] { return .json(200, server.jobJSON(id: hostile, state: "completed")) }
            if segments == [hostile, "error"] { return .json(200, server.errorFeedJSON(jobID: hostile, items: [], next: nil)) }
            return .json(404, #"{"type":"error.list","errors":[{"code":"not_found","message":"no such job"}]}"#)
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags())
            let gets = server.requests.filter { $0.method == "GET" }
            XCTAssertFalse(gets.isEmpty, "the job was polled")
            for get in gets {
                let segments = Self.decodedJobSegments(get.target)
                XCTAssertTrue(segments == [hostile] || segments == [hostile, "error"], "not one encoded segment: \(get.target)")
            }
            XCTAssertTrue(
                gets.contains { Self.decodedJobSegments($0.target) == [hostile, "error"] },
                "the error feed was read: \(gets.map(\.target))")
            let report = try assertHonest(run, server: server, expected: expected, status: 0)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, expected.mapped)
        }
    }

    // MARK: A fatal 401 mid-run

    /// The 6th bulk request (the first events batch) is answered 401: exit 3; the report and
    /// summary show what was accepted before (every users batch; `uploaded` and `requests` true
    /// within the requests in flight); nothing reaches the server after the 401 answer beyond the
    /// requests already in flight; a rerun delivers the rest.
    func test_401MidRun_exit3_reportAndSummaryShowWhatWasAccepted_noRequestAfterIt_rerunDelivers() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 50, events: 150, in: dir)
        let batchSize = 10
        let concurrency = 4
        let expected = try await expected(input, batchSize: batchSize)
        let flags = Self.baseFlags(batchSize: batchSize, concurrency: concurrency) + Self.boundFlags()
        let bulk = Counter()
        let refused = LockedBox<Int?>(nil)
        try await withMisbehavingServer({ request, server in
            guard request.isBulk, bulk.next() == 6 else { return server.defaultAnswer(request) }
            refused.withLock { $0 = request.index }
            return .json(
                401,
                #"{"type":"error.list","request_id":"adv401","errors":[{"code":"unauthorized","message":"Access Token Invalid"}]}"#
            )
        }) { server in
            let run = try await backfill(input, endpoint: server.baseURL, dir: dir, flags: flags)
            XCTAssertTrue(run.result.exited)
            XCTAssertEqual(run.result.status, 3, run.stderr.suffix(2000).description)
            let report = try XCTUnwrap(run.report, "the report is written after a fatal 401")
            assertAddsUp(report)
            let accepted = server.accepted
            // The 6th bulk request is the first events batch: every users batch was settled before it.
            XCTAssertEqual(accepted.distinctUsers, expected.users.count, "the server took every users batch before the 401")
            XCTAssertEqual(
                report.uploadedUsers, accepted.distinctUsers, "report uploaded.users is what the server took: \(report.raw)")
            XCTAssertLessThanOrEqual(
                report.uploadedEvents, accepted.distinctEvents,
                "report uploaded.events counts only what the server took: \(report.raw)")
            let index = try XCTUnwrap(refused.withLock { $0 }, "no 401 was given")
            let arrivedBefore = try XCTUnwrap(server.arrivedWhenAnswered(index), "the 401 was not answered")
            XCTAssertGreaterThanOrEqual(
                report.requests, arrivedBefore, "report requests counts every request answered before the 401: \(report.raw)")
            XCTAssertLessThanOrEqual(
                report.requests, server.requestCount + concurrency - 1,
                "report requests is about what the server received: \(report.raw)")
            XCTAssertTrue(
                run.stderr.contains("uploaded: \(report.uploadedUsers) users, \(report.uploadedEvents) events"),
                "the summary shows what was accepted: \(run.stderr.suffix(1500))")
            let after = server.requestCount - arrivedBefore
            XCTAssertLessThanOrEqual(
                after, concurrency - 1,
                "\(after) requests reached the server after the 401 was answered (in flight at most \(concurrency - 1))")
            try await assertRerunDelivers(input, dir: dir, firstServer: server, expected: expected, flags: flags)
        }
    }
}
