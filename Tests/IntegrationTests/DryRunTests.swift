import Foundation
import XCTest

/// `--dry-run` through the binary (contract §7) on the sample, the batching rule, the rejects file.
final class DryRunTests: IntegrationTestCase {
    func test_dryRun_sample_requestsAreValidBatchesThatMatchTheReport() async throws {
        let dir = try makeTemporaryDirectory()
        let run = try await dryRun([Paths.sample.path], in: dir)
        XCTAssertEqual(run.result.status, 1, "the sample has rejected records: exit 1\n\(run.result.stderrText)")

        // The sample's numbers (fixtures/README.md).
        XCTAssertEqual(run.report.records, 3971)
        XCTAssertEqual(run.report.mappedUsers, 982)
        XCTAssertEqual(run.report.mappedEvents, 2099)
        XCTAssertEqual(run.report.requests, 42)
        XCTAssertEqual(run.requests.count, 42)

        var users = 0
        var events = 0
        for (index, request) in run.requests.enumerated() {
            XCTAssertEqual(request.method, "POST", "request \(index)")
            XCTAssertTrue(["/bulk/users", "/bulk/events"].contains(request.path), "request \(index) path \(request.path)")
            XCTAssertTrue((1...100).contains(request.items.count), "request \(index) has \(request.items.count) items")
            let dataType = request.isUsers ? "user" : "event"
            for item in request.items {
                XCTAssertEqual(item["method"] as? String, "post")
                XCTAssertEqual(item["data_type"] as? String, dataType, "request \(index) on \(request.path)")
                XCTAssertNotNil(item["data"] as? [String: Any])
            }
            if request.isUsers { users += request.items.count } else { events += request.items.count }
        }
        XCTAssertEqual(users, run.report.mappedUsers, "user items written = mapped users")
        XCTAssertEqual(events, run.report.mappedEvents, "event items written = mapped events")
        XCTAssertEqual(run.report.uploadedUsers, 0, "a dry run uploads nothing")
        XCTAssertEqual(run.report.uploadedEvents, 0)
    }

    /// The rules of `Batcher`: when an events batch closes while user items are pending, the users
    /// batch closes first, so a user is sent before the events that follow it in the input; when a
    /// users batch closes while older events wait, they close too, so a checkpoint is never held
    /// back behind more than one batch.
    func test_dryRun_batchingRule_pendingUsersCloseBeforeTheEventsThatFollowThem() async throws {
        let dir = try makeTemporaryDirectory()
        func identify(_ id: String) -> String {
            #"{"type":"identify","userId":"\#(id)","timestamp":"2026-11-01T10:00:00Z","traits":{"name":"\#(id)"}}"#
        }
        func track(_ user: String, _ name: String) -> String {
            #"{"type":"track","userId":"\#(user)","event":"\#(name)","timestamp":"2026-11-01T10:00:00Z"}"#
        }
        let lines = [
            identify("U1"), track("U1", "E1"), track("U1", "E2"), identify("U2"), track("U2", "E3"),
            track("U2", "E4"), track("U2", "E5"), identify("U3"), identify("U4"), identify("U5"),
            identify("U6"), track("U6", "E6"),
        ]
        let input = dir.appendingPathComponent("order.ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)

        let run = try await dryRun([input.path], extra: ["--batch-size", "3"], in: dir)
        XCTAssertEqual(run.result.status, 0, run.result.stderrText)
        let shape = run.requests.map { request -> String in
            let names = request.items.map { item -> String in
                let data = item["data"] as? [String: Any] ?? [:]
                return request.isUsers ? (data["user_id"] as? String ?? "?") : (data["event_name"] as? String ?? "?")
            }
            return (request.isUsers ? "users:" : "events:") + names.joined(separator: ",")
        }
        XCTAssertEqual(
            shape,
            [
                "users:U1,U2", "events:E1,E2,E3",  // E3 fills the events batch: the pending users go first
                "users:U3,U4,U5", "events:E4,E5",  // a full users batch: the older events E4, E5 close after it
                "users:U6", "events:E6",  // the end: users, then events
            ])
    }

    func test_dryRun_sample_rejectsPointAtTheRealInputLines() async throws {
        let dir = try makeTemporaryDirectory()
        let run = try await dryRun([Paths.sample.path], in: dir)
        XCTAssertEqual(run.result.status, 1)
        XCTAssertEqual(run.rejects.count, run.report.rejectedTotal, "one rejects line per rejected record")
        XCTAssertEqual(run.rejects.count, 44)

        var decoded: [String: [Data]] = [:]
        for file in Paths.sampleFiles {
            decoded[Paths.sample.path + "/" + file.lastPathComponent] = inputLines(try decodedInput(file))
        }
        var reasons: [String: Int] = [:]
        var seen = Set<String>()
        for reject in run.rejects {
            let source = try XCTUnwrap(reject["source"] as? String, "\(reject)")
            let line = try XCTUnwrap(reject["line"] as? Int, "\(reject)")
            let reason = try XCTUnwrap(reject["reason"] as? String, "\(reject)")
            XCTAssertNotNil(reject["detail"] as? String, "\(reject)")
            let record = try XCTUnwrap(reject["record"] as? String, "every sample line is UTF-8: \(reject)")
            let lines = try XCTUnwrap(decoded[source], "source \(source) is not one of the inputs as named")
            XCTAssertTrue((1...lines.count).contains(line), "line \(line) outside \(source)")
            guard (1...lines.count).contains(line) else { continue }
            XCTAssertEqual(
                record, String(decoding: lines[line - 1], as: UTF8.self), "\(source):\(line) is not the rejected record")
            XCTAssertTrue(seen.insert("\(source):\(line)").inserted, "\(source):\(line) rejected twice")
            reasons[reason, default: 0] += 1
        }
        XCTAssertEqual(reasons, run.report.rejected, "the rejects file and the report agree on the reasons")
    }
}
