import AsyncHTTPClient
import Foundation
import IntercomSandbox
import XCTest

final class RateLimitTests: XCTestCase {
    private func assertRateHeaders(
        _ reply: Reply, limit: Int, remaining: Int, reset: Int, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(reply.headers.first(name: "X-RateLimit-Limit"), String(limit), file: file, line: line)
        XCTAssertEqual(reply.headers.first(name: "X-RateLimit-Remaining"), String(remaining), file: file, line: line)
        XCTAssertEqual(reply.headers.first(name: "X-RateLimit-Reset"), String(reset), file: file, line: line)
    }

    func test_rateLimitHeaders_onEveryAnswer_generousWithoutALimit() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_003)
        try await withSandbox({ $0.clock = clock.clock }) { sandbox in
            let accepted = try await sandbox.bulk("user", [user("u1")])
            let refused = try await sandbox.post("/bulk/users", "nope")
            let unauthorized = try await sandbox.get("/jobs/x", headers: [])
            let notFound = try await sandbox.get("/jobs/x")
            let stats = try await sandbox.get("/sandbox/stats", headers: [])
            XCTAssertEqual([accepted, refused, unauthorized, notFound, stats].map(\.status), [202, 400, 401, 404, 200])
            assertRateHeaders(accepted, limit: 100_000, remaining: 99_999, reset: 1_700_000_010)
            assertRateHeaders(refused, limit: 100_000, remaining: 99_998, reset: 1_700_000_010)
            XCTAssertNil(unauthorized.headers.first(name: "X-RateLimit-Limit"), "no budget headers without auth")
            XCTAssertNil(unauthorized.headers.first(name: "X-RateLimit-Remaining"))
            assertRateHeaders(notFound, limit: 100_000, remaining: 99_997, reset: 1_700_000_010)
            assertRateHeaders(stats, limit: 100_000, remaining: 99_997, reset: 1_700_000_010)
        }
    }

    func test_rateLimit_exceeded_is429_thenAllowedAgainInTheNextWindow() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_000)
        try await withSandbox({
            $0.clock = clock.clock
            $0.rateLimitPerWindow = 3
        }) { sandbox in
            for remaining in [2, 1, 0] {
                let reply = try await sandbox.bulk("user", [user("u\(remaining)")])
                XCTAssertEqual(reply.status, 202)
                assertRateHeaders(reply, limit: 3, remaining: remaining, reset: 1_700_000_010)
                clock.advance(seconds: 2)
            }
            let limited = try await sandbox.bulk("user", [user("late")])
            XCTAssertEqual(limited.status, 429)
            XCTAssertEqual(try limited.errorCode(), "rate_limit_exceeded")
            assertRateHeaders(limited, limit: 3, remaining: 0, reset: 1_700_000_010)
            XCTAssertEqual(limited.headers.first(name: "Retry-After"), "4")
            let limitedGet = try await sandbox.get("/jobs/x")
            XCTAssertEqual(limitedGet.status, 429, "the budget covers every API call")
            XCTAssertFalse(sandbox.server.acceptedItems().contains { $0.dataJSON == user("late") })

            clock.set(unixSeconds: 1_700_000_010)
            let next = try await sandbox.bulk("user", [user("late")])
            XCTAssertEqual(next.status, 202)
            assertRateHeaders(next, limit: 3, remaining: 2, reset: 1_700_000_020)
            XCTAssertEqual(sandbox.server.stats().rateLimited, 2)
        }
    }
}

final class FaultTests: XCTestCase {
    enum Outcome: Equatable, CustomStringConvertible {
        case status(Int)
        case connectionError

        var description: String {
            switch self {
            case .status(let code): return String(code)
            case .connectionError: return "dropped"
            }
        }
    }

    /// Sends `count` bulk requests one after another and notes what became of each.
    private func outcomes(_ sandbox: Harness, count: Int) async -> [Outcome] {
        var outcomes: [Outcome] = []
        for index in 0..<count {
            do {
                let reply = try await sandbox.bulk("user", [user("f\(index)")])
                outcomes.append(.status(reply.status))
                if reply.status >= 500 {
                    XCTAssertEqual(
                        try? reply.firstError()["code"] as? String, reply.status == 500 ? "server_error" : "service_unavailable")
                }
            } catch {
                outcomes.append(.connectionError)
            }
        }
        return outcomes
    }

    func test_failRate1_answers500And503AndDropsConnections_andAppliesNothing() async throws {
        try await withSandbox({
            $0.failRate = 1
            $0.seed = 7
        }) { sandbox in
            let seen = await outcomes(sandbox, count: 30)
            XCTAssertTrue(seen.contains(.status(500)), "\(seen)")
            XCTAssertTrue(seen.contains(.status(503)), "\(seen)")
            XCTAssertTrue(seen.contains(.connectionError), "\(seen)")
            XCTAssertTrue(seen.allSatisfy { $0 == .status(500) || $0 == .status(503) || $0 == .connectionError }, "\(seen)")

            XCTAssertEqual(sandbox.server.acceptedItems().count, 0, "a faulted request is not applied")
            let stats = sandbox.server.stats()
            XCTAssertEqual(stats.itemsAccepted, SandboxStats.ItemCounts(users: 0, events: 0))
            XCTAssertEqual(stats.jobs, 0)
            XCTAssertEqual(stats.faults.http500, seen.filter { $0 == .status(500) }.count)
            XCTAssertEqual(stats.faults.http503, seen.filter { $0 == .status(503) }.count)
            XCTAssertEqual(stats.faults.dropped, seen.filter { $0 == .connectionError }.count)
            XCTAssertEqual(stats.requests, 30, "each request was sent once")

            // Faults hit POSTs only: reads still answer.
            let read = try await sandbox.get("/jobs/job_unknown")
            XCTAssertEqual(read.status, 404)
        }
    }

    func test_sameSeed_sameFaultSequence() async throws {
        var runs: [[Outcome]] = []
        for seed: UInt64 in [42, 42, 43] {
            try await withSandbox({
                $0.failRate = 0.5
                $0.seed = seed
            }) { sandbox in
                runs.append(await outcomes(sandbox, count: 24))
            }
        }
        XCTAssertEqual(runs[0], runs[1], "same seed, same requests: same faults")
        XCTAssertNotEqual(runs[0], runs[2], "another seed: other faults")
        XCTAssertTrue(runs[0].contains(.status(202)) && runs[0].contains { $0 != .status(202) }, "\(runs[0])")
    }

    func test_failRateHalf_appliesExactlyTheAnsweredRequests() async throws {
        try await withSandbox({
            $0.failRate = 0.5
            $0.seed = 1
        }) { sandbox in
            let seen = await outcomes(sandbox, count: 20)
            let applied = sandbox.server.acceptedItems().map(\.dataJSON)
            let answered = seen.indices.filter { seen[$0] == .status(202) }.map { user("f\($0)") }
            XCTAssertEqual(applied, answered)
        }
    }

    func test_latency_answersStillArrive() async throws {
        try await withSandbox({ $0.latencyMilliseconds = 25 }) { sandbox in
            let id = try await sandbox.bulkJob("user", [user("slow")])
            let job = try await sandbox.get("/jobs/\(id)")
            XCTAssertEqual(job.status, 200)
            // Several in flight on separate connections at once.
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<8 {
                    group.addTask { try await sandbox.bulk("event", [event("u\(index)")]).status }
                }
                for try await status in group { XCTAssertEqual(status, 202) }
            }
            XCTAssertEqual(sandbox.server.acceptedItems().count, 9)
        }
    }

    func test_latencyAndFaults_dropsStillSeenAsConnectionErrors() async throws {
        try await withSandbox({
            $0.latencyMilliseconds = 5
            $0.failRate = 1
            $0.seed = 7
        }) { sandbox in
            let seen = await outcomes(sandbox, count: 12)
            XCTAssertTrue(seen.contains(.connectionError), "\(seen)")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0)
        }
    }
}
