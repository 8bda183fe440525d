import AsyncHTTPClient
import Foundation
import IntercomSandbox
import XCTest

final class DuplicateTests: XCTestCase {
    func test_events_sameUserNameAndSecond_isADuplicate_notAFailure() async throws {
        try await withSandbox { sandbox in
            let id = try await sandbox.bulkJob("event", [event("u1", "paid", at: 100), event("u1", "paid", at: 100)])
            _ = try await sandbox.bulkJob("event", [event("u1", "paid", at: 100)])
            // Any difference makes a new event: user, name, second; and an email-keyed user.
            _ = try await sandbox.bulkJob(
                "event",
                [
                    event("u2", "paid", at: 100),
                    event("u1", "refunded", at: 100),
                    event("u1", "paid", at: 101),
                    #"{"email":"a@example.com","event_name":"paid","created_at":100}"#,
                    #"{"email":"a@example.com","event_name":"paid","created_at":100,"metadata":{"n":2}}"#,
                ])
            let stats = sandbox.server.stats()
            XCTAssertEqual(stats.duplicates, 3)
            XCTAssertEqual(stats.itemsAccepted.events, 5)
            XCTAssertEqual(stats.itemsFailed, 0)
            let feed = try await sandbox.errorItems(id)
            XCTAssertTrue(feed.isEmpty, "duplicates are not failures")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 5, "duplicates are not recorded twice")
        }
    }

    func test_users_postIsAnUpsert_keyedByUserIDElseEmail() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.bulkJob(
                "user",
                [
                    user("u1", extra: #""name":"One""#),
                    user("u1", extra: #""name":"Uno""#),
                    #"{"email":"x@example.com"}"#,
                    #"{"email":"x@example.com","name":"X"}"#,
                    #"{"user_id":"u2","email":"x@example.com"}"#,
                ])
            let stats = sandbox.server.stats()
            XCTAssertEqual(stats.itemsAccepted.users, 5, "every upsert is applied")
            XCTAssertEqual(stats.usersStored, 3, "u1, x@example.com and u2")
            XCTAssertEqual(stats.duplicates, 0)
        }
    }
}

final class StatsAndRecordTests: XCTestCase {
    func test_stats_countEverything_andTheEndpointMatchesTheInProcessAPI() async throws {
        let clock = SandboxManualClock()
        try await withSandbox({
            $0.clock = clock.clock
            $0.rateLimitPerWindow = 7
        }) { sandbox in
            _ = try await sandbox.bulkJob("user", [user("u1"), user("u1"), #"{"name":"no id"}"#])
            _ = try await sandbox.bulkJob("event", [event("u1"), event("u1"), #"{"user_id":"u1"}"#])
            _ = try await sandbox.bulkJob("event", [event("u2")])
            let noAccept = Harness.standardHeaders.filter { $0.0 != "Accept" }
            _ = try await sandbox.bulk("user", [user("u3")], headers: noAccept)
            _ = try await sandbox.get("/jobs/x", headers: [])  // 401
            _ = try await sandbox.post("/bulk/users", "{")  // 400
            _ = try await sandbox.get("/jobs/x")  // 404
            _ = try await sandbox.get("/jobs/x")  // 404, the 7th request counted (the 401 is not)
            let limited = try await sandbox.get("/jobs/x")
            XCTAssertEqual(limited.status, 429)

            let expected: SandboxStats = {
                var stats = SandboxStats()
                stats.requests = 9
                stats.itemsAccepted = .init(users: 2, events: 2)
                stats.duplicates = 1
                stats.rateLimited = 1
                stats.unauthorized = 1
                stats.itemsFailed = 3
                stats.itemsFailedByCode = ["parameter_invalid": 2, "media_type_not_acceptable": 1]
                stats.jobs = 4
                stats.usersStored = 1
                return stats
            }()
            XCTAssertEqual(sandbox.server.stats(), expected)

            let reply = try await sandbox.get("/sandbox/stats", headers: [])
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(try JSONDecoder().decode(SandboxStats.self, from: reply.body), expected)
            let keys = Set(try reply.object().keys)
            XCTAssertEqual(
                keys,
                [
                    "requests", "items_accepted", "duplicates", "rate_limited", "unauthorized", "faults", "items_failed",
                    "items_failed_by_code", "jobs", "users_stored",
                ])
            XCTAssertEqual(sandbox.server.stats().requests, 9, "reading stats is not counted")
        }
    }

    func test_concurrentClients_everyRequestAndItemCountedOnce() async throws {
        try await withSandbox({ $0.threads = 2 }) { sandbox in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<8 {
                    group.addTask {
                        for request in 0..<25 {
                            let items = (0..<4).map { user("c\(client)-r\(request)-i\($0)") }
                            let reply = try await sandbox.bulk("user", items)
                            XCTAssertEqual(reply.status, 202)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stats = sandbox.server.stats()
            XCTAssertEqual(stats.requests, 200)
            XCTAssertEqual(stats.jobs, 200)
            XCTAssertEqual(stats.itemsAccepted.users, 800)
            XCTAssertEqual(stats.usersStored, 800)
            XCTAssertEqual(Set(sandbox.server.acceptedItems().map(\.dataJSON)).count, 800)
        }
    }

    func test_recordFile_holdsOneAcceptedItemALine_inOrder() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-record-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("accepted.ndjson").path
        try Data("stale line from an earlier run\n".utf8).write(to: URL(fileURLWithPath: path))

        var jobs: [String] = []
        try await withSandbox({ $0.recordPath = path }) { sandbox in
            jobs.append(try await sandbox.bulkJob("user", [user("u1", extra: #""name":"Ünï \"q\"""#), #"{"email":"bad"}"#]))
            jobs.append(try await sandbox.bulkJob("event", [event("u1"), event("u1")]))
            XCTAssertEqual(sandbox.server.acceptedItems().count, 2)
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 3, "two lines and a final newline: \(lines)")
        XCTAssertEqual(lines.last, "")
        let first = try XCTUnwrap(jsonValue(String(lines[0])) as? [String: Any])
        XCTAssertEqual(first["job_id"] as? String, jobs[0])
        XCTAssertEqual(first["data_type"] as? String, "user")
        XCTAssertTrue(sameJSON(first["data"], user("u1", extra: #""name":"Ünï \"q\"""#)))
        let second = try XCTUnwrap(jsonValue(String(lines[1])) as? [String: Any])
        XCTAssertEqual(second["job_id"] as? String, jobs[1])
        XCTAssertEqual(second["data_type"] as? String, "event")
        XCTAssertTrue(sameJSON(second["data"], event("u1")))
    }

    func test_recordFileInAMissingFolder_failsToStartWithAClearError() async throws {
        let configuration = SandboxConfiguration(recordPath: "/nonexistent-folder-\(UUID().uuidString)/items.ndjson")
        do {
            let server = try await IntercomSandboxServer.start(configuration, logger: quietLogger)
            try await server.shutdown()
            XCTFail("expected the start to fail")
        } catch let error as SandboxError {
            XCTAssertEqual(error.code, .recordFileUnwritable)
            XCTAssertTrue(error.description.contains("nonexistent-folder"), error.description)
        }
    }

    func test_sandboxItemsEndpoint_servesAcceptedItemsAsNDJSON() async throws {
        try await withSandbox { sandbox in
            let id = try await sandbox.bulkJob("user", [user("u1"), user("u2")])
            let reply = try await sandbox.get("/sandbox/items", headers: [])
            XCTAssertEqual(reply.status, 200)
            XCTAssertEqual(
                reply.text,
                """
                {"job_id":"\(id)","data_type":"user","data":{"user_id":"u1"}}
                {"job_id":"\(id)","data_type":"user","data":{"user_id":"u2"}}

                """)
        }
    }

    func test_invalidConfiguration_isRefusedWithTheReason() async throws {
        for (configuration, words) in [
            (SandboxConfiguration(failRate: 1.5), "fail rate"),
            (SandboxConfiguration(rateLimitPerWindow: 0), "rate limit"),
            (SandboxConfiguration(appID: "only-id"), "both an app id and an API key"),
            (SandboxConfiguration(jobTTLSeconds: 0), "job TTL"),
        ] {
            XCTAssertThrowsError(try configuration.validate()) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
    }
}
