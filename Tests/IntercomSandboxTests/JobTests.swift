import AsyncHTTPClient
import Foundation
import IntercomSandbox
import XCTest

final class JobTests: XCTestCase {
    func test_job_objectShape_onPostAndGet() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_000)
        try await withSandbox({
            $0.clock = clock.clock
            $0.jobTTLSeconds = 600
            $0.appID = "app1"
            $0.apiKey = "k"
        }) { sandbox in
            let reply = try await sandbox.bulk("user", [user("u1"), user("u2")])
            XCTAssertEqual(reply.status, 202)
            let posted = try reply.object()
            let id = try XCTUnwrap(posted["id"] as? String)
            XCTAssertTrue(id.hasPrefix("job_"), id)

            let fetched = try await sandbox.get("/jobs/\(id)")
            XCTAssertEqual(fetched.status, 200)
            for job in [posted, try fetched.object()] {
                XCTAssertEqual(job["type"] as? String, "job")
                XCTAssertEqual(job["id"] as? String, id)
                XCTAssertEqual(job["app_id"] as? String, "app1")
                XCTAssertEqual(job["name"] as? String, "api_bulk_job")
                XCTAssertEqual(job["state"] as? String, "completed", "tasks are processed before the answer")
                XCTAssertEqual(job["created_at"] as? Int, 1_700_000_000)
                XCTAssertEqual(job["updated_at"] as? Int, 1_700_000_000)
                XCTAssertEqual(job["completed_at"] as? Int, 1_700_000_000)
                XCTAssertEqual(job["closing_at"] as? Int, 1_700_000_600, "closing_at = created_at + TTL")
                let links = try XCTUnwrap(job["links"] as? [String: Any])
                XCTAssertEqual(links["self"] as? String, "\(sandbox.server.baseURL)/jobs/\(id)")
                XCTAssertEqual(links["error"] as? String, "\(sandbox.server.baseURL)/jobs/\(id)/error")
                let tasks = try XCTUnwrap(job["tasks"] as? [[String: Any]])
                XCTAssertEqual(tasks.count, 1)
                XCTAssertEqual(tasks.first?["item_count"] as? Int, 2)
                XCTAssertEqual(tasks.first?["state"] as? String, "completed")
                XCTAssertNotNil(tasks.first?["id"] as? String)
                for key in ["created_at", "started_at", "completed_at"] {
                    XCTAssertEqual(tasks.first?[key] as? Int, 1_700_000_000, key)
                }
            }
        }
    }

    func test_job_appendWithJobID_addsATaskToTheSameJob() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_000)
        try await withSandbox({ $0.clock = clock.clock }) { sandbox in
            let id = try await sandbox.bulkJob("event", [event("u1", at: 1)])
            clock.advance(seconds: 30)
            let appended = try await sandbox.bulk("event", [event("u1", at: 2), event("u1", at: 3), event("u2", at: 3)], job: id)
            XCTAssertEqual(appended.status, 202)
            XCTAssertEqual(try appended.object()["id"] as? String, id)

            let job = try await sandbox.get("/jobs/\(id)").object()
            let tasks = try XCTUnwrap(job["tasks"] as? [[String: Any]])
            XCTAssertEqual(tasks.compactMap { $0["item_count"] as? Int }, [1, 3])
            XCTAssertEqual(Set(tasks.compactMap { $0["id"] as? String }).count, 2, "each request is its own task")
            XCTAssertEqual(job["created_at"] as? Int, 1_700_000_000)
            XCTAssertEqual(job["updated_at"] as? Int, 1_700_000_030)
            XCTAssertEqual(job["closing_at"] as? Int, 1_700_000_900, "appending does not extend the job")

            let items = sandbox.server.acceptedItems()
            XCTAssertEqual(items.count, 4)
            XCTAssertTrue(items.allSatisfy { $0.jobID == id && $0.dataType == "event" })
            XCTAssertEqual(sandbox.server.stats().jobs, 1)
        }
    }

    func test_job_appendToUnknownJob_is404JobNotFound_andAppliesNothing() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.bulk("user", [user("u1")], job: "job_doesnotexist")
            XCTAssertEqual(reply.status, 404)
            XCTAssertEqual(try reply.errorCode(), "job_not_found")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0)

            let get = try await sandbox.get("/jobs/job_doesnotexist")
            XCTAssertEqual(get.status, 404)
            XCTAssertEqual(try get.errorCode(), "job_not_found")
            let feed = try await sandbox.get("/jobs/job_doesnotexist/error")
            XCTAssertEqual(feed.status, 404)
            XCTAssertEqual(try feed.errorCode(), "job_not_found")
        }
    }

    func test_job_appendAfterClosingAt_is422JobClosed() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_000)
        try await withSandbox({ $0.clock = clock.clock }) { sandbox in
            let id = try await sandbox.bulkJob("user", [user("u1")])
            clock.advance(seconds: 899)
            let stillOpen = try await sandbox.bulk("user", [user("u2")], job: id)
            XCTAssertEqual(stillOpen.status, 202, "open until closing_at")

            clock.advance(seconds: 1)
            let closed = try await sandbox.bulk("user", [user("u3")], job: id)
            XCTAssertEqual(closed.status, 422)
            XCTAssertEqual(try closed.errorCode(), "job_closed")
            XCTAssertEqual(
                sandbox.server.acceptedItems().map(\.dataJSON), [user("u1"), user("u2")], "the refused batch is not applied")

            // The client's remedy: the same batch in a new job.
            let fresh = try await sandbox.bulkJob("user", [user("u3")])
            XCTAssertNotEqual(fresh, id)
        }
    }

    func test_job_atClosingCompletion_runningUntilClosingAt() async throws {
        let clock = SandboxManualClock(unixSeconds: 1_700_000_000)
        try await withSandbox({
            $0.clock = clock.clock
            $0.jobCompletion = .atClosing
            $0.jobTTLSeconds = 60
        }) { sandbox in
            let id = try await sandbox.bulkJob("user", [user("u1")])
            let running = try await sandbox.get("/jobs/\(id)").object()
            XCTAssertEqual(running["state"] as? String, "running")
            XCTAssertTrue(running["completed_at"] is NSNull)

            clock.advance(seconds: 60)
            let completed = try await sandbox.get("/jobs/\(id)").object()
            XCTAssertEqual(completed["state"] as? String, "completed")
            XCTAssertEqual(completed["completed_at"] as? Int, 1_700_000_060)
        }
    }

    func test_errorFeed_echoesFailedItemsDataAndCodes_only() async throws {
        try await withSandbox({
            $0.appID = "app9"
            $0.apiKey = "k"
        }) { sandbox in
            let bad1 = #"{"user_id":"b1","email":"not-an-email","custom_attributes":{"plan":"pro"}}"#
            let bad2 = #"{"user_id":"b2","custom_attributes":{"nested":{"x":1}}}"#
            let id = try await sandbox.bulkJob("user", [user("g1"), bad1, user("g2"), bad2])
            let appended = try await sandbox.bulk("user", [#"{"name":"anonymous"}"#], job: id)
            XCTAssertEqual(appended.status, 202)

            let reply = try await sandbox.get("/jobs/\(id)/error")
            XCTAssertEqual(reply.status, 200)
            let feed = try reply.object()
            XCTAssertEqual(feed["job_id"] as? String, id)
            XCTAssertEqual(feed["app_id"] as? String, "app9")
            let pages = try XCTUnwrap(feed["pages"] as? [String: Any])
            XCTAssertEqual(pages["page"] as? Int, 1)
            XCTAssertEqual(pages["total_pages"] as? Int, 1)
            XCTAssertTrue(pages["next"] is NSNull)

            let items = try XCTUnwrap(feed["items"] as? [[String: Any]])
            XCTAssertEqual(items.count, 3, "only failed items, across all tasks of the job, in order")
            let expected = [bad1, bad2, #"{"name":"anonymous"}"#]
            for (item, data) in zip(items, expected) {
                XCTAssertTrue(sameJSON(item["data"], data), "data echoed as sent: \(item)")
                XCTAssertEqual(item["method"] as? String, "post")
                XCTAssertEqual(item["data_type"] as? String, "user")
                XCTAssertNotNil(item["id"] as? String)
                let error = try XCTUnwrap(item["error"] as? [String: Any])
                XCTAssertEqual(error["code"] as? String, "parameter_invalid")
                XCTAssertNotNil(error["message"] as? String)
            }
            XCTAssertEqual(Set(items.compactMap { $0["id"] as? String }).count, 3, "error item ids are unique")
            XCTAssertEqual(sandbox.server.acceptedItems().map(\.dataJSON), [user("g1"), user("g2")])
        }
    }

    func test_errorFeed_echoesDataInKeyOrder_numbersAsSent_minimalEscapes() async throws {
        try await withSandbox { sandbox in
            let data = #"{"z":1.50, "email":"x", "a":"ü\n\/\u0001\ud83d\ude00\"", "e":1E+2,"user_id":"k"}"#
            let id = try await sandbox.bulkJob("user", [data])
            let raw = try await sandbox.get("/jobs/\(id)/error").text
            XCTAssertTrue(raw.contains(#""data":{"z":1.50,"email":"x","a":"ü\n/\u0001😀\"","e":1E+2,"user_id":"k"}"#), raw)
        }
    }
}
