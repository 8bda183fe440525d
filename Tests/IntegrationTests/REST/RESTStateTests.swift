import Foundation
import IntercomSandbox
import XCTest

/// REST mode's acceptance (contract §8, issue 14): a 2.x run must leave the workspace in the state
/// the mapped items give when applied in order, as the independent model `expected_state.py`
/// computes it from a bulk dry run of the same input with the same `--batch-size`; it must agree
/// with a bulk run on everything both APIs can express; and its report must add up (§8.3a).
final class RESTStateTests: IntegrationTestCase {
    /// The fixed token, so runs against one sandbox share the state store (endpoint + token).
    private static func sandboxWithToken(_ configuration: inout SandboxConfiguration) {
        configuration.bearerToken = RESTFixture.token
    }

    private func write(_ lines: [String], to url: URL) throws {
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    /// Writes the seed `json` to a file, and computes the state the model gives `input` over it
    /// (from a bulk dry run with the REST run's `batchSize`).
    private func seedAndModelState(_ json: String, _ input: URL, batchSize: Int, in dir: URL) async throws -> (
        seed: URL, expected: URL
    ) {
        let seed = dir.appendingPathComponent("seed.json")
        try Data(json.utf8).write(to: seed)
        let dry = try await bulkDryRunItems([input.path], batchSize: batchSize, in: dir)
        return (seed, try modelState(items: dry.items, seed: seed, api: "rest", in: dir))
    }

    /// Runs the same input in REST mode and in bulk mode (`--concurrency 1`, the order the model
    /// assumes) against two sandboxes with the same seed; each must equal its model, and the two
    /// must agree on `SharedState` (what both APIs express; see its comment for what is left out
    /// and why). Returns the REST run.
    private func assertRESTAndBulkEndInTheModelState(
        _ inputs: [String], seed: URL?, in dir: URL, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> UploadOutcome {
        let dry = try await bulkDryRunItems(inputs, batchSize: 100, in: dir, file: file, line: line)
        let expectedREST = try modelState(items: dry.items, seed: seed, api: "rest", in: dir, file: file, line: line)
        let expectedBulk = try modelState(items: dry.items, seed: seed, api: "bulk", in: dir, file: file, line: line)
        let seedBody = try seed.map { try Data(contentsOf: $0) }
        return try await withSandbox(Self.sandboxWithToken) { restServer in
            try await withSandbox(Self.sandboxWithToken) { bulkServer in
                if let seedBody {
                    try await seedSandbox(restServer, seedBody, file: file, line: line)
                    try await seedSandbox(bulkServer, seedBody, file: file, line: line)
                }
                let rest = try await restUpload(
                    inputs, to: restServer, stateDir: dir.appendingPathComponent("rest-state"), batchSize: 100, in: dir,
                    file: file, line: line)
                XCTAssertEqual(rest.report.api, "2.14", file: file, line: line)
                XCTAssertEqual(
                    rest.report.mappedUsers, dry.report.mappedUsers, "REST mode maps as bulk does", file: file, line: line)
                XCTAssertEqual(rest.report.mappedEvents, dry.report.mappedEvents, file: file, line: line)
                XCTAssertEqual(
                    (rest.report.calls["POST /events"] ?? 0) + rest.report.eventsAlreadySent, dry.report.mappedEvents,
                    "each event is sent once (a repeat of one already acknowledged is not), never merged",
                    file: file, line: line)
                let restData = try await fetchSandboxState(restServer, file: file, line: line)
                let restState = try writeState(restData, named: "rest-state", in: dir)
                try assertSameState(expected: expectedREST, actual: restState, "REST run", file: file, line: line)

                let bulk = try await backfillUpload(
                    inputs, to: bulkServer, stateDir: dir.appendingPathComponent("bulk-state"),
                    extra: ["--api-version", "1.4", "--concurrency", "1", "--batch-size", "100"], in: dir, file: file,
                    line: line)
                XCTAssertEqual(bulk.report.api, "1.4", file: file, line: line)
                XCTAssertEqual(bulk.report.failed, 0, "the bulk API takes every item", file: file, line: line)
                let bulkData = try await fetchSandboxState(bulkServer, file: file, line: line)
                let bulkState = try writeState(bulkData, named: "bulk-state", in: dir)
                try assertSameState(expected: expectedBulk, actual: bulkState, "bulk run", file: file, line: line)

                let conflicts = rejectedUserIDs(rest.rejects, reason: "conflict")
                let sharedREST = try SharedState(raw: restData, excluding: conflicts, file: file, line: line)
                let sharedBulk = try SharedState(raw: bulkData, excluding: conflicts, file: file, line: line)
                XCTAssertFalse(sharedREST.contacts.isEmpty, "a comparison of nothing proves nothing", file: file, line: line)
                XCTAssertFalse(sharedREST.events.isEmpty, file: file, line: line)
                XCTAssertTrue(
                    sharedREST == sharedBulk,
                    "REST (first) and bulk (second) differ on what both express:\n"
                        + sharedREST.differences(from: sharedBulk).joined(separator: "\n"), file: file, line: line)
                return rest
            }
        }
    }

    // MARK: - 1. Final state

    /// fixtures/sample over an empty workspace. Its many events of users never identified fail
    /// with `user_not_found` in REST mode (and count in `failed`, not in `uploaded`).
    func test_sample_RESTRunEndsInTheModelState_andAgreesWithBulk() async throws {
        let dir = try makeTemporaryDirectory()
        let rest = try await assertRESTAndBulkEndInTheModelState([Paths.sample.path], seed: nil, in: dir)
        XCTAssertEqual(rest.result.status, 1, "the sample has rejected records: exit 1")
        XCTAssertEqual(Set(rest.report.failedReasons.keys), ["user_not_found"], "\(rest.report.failedReasons)")
        XCTAssertGreaterThan(rest.report.failedReasons["user_not_found"] ?? 0, 100)
        XCTAssertEqual(rest.report.uploadedUsers, rest.report.mappedUsers, "every user item is taken")
        XCTAssertEqual(rest.report.rejectedTotal, 44, "the sample's mapping rejects (fixtures/README.md)")
    }

    // MARK: - 2. An existing workspace

    /// The rest-mix corpus over its seed workspace (existing users, companies and typed
    /// attributes; an archived and a merged contact). Items of the archived contact fail with
    /// `contact_archived`, with the line of the record in the rejects file.
    func test_restMixOverSeed_endsInTheModelState_archivedContactFails_andAgreesWithBulk() async throws {
        let dir = try makeTemporaryDirectory()
        let mix = try RestMix.generate(in: dir)
        let rest = try await assertRESTAndBulkEndInTheModelState([mix.input.path], seed: mix.seed, in: dir)
        XCTAssertEqual(rest.result.status, 1, "failed items: exit 1")
        XCTAssertEqual(rest.report.records, 3000)
        XCTAssertEqual(rest.report.skippedTotal + rest.report.rejectedTotal, 0, "rest-mix is clean")

        let archived = rest.rejects.filter { $0["reason"] as? String == "contact_archived" }
        XCTAssertEqual(archived.count, rest.report.failedReasons["contact_archived"] ?? -1)
        XCTAssertFalse(archived.isEmpty, "the seeded archived contact is identified: contact_archived")
        let lines = inputLines(try Data(contentsOf: mix.input))
        for reject in archived {
            XCTAssertEqual(reject["source"] as? String, mix.input.path, "\(reject)")
            let number = try XCTUnwrap(reject["line"] as? Int, "\(reject)")
            XCTAssertTrue((1...lines.count).contains(number), "\(reject)")
            guard (1...lines.count).contains(number) else { continue }
            let record = try jsonObject(lines[number - 1])
            XCTAssertEqual(record["type"] as? String, "identify", "the reject names the identify's line: \(record)")
            XCTAssertEqual(record["userId"] as? String, "rm_archived", "\(record)")
        }
        XCTAssertEqual(rejectedUserIDs(rest.rejects, reason: "conflict"), ["rm_conflict"], "the seeded email conflict")
        XCTAssertGreaterThan(rest.report.failedReasons["user_not_found"] ?? 0, 0, "rm_ghost's events")
    }

    /// A contact the store knows that was merged into another since: the next run's update of that
    /// user meets `410 contact_merged` and lands on the surviving contact (no new contact).
    func test_mergedContact_nextRunUpdatesTheSurvivor() async throws {
        let dir = try makeTemporaryDirectory()
        let first = dir.appendingPathComponent("first.ndjson")
        let second = dir.appendingPathComponent("second.ndjson")
        try write(
            [
                #"{"type":"identify","userId":"mg_from","timestamp":"2026-11-01T10:00:00Z","#
                    + #""traits":{"name":"From One","email":"from@merge.example","seat_count":1}}"#,
                #"{"type":"identify","userId":"mg_into","timestamp":"2026-11-01T10:00:01Z","#
                    + #""traits":{"name":"Into One","email":"into@merge.example"}}"#,
            ], to: first)
        try write(
            [
                #"{"type":"identify","userId":"mg_from","timestamp":"2026-11-02T10:00:00Z","#
                    + #""traits":{"name":"From Two","seat_count":2}}"#
            ], to: second)
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox(Self.sandboxWithToken) { server in
            let one = try await restUpload([first.path], to: server, stateDir: stateDir, in: dir)
            XCTAssertEqual(one.report.failed, 0, one.result.stderrText)
            XCTAssertEqual(one.report.calls["POST /contacts"], 2)
            try await seedSandbox(server, Data(#"{"merge":[{"from":"mg_from","into":"mg_into"}]}"#.utf8))

            let two = try await restUpload([second.path], to: server, stateDir: stateDir, in: dir)
            XCTAssertEqual(two.result.status, 0, two.result.stderrText)
            XCTAssertEqual(two.report.failed, 0, "\(two.report.failedReasons)")
            XCTAssertEqual(two.report.uploadedUsers, 1)
            XCTAssertNil(two.report.calls["POST /contacts"], "the merge is followed, no new contact: \(two.report.calls)")

            let state = try jsonObject(try await fetchSandboxState(server))
            let contacts = state["contacts"] as? [[String: Any]] ?? []
            XCTAssertEqual(contacts.count, 2, "still the two contacts: \(contacts)")
            let survivor = try XCTUnwrap(contacts.first { $0["external_id"] as? String == "mg_into" }, "\(contacts)")
            let mergedAway = try XCTUnwrap(contacts.first { $0["external_id"] as? String == "mg_from" }, "\(contacts)")
            XCTAssertEqual(mergedAway["merged_into"] as? String, survivor["id"] as? String)
            XCTAssertEqual(survivor["name"] as? String, "From Two", "the update landed on the survivor: \(survivor)")
            XCTAssertEqual((survivor["custom_attributes"] as? [String: Any])?["seat_count"] as? Int, 2, "\(survivor)")
            XCTAssertEqual(survivor["last_seen_at"] as? Int, 1_793_613_600, "the second run's timestamp: \(survivor)")
            XCTAssertEqual(survivor["email"] as? String, "into@merge.example", "the survivor keeps its email")
            XCTAssertEqual(mergedAway["name"] as? String, "From One", "the merged-away contact is not written")
        }
    }

    /// Merging never changes what Intercom takes: two identifies of one user in one batch merge
    /// into one call, which Intercom refuses for the second one's email (another user's
    /// contact has it). Item by item, the first is taken and only the second fails, with its
    /// line, as in input order; the event after both then finds the contact.
    func test_aRefusedMergedCall_isMadeAgainItemByItem_andFailsOnlyTheRefusedItem() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("input.ndjson")
        try write(
            [
                #"{"type":"identify","userId":"mc_one","timestamp":"2026-11-01T10:00:00Z","#
                    + #""traits":{"email":"one@merge-call.example","name":"One","company":{"id":"mc_co","name":"Co"}}}"#,
                #"{"type":"identify","userId":"mc_one","timestamp":"2026-11-01T10:00:01Z","#
                    + #""traits":{"email":"taken@merge-call.example","name":"One Again","company":{"id":"mc_co2","name":"Co 2"}}}"#,
                #"{"type":"track","userId":"mc_one","event":"Signed In","timestamp":"2026-11-01T10:00:02Z"}"#,
            ], to: input)
        let (seed, expected) = try await seedAndModelState(
            #"{"contacts":[{"external_id":"mc_other","email":"taken@merge-call.example","name":"Other"}]}"#, input,
            batchSize: 100, in: dir)
        try await withSandbox(Self.sandboxWithToken) { server in
            try await seedSandbox(server, try Data(contentsOf: seed))
            let up = try await restUpload([input.path], to: server, stateDir: dir.appendingPathComponent("state"), in: dir)
            XCTAssertEqual(up.report.merged, 1, "the two identifies share one batch, so they merge: \(up.report.raw)")
            XCTAssertEqual(up.report.failed, 1, "\(up.report.failedReasons)")
            XCTAssertEqual(up.report.uploadedUsers, 1, "the first identify is taken")
            XCTAssertEqual(up.report.uploadedEvents, 1, "the event finds the contact the first one made")
            XCTAssertEqual(up.rejects.count, 1, "\(up.rejects)")
            XCTAssertEqual(up.rejects.first?["line"] as? Int, 2, "the second identify's line: \(up.rejects)")
            XCTAssertEqual(up.rejects.first?["source"] as? String, input.path)

            let stateData = try await fetchSandboxState(server)
            let state = try jsonObject(stateData)
            let contacts = state["contacts"] as? [[String: Any]] ?? []
            let one = try XCTUnwrap(contacts.first { $0["external_id"] as? String == "mc_one" }, "\(contacts)")
            XCTAssertEqual(one["email"] as? String, "one@merge-call.example", "\(one)")
            XCTAssertEqual(one["name"] as? String, "One", "the refused item wrote nothing: \(one)")
            try assertSameState(
                expected: expected, actual: try writeState(stateData, named: "state", in: dir), "item by item")
        }
    }

    /// A merged operation whose company join Intercom refuses fails only the item that named the
    /// company: a contact in 1,000 companies (Intercom's limit) cannot join another, so the
    /// second of three merged identifies fails `contact_company_limit_exceeded`, and the third's
    /// name and company change still land, as in input order.
    func test_aRefusedJoinInAMergedOperation_failsOnlyItsItem() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("input.ndjson")
        try write(
            [
                #"{"type":"identify","userId":"lc_user","timestamp":"2026-11-01T10:00:00Z","traits":{"name":"One"}}"#,
                #"{"type":"identify","userId":"lc_user","timestamp":"2026-11-01T10:00:01Z","#
                    + #""traits":{"company":{"id":"lc_new","name":"New Co"}}}"#,
                #"{"type":"identify","userId":"lc_user","timestamp":"2026-11-01T10:00:02Z","#
                    + #""traits":{"name":"Three","company":{"id":"lc_0001","name":"Existing","plan":"pro"}}}"#,
            ], to: input)
        let ids = (0..<1000).map { String(format: "lc_%04d", $0) }
        let seed: [String: Any] = [
            "companies": ids.map { ["company_id": $0, "name": "Existing"] },
            "contacts": [["external_id": "lc_user", "name": "Zero", "companies": ids]],
        ]
        try await withSandbox(Self.sandboxWithToken) { server in
            try await seedSandbox(server, try JSONSerialization.data(withJSONObject: seed))
            let up = try await restUpload([input.path], to: server, stateDir: dir.appendingPathComponent("state"), in: dir)
            XCTAssertEqual(up.report.merged, 2, "one batch: the three merge: \(up.report.raw)")
            XCTAssertEqual(up.report.failedReasons, ["contact_company_limit_exceeded": 1], "\(up.report.raw)")
            XCTAssertEqual(up.report.uploadedUsers, 2)
            XCTAssertEqual(up.rejects.compactMap { $0["line"] as? Int }, [2], "\(up.rejects)")

            let state = try jsonObject(try await fetchSandboxState(server))
            let contacts = state["contacts"] as? [[String: Any]] ?? []
            let user = try XCTUnwrap(contacts.first { $0["external_id"] as? String == "lc_user" }, "\(contacts.count) contacts")
            XCTAssertEqual(user["name"] as? String, "Three", "the third item's name landed")
            let companies = state["companies"] as? [[String: Any]] ?? []
            let existing = try XCTUnwrap(companies.first { $0["company_id"] as? String == "lc_0001" })
            XCTAssertEqual(existing["plan"] as? String, "pro", "the third item's company change landed: \(existing)")
        }
    }

    /// A later identify does not merge past an event into an earlier one while the contact is
    /// unknown: the event must meet the contact as the items before it left it. Here the first
    /// identify is refused (its email is another user's) and the second creates the user, so the
    /// event between them fails `user_not_found`, as in input order. One item a batch, and the
    /// first identify waits behind a slow event of its user, so without the rule the second one
    /// would merge into it (and the event would find the contact it made).
    func test_noMergePastAnEvent_whileTheContactIsUnknown_theEventMeetsTheInputOrderState() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("input.ndjson")
        try write(
            [
                #"{"type":"track","userId":"me_one","event":"Too Early","timestamp":"2026-11-01T10:00:00Z"}"#,
                #"{"type":"identify","userId":"me_one","timestamp":"2026-11-01T10:00:01Z","#
                    + #""traits":{"email":"taken@merge-event.example","name":"One"}}"#,
                #"{"type":"track","userId":"me_one","event":"Between","timestamp":"2026-11-01T10:00:02Z"}"#,
                #"{"type":"identify","userId":"me_one","timestamp":"2026-11-01T10:00:03Z","traits":{"name":"Two"}}"#,
            ], to: input)
        let (seed, expected) = try await seedAndModelState(
            #"{"contacts":[{"external_id":"me_other","email":"taken@merge-event.example","name":"Other"}]}"#, input,
            batchSize: 1, in: dir)
        try await withSandbox({
            $0.bearerToken = RESTFixture.token
            $0.latencyMilliseconds = 300
        }) { server in
            try await seedSandbox(server, try Data(contentsOf: seed))
            let up = try await restUpload(
                [input.path], to: server, stateDir: dir.appendingPathComponent("state"), batchSize: 1, in: dir)
            XCTAssertEqual(up.report.merged, 0, "\(up.report.raw)")
            XCTAssertEqual(up.report.failedReasons, ["user_not_found": 2, "conflict": 1], "\(up.report.raw)")
            XCTAssertEqual(up.rejects.compactMap { $0["line"] as? Int }.sorted(), [1, 2, 3], "\(up.rejects)")
            let stateData = try await fetchSandboxState(server)
            try assertSameState(
                expected: expected, actual: try writeState(stateData, named: "state", in: dir), "one item a batch")
        }
    }

    /// What a run learnt is reused by the next (contract §8.4): rest-mix over its seed uploaded in
    /// three runs of a third each, with one state folder, ends in the state of the whole input.
    /// The model reads one dry run over the three files (each run's batches close at its end, and
    /// a file boundary changes no user's order).
    func test_restMixInThreeRuns_withOneStateFolder_endsInTheModelStateOfTheWhole() async throws {
        let dir = try makeTemporaryDirectory()
        let mix = try RestMix.generate(in: dir)
        let lines = inputLines(try Data(contentsOf: mix.input))
        XCTAssertEqual(lines.count, 3000)
        let third = (lines.count + 2) / 3
        var parts: [URL] = []
        for index in 0..<3 {
            let part = dir.appendingPathComponent("part\(index).ndjson")
            let slice = lines[(index * third)..<min(lines.count, (index + 1) * third)]
            try (slice.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") + "\n")
                .write(to: part, atomically: true, encoding: .utf8)
            parts.append(part)
        }
        let dry = try await bulkDryRunItems(parts.map(\.path), batchSize: 100, in: dir)
        let expected = try modelState(items: dry.items, seed: mix.seed, api: "rest", in: dir)
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox(Self.sandboxWithToken) { server in
            try await seedSandbox(server, try Data(contentsOf: mix.seed))
            var mapped = 0
            for part in parts {
                let up = try await restUpload([part.path], to: server, stateDir: stateDir, in: dir)
                XCTAssertEqual(up.report.records, lines.count / 3, "each run reads its own part only")
                mapped += up.report.mapped
            }
            XCTAssertEqual(mapped, dry.report.mapped)
            let state = try writeState(try await fetchSandboxState(server), named: "state", in: dir)
            try assertSameState(expected: expected, actual: state, "three runs with one state folder")
        }
    }

    /// The same REST upload six times at once (each against its own seeded sandbox, a busy
    /// machine): every run must end by itself and leave the model's state. A guard against hangs:
    /// a later REST-mode work in progress stopped calling after ~880 of ~1,120 calls on these
    /// 1,000 rest-mix lines and never ended (SIGTERM did not stop it either). The deadline only
    /// turns such a hang into a failure.
    func test_sixConcurrentRESTRuns_eachEndsInTheModelState() async throws {
        let dir = try makeTemporaryDirectory()
        let mix = try RestMix.generate(in: dir)
        let lines = inputLines(try Data(contentsOf: mix.input)).prefix(1000)
        let input = dir.appendingPathComponent("first-1000.ndjson")
        try (lines.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") + "\n")
            .write(to: input, atomically: true, encoding: .utf8)
        let dry = try await bulkDryRunItems([input.path], batchSize: 100, in: dir)
        let expected = try modelState(items: dry.items, seed: mix.seed, api: "rest", in: dir)
        let seedBody = try Data(contentsOf: mix.seed)
        var servers: [IntercomSandboxServer] = []
        for _ in 0..<6 {
            var configuration = SandboxConfiguration(port: 0, threads: 1)
            Self.sandboxWithToken(&configuration)
            let server = try await IntercomSandboxServer.start(configuration, logger: silentLogger)
            servers.append(server)
            try await seedSandbox(server, seedBody)
        }
        do {
            var processes: [CLIProcess] = []
            for (index, server) in servers.enumerated() {
                processes.append(
                    try launch(
                        [
                            "run", "--api-version", "2.14", "--endpoint", server.baseURL, "--state-dir",
                            dir.appendingPathComponent("state-\(index)").path, "--no-progress", input.path,
                        ], environment: ["INTERCOM_ACCESS_TOKEN": RESTFixture.token], in: dir))
            }
            // One deadline for all six: a hang costs it once, not six times.
            let end = Date().addingTimeInterval(90)
            for (index, process) in processes.enumerated() {
                do {
                    let result = try await process.wait(deadline: max(1, end.timeIntervalSinceNow))
                    XCTAssertEqual(result.status, 1, "run \(index): failed items, exit 1: \(result.stderrText)")
                    let state = try writeState(try await fetchSandboxState(servers[index]), named: "state-\(index)", in: dir)
                    try assertSameState(expected: expected, actual: state, "run \(index) of six")
                } catch let timedOut as ProcessTimedOut {
                    XCTFail("run \(index) hung after \(servers[index].stats().requests) calls to its sandbox: \(timedOut)")
                }
            }
        } catch {
            for server in servers { try? await server.shutdown() }
            throw error
        }
        for server in servers { try await server.shutdown() }
    }

    /// 2,000 distinct users sharing a few dozen companies (`generate.py users`, the memory
    /// figure's input), with at most two calls in flight: the joins of one company follow one
    /// another in input order, so most operations of the window wait behind another user's step
    /// of the same company. They must wait holding neither a call slot nor a task (the earlier
    /// code kept them as tasks and grew to 93 MB at 200,000 users; an attempt that deferred them
    /// hung here); the run must end by itself in the model's state. The deadline only turns a
    /// hang into a failure.
    func test_companyHeavyUsers_withTwoCallsInFlight_endInTheModelState() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("users.ndjson")
        let generated = try runPython([RESTFixture.generator.path, "users", "--count", "2000", "--out", input.path])
        XCTAssertEqual(generated.status, 0, "generate.py users failed: \(generated.stderr)")
        let dry = try await bulkDryRunItems([input.path], batchSize: 100, in: dir)
        let expected = try modelState(items: dry.items, api: "rest", in: dir)
        try await withSandbox(Self.sandboxWithToken) { server in
            let stateDir = dir.appendingPathComponent("state")
            let reportURL = dir.appendingPathComponent("report.json")
            let process = try launch(
                [
                    "run", "--api-version", "2.14", "--endpoint", server.baseURL, "--state-dir", stateDir.path,
                    "--batch-size", "100", "--max-in-flight", "2", "--report", reportURL.path, "--no-progress", input.path,
                ], environment: ["INTERCOM_ACCESS_TOKEN": RESTFixture.token], in: dir)
            do {
                let result = try await process.wait(deadline: 300)
                XCTAssertEqual(result.status, 0, "every item is taken: \(result.stderrText)")
            } catch let timedOut as ProcessTimedOut {
                return XCTFail("the run hung after \(server.stats().requests) calls: \(timedOut)")
            }
            let report = try Report(url: reportURL)
            assertRESTAddsUp(report)
            XCTAssertEqual(report.uploadedUsers, 2000, "\(report.raw)")
            XCTAssertGreaterThan(
                report.calls["POST /contacts/{id}/companies"] ?? 0, 1000, "most users join a shared company: \(report.calls)")
            XCTAssertLessThan(report.calls["POST /companies"] ?? 0, 200, "a few dozen companies: \(report.calls)")
            let state = try writeState(try await fetchSandboxState(server), named: "state", in: dir)
            try assertSameState(expected: expected, actual: state, "company-heavy users, two calls in flight")
        }
    }

    // MARK: - 3. auto falls back to REST

    /// `--api-version auto` against a workspace without the bulk API: the run says so once, goes
    /// on in REST mode, delivers everything, and the report, the checkpoint and `status` name 2.14.
    func test_autoAgainstAWorkspaceWithoutBulk_fallsBackToREST_andEndsInTheModelState() async throws {
        let dir = try makeTemporaryDirectory()
        let mix = try RestMix.generate(in: dir, records: 1000)
        let dry = try await bulkDryRunItems([mix.input.path], batchSize: 100, in: dir)
        let expected = try modelState(items: dry.items, api: "rest", in: dir)
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox({
            Self.sandboxWithToken(&$0)
            $0.bulkAvailable = false
        }) { server in
            let up = try await restUpload(
                [mix.input.path], to: server, stateDir: stateDir, extra: ["--api-version", "auto"], in: dir)
            XCTAssertEqual(up.report.api, "2.14", up.result.stderrText)
            XCTAssertEqual(up.report.mappedUsers, dry.report.mappedUsers)
            XCTAssertEqual(up.report.mappedEvents, dry.report.mappedEvents)
            XCTAssertEqual((up.report.calls["POST /events"] ?? 0) + up.report.eventsAlreadySent, dry.report.mappedEvents)
            XCTAssertEqual(server.stats().jobs, 0, "no bulk job")
            let fallbackLines = up.result.stderrText.split(separator: "\n").filter { $0.lowercased().contains("bulk api") }
            XCTAssertEqual(fallbackLines.count, 1, "the fallback is said once:\n\(up.result.stderrText)")

            let checkpoint = try checkpointObject(stateDir.appendingPathComponent("checkpoint.json"))
            XCTAssertEqual(checkpoint["api"] as? String, "2.14", "the checkpoint remembers the API")
            let status = try await run(["status", "--state-dir", stateDir.path], in: dir)
            XCTAssertEqual(status.status, 0, status.stderrText)
            XCTAssertTrue(
                (status.stdoutText + status.stderrText).contains("API: 2.14"), "status names the API: \(status.stdoutText)")

            let state = try writeState(try await fetchSandboxState(server), named: "state", in: dir)
            try assertSameState(expected: expected, actual: state, "auto run against a workspace without bulk")
        }
    }

    // MARK: - 4. A rerun writes nothing

    /// Everything the first run wrote is in the state store: a `--restart` over the same input
    /// sends its events again (Intercom de-duplicates them) and writes no contact, company or
    /// membership; every user item is `unchanged`. (fixtures/sample day 1: its repeated identifies
    /// never change a field back and forth; rest-mix's do, and a rerun of it rewrites the
    /// intermediate values on the way to the same final state, which is not asserted here.)
    func test_restartOverTheSameInput_writesNoContactCompanyOrMembership() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.sampleFiles[0].path
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox(Self.sandboxWithToken) { server in
            let first = try await restUpload([input], to: server, stateDir: stateDir, in: dir)
            XCTAssertGreaterThan(first.report.calls["POST /contacts"] ?? 0, 0, "the first run creates contacts")
            let before = try normalizedState(try writeState(try await fetchSandboxState(server), named: "before", in: dir))

            let again = try await restUpload([input], to: server, stateDir: stateDir, extra: ["--restart"], in: dir)
            XCTAssertEqual(again.report.api, "2.14")
            XCTAssertTrue(
                Set(again.report.calls.keys).isSubset(of: RESTFixture.readOnlyAndEventCalls),
                "a rerun writes no contact, company or membership: \(again.report.calls)")
            XCTAssertEqual((again.report.calls["POST /events"] ?? 0) + again.report.eventsAlreadySent, again.report.mappedEvents)
            XCTAssertEqual(again.report.unchanged, again.report.mappedUsers, "every user item is unchanged")
            XCTAssertEqual(again.report.mappedUsers, first.report.mappedUsers)
            XCTAssertEqual(again.report.uploadedUsers, again.report.mappedUsers)

            let after = try normalizedState(try writeState(try await fetchSandboxState(server), named: "after", in: dir))
            for key in ["contacts", "companies", "data_attributes"] {
                XCTAssertEqual(
                    canonicalJSON(after[key] ?? NSNull()), canonicalJSON(before[key] ?? NSNull()), "\(key) changed on the rerun")
            }
        }
    }

    // MARK: - 5. The REST dry run

    /// `--dry-run --api-version 2.14` writes one line per call (`method`, `path`, `body` when it
    /// has one), ids as placeholders; it starts with the two attribute listings, is the same
    /// bytes every time, and its lines add up to the report's `calls`.
    func test_RESTDryRun_oneLinePerCall_placeholders_deterministic() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("small.ndjson")
        try write(
            [
                #"{"type":"identify","userId":"u1","timestamp":"2026-11-01T10:00:00Z","#
                    + #""traits":{"email":"u1@dry.example","name":"Una","company":{"id":"c1","name":"C One"}}}"#,
                #"{"type":"track","userId":"u1","event":"Signed In","timestamp":"2026-11-01T10:00:01Z"}"#,
                #"{"type":"identify","userId":"u1","timestamp":"2026-11-01T10:00:00Z","traits":{"name":"Una Two"}}"#,
            ], to: input)
        let mix = try RestMix.generate(in: dir, records: 600)

        func restDryRun(_ inputs: [String], _ name: String, extra: [String] = []) async throws -> (
            bytes: Data, report: Report, calls: [[String: Any]]
        ) {
            let out = dir.appendingPathComponent("\(name)-calls.ndjson")
            let reportURL = dir.appendingPathComponent("\(name)-report.json")
            let result = try await run(
                [
                    "run", "--dry-run", "--api-version", "2.14", "--out", out.path, "--state-dir",
                    dir.appendingPathComponent("\(name)-state").path, "--report", reportURL.path, "--no-progress",
                ] + extra + inputs, in: dir)
            XCTAssertEqual(result.status, 0, result.stderrText)
            let report = try Report(url: reportURL)
            assertRESTAddsUp(report)
            let bytes = try Data(contentsOf: out)
            return (bytes, report, try ndjsonObjects(out))
        }

        // One item a batch: the second identify is in a users batch after the event's batch, so it
        // is an update of its own (in one batch it would be merged into the create).
        let small = try await restDryRun([input.path], "small", extra: ["--batch-size", "1"])
        XCTAssertEqual(small.report.api, "2.14")
        XCTAssertEqual(small.report.failed, 0, "a dry run fails nothing")
        let mixA = try await restDryRun([mix.input.path], "mix-a")
        let mixB = try await restDryRun([mix.input.path], "mix-b")
        XCTAssertEqual(mixA.bytes, mixB.bytes, "two dry runs of the same input are byte-identical")
        XCTAssertFalse(mixA.bytes.isEmpty)

        for dry in [small, mixA] {
            XCTAssertGreaterThanOrEqual(dry.calls.count, 2)
            XCTAssertEqual(
                dry.calls.prefix(2).map { "\($0["method"] as? String ?? "") \($0["path"] as? String ?? "")" }.sorted(),
                ["GET /data_attributes?model=company", "GET /data_attributes?model=contact"],
                "the first lines list the attributes")
            var histogram: [String: Int] = [:]
            for call in dry.calls {
                XCTAssertTrue(Set(call.keys).isSubset(of: ["method", "path", "body"]), "\(call)")
                let method = call["method"] as? String ?? "?"
                XCTAssertTrue(["GET", "POST", "PUT", "DELETE"].contains(method), "\(call)")
                let path = call["path"] as? String ?? "?"
                XCTAssertTrue(path.hasPrefix("/"), "\(call)")
                histogram["\(method) \(endpointTemplate(path))", default: 0] += 1
            }
            XCTAssertEqual(histogram, dry.report.calls, "the lines are the calls the report counts")
            XCTAssertEqual((histogram["POST /events"] ?? 0) + dry.report.eventsAlreadySent, dry.report.mappedEvents)
            XCTAssertEqual(dry.report.requests, dry.calls.count)
        }

        let lines = small.calls.map(canonicalJSON)
        XCTAssertTrue(
            lines.contains(
                canonicalJSON([
                    "method": "POST", "path": "/contacts/{contact:external_id=u1}/companies",
                    "body": ["id": "{company:company_id=c1}"],
                ])), "the join names both by placeholder:\n\(lines.joined(separator: "\n"))")
        let createIndex = try XCTUnwrap(small.calls.firstIndex { $0["path"] as? String == "/contacts" }, "\(lines)")
        let create = small.calls[createIndex]
        let createBody = create["body"] as? [String: Any] ?? [:]
        XCTAssertEqual(createBody["role"] as? String, "user")
        XCTAssertEqual(createBody["external_id"] as? String, "u1")
        XCTAssertEqual(createBody["email"] as? String, "u1@dry.example")
        XCTAssertEqual(createBody["name"] as? String, "Una")
        let updateIndex = try XCTUnwrap(
            small.calls.firstIndex {
                $0["method"] as? String == "PUT" && $0["path"] as? String == "/contacts/{contact:external_id=u1}"
            }, "the second identify is an update of the same contact:\n\(lines.joined(separator: "\n"))")
        let updateBody = small.calls[updateIndex]["body"] as? [String: Any] ?? [:]
        XCTAssertEqual(updateBody["name"] as? String, "Una Two")
        XCTAssertNil(updateBody["role"], "role is sent on create only")
        XCTAssertNil(updateBody["email"], "only the fields that change")
        let eventIndex = try XCTUnwrap(small.calls.firstIndex { $0["path"] as? String == "/events" }, "\(lines)")
        let eventBody = small.calls[eventIndex]["body"] as? [String: Any] ?? [:]
        XCTAssertTrue(
            createIndex < eventIndex && eventIndex < updateIndex, "input order per user:\n\(lines.joined(separator: "\n"))")
        XCTAssertEqual(eventBody["event_name"] as? String, "Signed In")
        XCTAssertEqual(eventBody["user_id"] as? String, "u1")
        XCTAssertEqual(eventBody["created_at"] as? Int, 1_793_527_201)
        XCTAssertEqual(
            small.calls.count, 7, "2 listings, create, company upsert, join, event, update:\n\(lines.joined(separator: "\n"))")
    }
}

/// A dry-run path as the report's `calls` key: the query dropped, every `{…}` placeholder (and a
/// literal id) as `{id}`: `/contacts/{contact:external_id=u1}/companies` -> `/contacts/{id}/companies`.
private func endpointTemplate(_ path: String) -> String {
    let bare = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
    var segments: [String] = []
    var depth = 0
    var current = ""
    for character in bare {
        if character == "{" { depth += 1 }
        if character == "}" { depth -= 1 }
        if character == "/" && depth == 0 {
            segments.append(current)
            current = ""
        } else {
            current.append(character)
        }
    }
    segments.append(current)
    return segments.map { $0.hasPrefix("{") ? "{id}" : $0 }.joined(separator: "/")
}
