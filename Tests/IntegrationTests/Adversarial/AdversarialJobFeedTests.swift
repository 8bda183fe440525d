import Foundation
import XCTest

/// Reading job error feeds from a server that pages without end, lists what was never sent, or
/// never completes its jobs: bounded, inside `--job-wait`, counted apart, and named.
final class AdversarialJobFeedTests: AdversarialTestCase {
    private static func jobID(fromFeedTarget target: String) -> String? {
        guard target.hasPrefix("/jobs/") else { return nil }
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        guard path.hasSuffix("/error") else { return nil }
        return String(path.dropFirst("/jobs/".count).dropLast("/error".count))
    }

    private static func isFeedRequest(_ request: MisbehavingServer.Request) -> Bool {
        request.method == "GET" && jobID(fromFeedTarget: request.target) != nil
    }

    /// Every error-feed page says `pages.next` is the page itself; the users job's page lists
    /// one item that was sent (`u0`). Paging ends at the repeated cursor; the item is rejected
    /// once, with its line; nothing else is rejected.
    func test_errorFeedNextPointsAtTheSamePage_pagingEnds_itemRejectedOnce_noPhantomRejects() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 40, in: dir)
        let expected = try await expected(input, batchSize: 20)
        try await withMisbehavingServer({ request, server in
            guard request.method == "GET", let id = Self.jobID(fromFeedTarget: request.target) else {
                return server.defaultAnswer(request)
            }
            var failed: [[String: Any]] = []
            if server.dataType(ofJob: id) == "user",
                let first = server.items(ofJob: id).first(where: { $0["user_id"] as? String == "u0" })
            {
                failed = [MisbehavingServer.failedItem(dataType: "user", data: first)]
            }
            return .json(200, server.errorFeedJSON(jobID: id, items: failed, next: server.baseURL + request.target))
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags(), deadline: 45)
            let feedReads = server.requests.filter(Self.isFeedRequest).count
            XCTAssertLessThanOrEqual(
                feedReads, 3 * server.jobIDs.count, "\(feedReads) error-feed pages read for \(server.jobIDs.count) jobs")
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.failed, 1, "the listed item failed, once: \(report.raw)")
            XCTAssertEqual(report.uploadedUsers, expected.users.count - 1)
            XCTAssertEqual(report.uploadedEvents, expected.events.count)
            XCTAssertEqual(run.rejects.count, 1, "one reject, no phantom ones: \(run.rejects)")
            XCTAssertEqual(run.rejects.first?["line"] as? Int, 1, "traced to u0's line")
            XCTAssertEqual(run.rejects.first?["reason"] as? String, "parameter_invalid")
            XCTAssertEqual(run.unreadJobFeeds ?? [], [], "every feed was read")
        }
    }

    /// An error feed whose `pages.next` is always a new page: the paging is bounded and the whole
    /// feed reading stays inside `--job-wait`; the feed not read to its end is named.
    func test_errorFeedPagingWithoutEnd_boundedInsideJobWait_runEnds_feedNamedUnread() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 0, in: dir)
        let expected = try await expected(input, batchSize: 20)
        let pages = Counter()
        try await withMisbehavingServer({ request, server in
            guard request.method == "GET", let id = Self.jobID(fromFeedTarget: request.target) else {
                return server.defaultAnswer(request)
            }
            let next = "\(server.baseURL)/jobs/\(id)/error?page=\(pages.next() + 1)"
            return .json(200, server.errorFeedJSON(jobID: id, items: [], next: next))
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20, jobWait: 3) + Self.boundFlags(),
                deadline: 45)
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.uploadedUsers, expected.users.count, "the items were accepted")
            XCTAssertEqual(report.failed, 0, "no phantom failures")
            XCTAssertEqual(run.rejects.count, 0)
            XCTAssertEqual(run.unreadJobFeeds, server.jobIDs, "the feed not read to its end is named in the report")
        }
    }

    /// The users job's feed lists an item never sent, an event (the other data type) that was
    /// sent in the events job, and `u0` twice: `u0` fails once; the other three are logged and
    /// counted apart (`job_items_unmatched`), never subtracted from `uploaded`, never rejects.
    func test_errorFeedItemsNeverSentOtherTypeOrListedTwice_countedApartAsUnmatched_notSubtractedFromUploaded() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 20, in: dir)
        let expected = try await expected(input, batchSize: 20)
        try await withMisbehavingServer({ request, server in
            guard request.method == "GET", let id = Self.jobID(fromFeedTarget: request.target),
                server.dataType(ofJob: id) == "user"
            else {
                return server.defaultAnswer(request)
            }
            guard let u0 = server.items(ofJob: id).first(where: { $0["user_id"] as? String == "u0" }) else {
                return .json(200, server.errorFeedJSON(jobID: id, items: [], next: nil))
            }
            let sentEvent = server.jobIDs.filter { server.dataType(ofJob: $0) == "event" }.flatMap { server.items(ofJob: $0) }
                .first
            var items = [
                MisbehavingServer.failedItem(dataType: "user", data: u0),
                MisbehavingServer.failedItem(
                    dataType: "user", data: ["user_id": "ghost-never-sent", "email": "ghost@example.com"]),
                MisbehavingServer.failedItem(dataType: "user", data: u0),
            ]
            if let sentEvent { items.append(MisbehavingServer.failedItem(dataType: "event", data: sentEvent)) }
            return .json(200, server.errorFeedJSON(jobID: id, items: items, next: nil))
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20) + Self.boundFlags())
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            let eventJobs = server.jobIDs.filter { server.dataType(ofJob: $0) == "event" }
            XCTAssertFalse(eventJobs.isEmpty, "the events were sent in their own job")
            XCTAssertEqual(report.failed, 1, "only u0 failed, once: \(report.raw)")
            XCTAssertEqual(report.uploadedUsers, expected.users.count - 1)
            XCTAssertEqual(report.uploadedEvents, expected.events.count, "an unmatched item is never subtracted from uploaded")
            XCTAssertEqual(run.jobItemsUnmatched, 3, "never sent + other data type + second listing: \(report.raw)")
            XCTAssertEqual(run.rejects.count, 1, "no phantom rejects: \(run.rejects)")
            XCTAssertEqual(run.rejects.first?["line"] as? Int, 1)
            XCTAssertFalse(run.rejects.contains { ($0["record"] as? String ?? "").contains("ghost-never-sent") })
        }
    }

    /// Jobs that never complete within `--job-wait`: their feeds are named in the summary and in
    /// the report (`unread_job_feeds`), and the exit code is 1, not 0.
    func test_jobsNeverCompleteWithinJobWait_unreadFeedsNamedInSummaryAndReport_exit1() async throws {
        let dir = try makeTemporaryDirectory()
        let input = try smallInput(users: 20, events: 20, in: dir)
        let expected = try await expected(input, batchSize: 20)
        try await withMisbehavingServer({ request, server in
            guard request.method == "GET", request.path.hasPrefix("/jobs/"), !request.path.hasSuffix("/error") else {
                return server.defaultAnswer(request)
            }
            return .json(200, server.jobJSON(id: String(request.path.dropFirst("/jobs/".count)), state: "running"))
        }) { server in
            let run = try await backfill(
                input, endpoint: server.baseURL, dir: dir, flags: Self.baseFlags(batchSize: 20, jobWait: 2) + Self.boundFlags(),
                deadline: 45)
            let report = try assertHonest(run, server: server, expected: expected, status: 1)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents, expected.mapped, "the items were accepted")
            XCTAssertEqual(report.failed, 0)
            XCTAssertEqual(run.rejects.count, 0)
            XCTAssertEqual(Set(run.unreadJobFeeds ?? []), Set(server.jobIDs), "report unread_job_feeds: \(report.raw)")
            XCTAssertEqual(server.jobIDs.count, 2, "one users job, one events job")
            for id in server.jobIDs {
                XCTAssertTrue(run.stderr.contains(id), "the summary names unread feed \(id): \(run.stderr.suffix(1500))")
            }
        }
    }
}
