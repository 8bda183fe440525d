import Foundation
import IntercomBackfill
import IntercomSandbox
import Logging
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Issue 14: REST mode (`--api-version 2.14`) under faults, rate limits, crashes, resumes, refused
/// credentials and SIGTERM. Every run is judged against the independent model of
/// `Support/expected_state.py` (the mapped items applied in input order, REST rules), so a test
/// passes only when nothing was lost and nothing was applied twice in a way that shows.
final class RESTResilienceTests: IntegrationTestCase {
    static let token = "rest-resilience-token"
    /// Records of the generated `rest-mix` corpus: big enough for a few thousand calls, small
    /// enough that the whole file stays well under its time budget on 2 cores.
    static let corpusRecords = 1000

    // MARK: - 1. Faults plus a tight rate limit (in process, virtual clock)

    /// The REST destination in process, sharing a manual clock with the sandbox: 5 % of the
    /// writes meet a 500, a 503 or a dropped connection and the budget is 20 calls a 10-second
    /// window, yet the workspace ends exactly as the model says, every event reaches the
    /// workspace once (retries of faulted calls never double one), and the limiter reads the
    /// `X-RateLimit-*` headers well enough that at most 1 % of the calls meet a 429.
    func test_faultsAndATightRateLimit_finalStateIsTheModel_reportAddsUp_few429s() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let batchSize = 10
        let model = try makeModel(inputs: [corpus.input.path], seed: corpus.seed, in: dir)

        let clock = SandboxManualClock()
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.failRate = 0.05
            $0.seed = 20_261_214
            $0.rateLimitPerWindow = 20
            $0.clock = clock.clock
        }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let run = try await uploadRESTInProcess(
                inputs: [corpus.input.path], to: server, clock: VirtualUploadClock(clock: clock),
                stateDir: dir.appendingPathComponent("state"), batchSize: batchSize, concurrency: 4)
            let report = try Report(run)
            assertAddsUp(report)
            XCTAssertEqual(report.records, Self.corpusRecords + corpus.badLines.count)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents + report.failed, report.mapped, "\(report.raw)")
            XCTAssertEqual(report.raw["api"] as? String, "2.14")

            let stats = server.stats()
            XCTAssertGreaterThan(stats.faults.total, 0, "the seed injects faults")
            XCTAssertGreaterThanOrEqual(report.retries, stats.faults.total, "every fault was retried")
            let rateLimited = report.raw["rate_limited"] as? Int ?? -1
            XCTAssertGreaterThanOrEqual(rateLimited, 0, "the report has rate_limited: \(report.raw)")
            XCTAssertEqual(rateLimited, stats.rateLimited, "the report counts the 429s the sandbox gave")
            XCTAssertLessThanOrEqual(
                Double(rateLimited), 0.01 * Double(report.requests),
                "\(rateLimited) of \(report.requests) calls were answered 429")
            let windows = Int((clock.now - 1_700_000_000) / 10) + 1
            XCTAssertGreaterThan(windows, report.requests / 20 - 1, "the virtual clock went through the windows")
            print("REST faults+rate limit: \(rateLimited) 429s in \(report.requests) calls, \(stats.faults.total) faults")

            let reached = stats.itemsAccepted.events + stats.duplicates
            XCTAssertGreaterThanOrEqual(reached, model.reachableEvents, "each event that can reach the workspace did")
            XCTAssertLessThanOrEqual(reached, model.reachableItems, "no event was sent more often than the input has it")
            try assertStateIsTheModel(server, model, in: dir)
        }
    }

    // MARK: - 2. SIGKILL at seeded points

    /// The binary killed with SIGKILL at 4 seeded points, then run again until it ends by itself:
    /// the workspace is the model's, every line the mapping rejects is in the rejects file, and
    /// the `POST /events` calls that reached the workspace beyond a clean run's stay within
    /// kills x (concurrency + 1) x batch size (the window of batches not yet in a checkpoint,
    /// and the one sent past a record still waiting, per crash; README "Resuming").
    func test_sigkillAtSeededPoints_finalStateIsTheModel_rejectsKept_resendsBounded() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let (batchSize, concurrency) = (10, 2)
        let model = try makeModel(inputs: [corpus.input.path], seed: corpus.seed, in: dir)
        let stateDir = dir.appendingPathComponent("state")
        var dice = SeededBytes(seed: 14)
        let killAfter = (0..<4).map { _ in 30 + Int(dice.next() % 250) }

        try await withSandbox({
            $0.bearerToken = Self.token
            $0.latencyMilliseconds = 3
        }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let arguments = restArguments(
                [corpus.input.path], server: server, stateDir: stateDir, batchSize: batchSize, concurrency: concurrency)
            let (kills, result) = try await runWithKills(arguments, server: server, in: dir, killAfter: killAfter)
            XCTAssertEqual(kills, killAfter.count, "every planned kill met a running process")
            XCTAssertTrue([0, 1].contains(result.status), "exit \(result.status): \(result.stderrText)")

            let stats = server.stats()
            let resent = stats.itemsAccepted.events + stats.duplicates - model.reachableEvents
            let bound = kills * (concurrency + 1) * batchSize
            print("REST SIGKILL: kills at \(killAfter) calls, \(resent) POST /events re-sent (bound \(bound))")
            XCTAssertGreaterThanOrEqual(resent, 0, "no event that should reach the workspace was lost")
            XCTAssertLessThanOrEqual(resent, bound, "re-sent \(resent) events after \(kills) kills")
            try assertStateIsTheModel(server, model, in: dir)

            let expectedRejects = try CLI.dryRunRejects([corpus.input.path])
            XCTAssertEqual(expectedRejects.count, corpus.badLines.count, "each bad line is a mapping reject")
            let written = Set(try CLI.rejectedLines(stateDir.appendingPathComponent("rejects.ndjson")))
            XCTAssertEqual(expectedRejects.filter { !written.contains($0) }, [], "rejected lines missing after the kills")

            let report = try Report(url: stateDir.appendingPathComponent("report.json"))
            assertAddsUp(report)
            XCTAssertEqual(report.records, Self.corpusRecords + corpus.badLines.count, "the report covers the whole backfill")
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents + report.failed, report.mapped, "\(report.raw)")
        }
    }

    /// Why a crash can lose a company's fields (seen once in ~10 runs of many close kills: a
    /// company ended with an earlier item's plan): an upsert that sees a later upsert of the same
    /// company registered hands its fields to that later step and counts as done, so its batch
    /// settles before the fields are written. Here the later step belongs to an item that fails
    /// (an archived contact: contract 8.3, nothing of it is applied), which loses them without
    /// any crash: `plan` must end "p2" (the model's), not "p1".
    func test_companyFieldsHandedToALaterFailingItem_areStillWritten() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let input = dir.appendingPathComponent("carry.ndjson")
        let lines = [
            #"{"type":"identify","userId":"rm_carry_a","traits":{"company":{"id":"rc_carry","name":"Carry","plan":"p1"}}}"#,
            #"{"type":"identify","userId":"rm_carry_b","traits":{"company":{"id":"rc_carry","name":"Carry","plan":"p2"}}}"#,
            #"{"type":"identify","userId":"rm_archived","traits":{"company":{"id":"rc_carry","name":"Carry"}}}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
        let model = try makeModel(inputs: [input.path], seed: corpus.seed, in: dir)
        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let stateDir = dir.appendingPathComponent("state")
            let result = try await run(
                restArguments([input.path], server: server, stateDir: stateDir),
                environment: ["INTERCOM_ACCESS_TOKEN": Self.token],
                in: dir)
            XCTAssertEqual(result.status, 1, "the archived contact's item fails: \(result.stderrText)")
            let report = try Report(url: stateDir.appendingPathComponent("report.json"))
            XCTAssertEqual((report.raw["failed_reasons"] as? [String: Int])?["contact_archived"], 1, "\(report.raw)")
            try assertStateIsTheModel(server, model, in: dir)
        }
    }

    // MARK: - 3. Resume variants

    /// stdin through a pipe, named with `--stream-name`: killed twice, piped again from the
    /// start each time, then finished; the named stream resumes where its checkpoint says and
    /// the workspace is the model's.
    func test_stdinWithStreamName_killedAndRepiped_finalStateIsTheModel() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let model = try makeModel(inputs: [corpus.input.path], seed: corpus.seed, in: dir)
        let stateDir = dir.appendingPathComponent("state")
        let bytes = try Data(contentsOf: corpus.input)

        try await withSandbox({
            $0.bearerToken = Self.token
            $0.latencyMilliseconds = 2
        }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let arguments = restArguments(["-", "--stream-name", "nightly"], server: server, stateDir: stateDir)
            let (kills, result) = try await runWithKills(
                arguments, stdin: .bytes(bytes), server: server, in: dir, killAfter: [120, 260])
            XCTAssertEqual(kills, 2, "both planned kills met a running process")
            XCTAssertTrue([0, 1].contains(result.status), "exit \(result.status): \(result.stderrText)")
            try assertStateIsTheModel(server, model, in: dir)
            let report = try Report(url: stateDir.appendingPathComponent("report.json"))
            assertAddsUp(report)
            XCTAssertEqual(report.records, Self.corpusRecords + corpus.badLines.count)
        }
    }

    /// A nightly folder run: two files, then a third one added. The second run sends only the
    /// new file's items (its `POST /events` calls are at most the new file's events) and the
    /// workspace is the model of all three files.
    func test_folderRunTwice_onlyTheNewFilesEventsAreSent() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let folder = dir.appendingPathComponent("archive")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let parts = try split(corpus.input, into: 3, in: dir)
        let stateDir = dir.appendingPathComponent("state")
        let reportURL = stateDir.appendingPathComponent("report.json")

        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let arguments = restArguments([folder.path], server: server, stateDir: stateDir)
            for part in parts.prefix(2) {
                try FileManager.default.copyItem(at: part, to: folder.appendingPathComponent(part.lastPathComponent))
            }
            let first = try await run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            XCTAssertTrue([0, 1].contains(first.status), first.stderrText)

            try FileManager.default.copyItem(at: parts[2], to: folder.appendingPathComponent(parts[2].lastPathComponent))
            let second = try await run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            XCTAssertTrue([0, 1].contains(second.status), second.stderrText)
            let report = try Report(url: reportURL)
            assertAddsUp(report)
            let newEvents = try dryRunMappedEvents(parts[2], in: dir)
            let calls = report.raw["calls"] as? [String: Int] ?? [:]
            XCTAssertNotNil(report.raw["calls"], "a REST report names its calls: \(report.raw)")
            XCTAssertLessThanOrEqual(
                calls["POST /events"] ?? 0, newEvents, "the second run sent only the new file's events: \(calls)")
            XCTAssertEqual(report.raw["resumed_records"] as? Int, try lineCount(parts[0]) + lineCount(parts[1]))

            let model = try makeModel(inputs: [folder.path], seed: corpus.seed, in: dir)
            try assertStateIsTheModel(server, model, in: dir)
        }
    }

    // MARK: - 4. Refused credentials

    /// A wrong token: exit 3, a message that names the token or credentials, nothing written to
    /// the workspace, no checkpoint past any line and no item written down as failed (the
    /// message says "nothing was lost: run the same command again"). Run again with the right
    /// token, the backfill completes and its report still adds up (uploaded + failed = mapped).
    func test_wrongToken_exits3_namesTheCredentials_nothingSettled() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox({ $0.bearerToken = Self.token }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let before = try sandboxState(server, in: dir)
            // Many batches in delivery when the 401 comes: the ones whose calls had not started yet are
            // cancelled, not refused, and must not be written down as failed either.
            let arguments = restArguments(
                [corpus.input.path], server: server, stateDir: stateDir, batchSize: 5, concurrency: 8)
            let result = try await run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": "not-the-token"], in: dir)
            XCTAssertEqual(result.status, 3, result.stderrText)
            let message = result.stderrText.lowercased()
            XCTAssertTrue(
                message.contains("token") || message.contains("credential"), "the message names the credentials: \(message)")
            XCTAssertGreaterThan(server.stats().unauthorized, 0, "the sandbox refused the token")
            XCTAssertEqual(try sandboxState(server, in: dir), before, "nothing reached the workspace")
            try assertNothingSettled(stateDir)
            let rejects = try ndjsonObjects(stateDir.appendingPathComponent("rejects.ndjson"))
            let written = rejects.filter { corpus.badLines.contains($0["line"] as? Int ?? -1) == false }
            XCTAssertEqual(
                written.count, 0,
                "items written down as failed after refused credentials: \(written.prefix(2).map { canonicalJSON($0) })")

            let retried = try await run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            XCTAssertTrue([0, 1].contains(retried.status), retried.stderrText)
            let report = try Report(url: stateDir.appendingPathComponent("report.json"))
            assertAddsUp(report)
            XCTAssertEqual(report.uploadedUsers + report.uploadedEvents + report.failed, report.mapped, "\(report.raw)")
            XCTAssertNil(
                (report.raw["failed_reasons"] as? [String: Int])?["upload_failed"], "no upload_failed left from the refused run")
        }
    }

    // MARK: - 5. SIGTERM during a rate-limit wait

    /// A budget of 30 calls a 10-second window (real time: the binary's clock): once the budget
    /// is spent the client waits for the window's reset; SIGTERM then ends it with 143, the
    /// summary on stderr and a valid checkpoint.
    func test_sigtermDuringARateLimitWait_exits143_withSummaryAndCheckpoint() async throws {
        let dir = try makeTemporaryDirectory()
        let corpus = try makeCorpus(in: dir)
        let stateDir = dir.appendingPathComponent("state")
        try await withSandbox({
            $0.bearerToken = Self.token
            $0.rateLimitPerWindow = 30
        }) { server in
            try seedWorkspace(server, with: corpus.seed)
            let process = try launch(
                restArguments([corpus.input.path], server: server, stateDir: stateDir, batchSize: 5),
                environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            let spent = try await waitUntil(deadline: 60) { server.stats().requests >= 30 || !process.isRunning }
            XCTAssertTrue(spent && process.isRunning, "the run spent its budget and waits")
            process.send(SIGTERM)
            let result = try await process.wait(deadline: 60)
            XCTAssertTrue(result.exited, "ended by exit, not by the signal: \(result.stderrText)")
            XCTAssertEqual(result.status, 143, result.stderrText)
            XCTAssertTrue(result.stderrText.contains(" records in "), "the summary: \(result.stderrText)")
            XCTAssertTrue(result.stderrText.contains("REST:"), "the REST line of the summary: \(result.stderrText)")
            let checkpoint = stateDir.appendingPathComponent("checkpoint.json")
            XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.path), "a checkpoint was written")
            XCTAssertTrue(CLI.checkpointIsValid(checkpoint))
            let rejects = try ndjsonObjects(stateDir.appendingPathComponent("rejects.ndjson"))
            XCTAssertEqual(
                rejects.filter { $0["reason"] as? String == "upload_failed" }.count, 0,
                "an item the stop left unsent is neither sent nor failed: the next run sends it")
        }
    }

    // MARK: - Helpers (private: RESTSupport.swift belongs to another suite)

    private struct Corpus {
        /// Plain NDJSON: the `rest-mix` records with `badLines` put in between.
        var input: URL
        /// The seed workspace (`POST /sandbox/seed`).
        var seed: URL
        /// 1-based line numbers of the lines the mapping rejects.
        var badLines: [Int]
    }

    private struct Model {
        /// The normalized state `expected_state.py expect --api rest` gives.
        var state: URL
        /// How many event calls the workspace answers 202 in a clean run: the distinct event
        /// items whose user exists, not archived or merged, when sent (an item repeated byte for
        /// byte is sent once: the state store remembers the events Intercom acknowledged).
        var reachableEvents: Int
        /// The same, counting an item repeated byte for byte each time: what a run sends at most
        /// when identical events go out at the same moment, before either is acknowledged.
        var reachableItems: Int
    }

    /// The `rest-mix` corpus and its seed, with three lines the mapping rejects put in (an
    /// invalid JSON line, a track with no event, a group with no groupId): they change no item,
    /// so the model is the same, and they give the rejects file something to keep.
    private func makeCorpus(in dir: URL) throws -> Corpus {
        let raw = dir.appendingPathComponent("rest-mix-raw.ndjson")
        let seed = dir.appendingPathComponent("rest-mix-seed.json")
        try shell([
            "python3", "-B", Paths.packageRoot.appendingPathComponent("fixtures/generate.py").path, "rest-mix", "--out", raw.path,
            "--seed-out", seed.path, "--records", "\(Self.corpusRecords)",
        ])
        var lines = try String(contentsOf: raw, encoding: .utf8).split(separator: "\n").map(String.init)
        let bad = [
            (150, #"{"type":"identify","userId":"cut"#),
            (480, #"{"type":"track","userId":"rm_u0001","timestamp":"2026-11-01T00:00:00Z"}"#),
            (820, #"{"type":"group","userId":"rm_u0002","traits":{"name":"x"}}"#),
        ]
        for (index, line) in bad where index < lines.count { lines.insert(line, at: index) }
        let input = dir.appendingPathComponent("rest-mix.ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
        return Corpus(input: input, seed: seed, badLines: bad.map { $0.0 + 1 })
    }

    /// The model of `inputs`: a bulk dry run with one item a line (exactly input order, as
    /// expected_state.py asks), then `expect --api rest`; and the events that reach the workspace.
    private func makeModel(inputs: [String], seed: URL, in dir: URL) throws -> Model {
        let id = UUID().uuidString.prefix(8)
        let items = dir.appendingPathComponent("dry-\(id).ndjson")
        let state = dir.appendingPathComponent("expected-\(id).json")
        let result = try CLI.run(
            [
                "run", "--dry-run", "--api-version", "1.4", "--batch-size", "1", "--out", items.path, "--state-dir",
                dir.appendingPathComponent("dry-state-\(id)").path, "--quiet",
            ] + inputs)
        XCTAssertTrue([0, 1].contains(result.exitCode), result.stderr)
        try shell(
            ["python3", "-B", Self.expectedState, "expect", "--items", items.path, "--seed", seed.path, "--api", "rest"],
            to: state)
        let counted = try shell(["python3", "-B", "-c", Self.reachableScript, Self.supportFolder, items.path, seed.path])
        let numbers = counted.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        XCTAssertEqual(numbers.count, 2, counted)
        return Model(state: state, reachableEvents: numbers.first ?? 0, reachableItems: numbers.last ?? 0)
    }

    private static var supportFolder: String { Paths.packageRoot.appendingPathComponent("Tests/IntegrationTests/Support").path }
    private static var expectedState: String { supportFolder + "/expected_state.py" }

    /// Replays the dry run through expected_state.py's model and counts the events it resolves
    /// to a usable contact when they come (the ones a REST run's `POST /events` meets a 202 for).
    private static let reachableScript = """
        import sys
        sys.path.insert(0, sys.argv[1])
        import expected_state as es
        m = es.Model("rest")
        with open(sys.argv[3], encoding="utf-8") as f:
            m.seed(es.loads(f.read()))
        import json
        seen = set()
        total = 0
        with open(sys.argv[2], encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                r = es.loads(line)
                for item in r["body"]["items"]:
                    d = item.get("data") or {}
                    if r["path"] == "/bulk/users":
                        m.user_item(d)
                    else:
                        if m.resolve_event(d.get("user_id") or None, d.get("email")) is not None:
                            seen.add(json.dumps(d, sort_keys=True))
                            total += 1
                        m.event_item(d)
        print(len(seen), total)
        """

    /// GET /sandbox/state into a file, and `expected_state.py diff` against the model: exit 0.
    private func assertStateIsTheModel(
        _ server: IntercomSandboxServer, _ model: Model, in dir: URL, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let state = dir.appendingPathComponent("state-\(UUID().uuidString.prefix(8)).json")
        try sandboxState(server, in: dir).write(to: state)
        let (status, out, errors) = try shellStatus(["python3", "-B", Self.expectedState, "diff", model.state.path, state.path])
        XCTAssertEqual(
            status, 0, "the workspace differs from the model (expected, actual):\n\(out)\(errors)", file: file, line: line)
    }

    private func sandboxState(_ server: IntercomSandboxServer, in dir: URL) throws -> Data {
        Data(try shell(["curl", "-sS", "-f", server.baseURL + "/sandbox/state"]).utf8)
    }

    private func seedWorkspace(_ server: IntercomSandboxServer, with seed: URL) throws {
        try shell([
            "curl", "-sS", "-f", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + seed.path,
            server.baseURL + "/sandbox/seed",
        ])
    }

    private func restArguments(
        _ inputs: [String], server: IntercomSandboxServer, stateDir: URL, batchSize: Int = 10, concurrency: Int = 2
    ) -> [String] {
        ["run"] + inputs + [
            "--api-version", "2.14", "--endpoint", server.baseURL, "--state-dir", stateDir.path, "--batch-size", "\(batchSize)",
            "--concurrency", "\(concurrency)", "--no-progress", "--report", stateDir.appendingPathComponent("report.json").path,
        ]
    }

    /// Runs again and again, killing with SIGKILL once `killAfter[i]` more calls reached the
    /// sandbox (a condition polled with a deadline, not a sleep), until a run ends by itself.
    private func runWithKills(
        _ arguments: [String], stdin: StandardInput = .null, server: IntercomSandboxServer, in dir: URL, killAfter: [Int]
    ) async throws -> (kills: Int, result: CLIResult) {
        var kills = 0
        for attempt in 0..<(killAfter.count + 5) {
            let before = server.stats().requests
            let process = try launch(arguments, stdin: stdin, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], in: dir)
            if attempt < killAfter.count {
                let target = before + killAfter[attempt]
                _ = try await waitUntil(deadline: 60) { server.stats().requests >= target || !process.isRunning }
                if process.isRunning {
                    process.send(SIGKILL)
                    _ = try await process.wait(deadline: 30)
                    kills += 1
                    continue
                }
            }
            let result = try await process.wait(deadline: 120)
            if result.exited { return (kills, result) }
        }
        XCTFail("the backfill never finished")
        throw CommandFailed(description: "the backfill never finished")
    }

    /// Pipeline + RESTDestination + IntercomClient in process, so the destination can share the
    /// sandbox's manual clock (the binary uses real time).
    private func uploadRESTInProcess(
        inputs: [String], to server: IntercomSandboxServer, clock: any UploadClock, stateDir: URL, batchSize: Int,
        concurrency: Int
    ) async throws -> RunReport {
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        let files = try InputDiscovery.expand(inputs)
        let rejects = try RejectsWriter(path: stateDir.appendingPathComponent("rejects.ndjson").path, append: false)
        let registry = InputRegistry(files)
        let stop = StopSignal()
        var options = PipelineOptions()
        options.batchSize = batchSize
        options.concurrency = concurrency
        return try await IntercomClient.withHTTPClient { http in
            let client = IntercomClient(
                http: http, endpoint: try IntercomEndpoint(url: server.baseURL), credentials: .bearer(Self.token))
            let store = try StateStore(
                path: stateDir.appendingPathComponent("rest-state.sqlite").path,
                workspace: RESTDestination.workspaceIdentity(of: client))
            let destination = RESTDestination(
                transport: client.speaking("2.14"), store: store, options: RESTDestination.Options(),
                uploadOptions: UploadOptions(), rejects: rejects, sources: registry, clock: clock, stop: stop, tracker: nil,
                logger: silentLogger)
            return try await Backfill.run(
                inputs: files, options: options, destination: destination, rejects: rejects, resume: nil,
                registry: registry, stop: stop, progress: nil, logger: silentLogger)
        }
    }

    /// Splits a file's lines into `count` files named so the folder reads them in that order.
    private func split(_ url: URL, into count: Int, in dir: URL) throws -> [URL] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        let size = (lines.count + count - 1) / count
        return try (0..<count).map { index in
            let part = dir.appendingPathComponent("part-\(index + 1).ndjson")
            let slice = lines[(index * size)..<min(lines.count, (index + 1) * size)]
            try (slice.joined(separator: "\n") + "\n").write(to: part, atomically: true, encoding: .utf8)
            return part
        }
    }

    private func lineCount(_ url: URL) throws -> Int {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").count
    }

    /// The events a bulk dry run of `url` maps (its report's `mapped.events`).
    private func dryRunMappedEvents(_ url: URL, in dir: URL) throws -> Int {
        let reportURL = dir.appendingPathComponent("dry-report-\(UUID().uuidString.prefix(8)).json")
        let result = try CLI.run([
            "run", "--dry-run", "--api-version", "1.4", "--out", "/dev/null", "--state-dir",
            dir.appendingPathComponent("dry-state-events").path, "--report", reportURL.path, "--quiet", url.path,
        ])
        XCTAssertTrue([0, 1].contains(result.exitCode), result.stderr)
        return try Report(url: reportURL).mappedEvents
    }

    /// No checkpoint, or one whose every input is still at its first line and not complete.
    private func assertNothingSettled(_ stateDir: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = stateDir.appendingPathComponent("checkpoint.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return }
        let checkpoint = try CheckpointStore(directory: stateDir.path).load { _ in }
        for input in checkpoint?.inputs ?? [] {
            XCTAssertFalse(input.complete, "\(input.source) is marked complete", file: file, line: line)
            XCTAssertEqual(input.line, 0, "\(input.source) is checkpointed past line 0", file: file, line: line)
            XCTAssertEqual(input.counts.records, 0, "\(input.source) counts records as done", file: file, line: line)
            XCTAssertEqual(input.counts.failed, [:], "\(input.source) counts failed items", file: file, line: line)
        }
    }

    private struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a command; fails the test (and throws) unless it exits 0. Returns its stdout, or
    /// writes it to `to`.
    @discardableResult
    private func shell(_ arguments: [String], to output: URL? = nil) throws -> String {
        let (status, out, errors) = try shellStatus(arguments, to: output)
        guard status == 0 else {
            let failure = CommandFailed(
                description: "\(arguments.joined(separator: " ")) exited \(status): \(errors.prefix(2000))")
            XCTFail(failure.description)
            throw failure
        }
        return out
    }

    /// Runs a command: its exit status, its stdout (empty when written to `to`) and its stderr.
    private func shellStatus(_ arguments: [String], to output: URL? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = Paths.packageRoot
        let out = output ?? FileManager.default.temporaryDirectory.appendingPathComponent("rr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let err = FileManager.default.temporaryDirectory.appendingPathComponent("rr-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        defer {
            if output == nil { try? FileManager.default.removeItem(at: out) }
            try? FileManager.default.removeItem(at: err)
        }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = output == nil ? (try? String(contentsOf: out, encoding: .utf8)) ?? "" : ""
        let errors = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text, errors)
    }
}
