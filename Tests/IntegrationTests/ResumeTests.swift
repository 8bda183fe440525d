import Foundation
import IntercomBackfill
import IntercomSandbox
import Logging
import XCTest

/// Crash-safe, at-least-once backfills. The binary is killed with SIGKILL at many points
/// of a run against the sandbox and rerun until it finishes; every mapped item must arrive and
/// the re-sent ones must stay under the bound the README states.
final class ResumeTests: XCTestCase {
    static let token = "resume-test-token"
    var sandbox: IntercomSandboxServer!
    var stateDir: URL!

    override func setUp() async throws {
        var logger = Logger(label: "sandbox")
        logger.logLevel = .error
        sandbox = try await IntercomSandboxServer.start(
            SandboxConfiguration(bearerToken: Self.token, latencyMilliseconds: 2), logger: logger)
        stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID().uuidString)")
        // Fixture paths are relative to the package root, as in the README.
        _ = FileManager.default.changeCurrentDirectoryPath(CLI.root.path)
    }

    override func tearDown() async throws {
        try await sandbox.shutdown()
        try? FileManager.default.removeItem(at: stateDir)
    }

    func uploadArguments(_ inputs: [String], batchSize: Int = 10) -> [String] {
        inputs + [
            "--endpoint", sandbox.baseURL, "--state-dir", stateDir.path, "--batch-size", "\(batchSize)",
            "--concurrency", "4", "--no-progress", "--report", stateDir.appendingPathComponent("report.json").path,
        ]
    }

    /// Runs the upload again and again, killing it with SIGKILL after `killAfter[i]` more requests
    /// reached the sandbox, until a run ends by itself. Returns the kills and the last exit code.
    func runWithKills(_ arguments: [String], stdinPath: String? = nil, killAfter: [Int]) throws -> (
        kills: Int, exitCode: Int32, stderr: String
    ) {
        var kills = 0
        for run in 0..<(killAfter.count + 5) {
            let before = sandbox.stats().requests
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("kill-\(UUID().uuidString)")
            let process = try CLI.launch(
                arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], stdinPath: stdinPath, output: output)
            defer {
                try? FileManager.default.removeItem(atPath: output.path + ".out")
                try? FileManager.default.removeItem(atPath: output.path + ".err")
            }
            if run < killAfter.count {
                let target = before + killAfter[run]
                CLI.wait(until: { self.sandbox.stats().requests >= target || !process.isRunning }, deadline: 60)
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                    kills += 1
                    continue
                }
            }
            try CLI.waitForExit(process, deadline: 120)
            if process.terminationReason == .exit {
                return (
                    kills, process.terminationStatus, (try? String(contentsOfFile: output.path + ".err", encoding: .utf8)) ?? ""
                )
            }
        }
        XCTFail("the backfill never finished")
        return (kills, -1, "")
    }

    /// Every dry-run item arrived, and the re-sent ones are within `kills` times the bound.
    func assertAllArrived(
        expected: [SandboxKey], kills: Int, batchSize: Int, concurrency: Int = 4, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let accepted = sandbox.acceptedItems().map { SandboxKey(dataType: $0.dataType, json: $0.dataJSON) }
        let acceptedSet = Set(accepted)
        let missing = expected.filter { !acceptedSet.contains($0) }
        XCTAssertEqual(missing.count, 0, "items never arrived: \(missing.prefix(3))", file: file, line: line)
        let stats = sandbox.stats()
        let delivered = stats.itemsAccepted.users + stats.itemsAccepted.events + stats.duplicates
        let resent = delivered - expected.count
        // README, "Resuming": at most the window (concurrency batches sent and not yet in a saved
        // checkpoint) and the one batch that may be sent past a record still waiting, per crash.
        let bound = kills * (concurrency + 1) * batchSize
        XCTAssertGreaterThanOrEqual(resent, 0, file: file, line: line)
        XCTAssertLessThanOrEqual(resent, bound, "re-sent \(resent) items after \(kills) kills", file: file, line: line)
    }

    /// Every record the mapping rejects is in the rejects file (at least once) after the kills.
    func assertEveryRejectWrittenDown(
        _ inputs: [String], as source: ((String) -> String)? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let expected = try CLI.dryRunRejects(inputs).map { source?($0) ?? $0 }
        let written = Set(try CLI.rejectedLines(stateDir.appendingPathComponent("rejects.ndjson")))
        XCTAssertGreaterThan(expected.count, 0, "the input has rejected records", file: file, line: line)
        let missing = expected.filter { !written.contains($0) }
        XCTAssertEqual(missing, [], "rejected records in no rejects file after the kills", file: file, line: line)
    }

    func test_sigkillAtManyPoints_everyItemArrivesAndResendsStayBounded() throws {
        let expected = try CLI.dryRunItems(["fixtures/sample"], batchSize: 10)
        let (kills, code, stderr) = try runWithKills(
            uploadArguments(["fixtures/sample"]), killAfter: [3, 17, 5, 29, 11, 41, 7, 23, 13, 2, 37, 19])
        XCTAssertGreaterThanOrEqual(kills, 8, "the test must really interrupt runs")
        XCTAssertEqual(code, 1, "the sample has rejected records: \(stderr)")
        assertAllArrived(expected: expected, kills: kills, batchSize: 10)
        try assertEveryRejectWrittenDown(["fixtures/sample"])
        let report = try CLI.report(stateDir.appendingPathComponent("report.json"))
        XCTAssertEqual(report["records"] as? Int, 3971, "the report covers the whole backfill")
        XCTAssertTrue(CLI.addsUp(report))
    }

    /// What a kill re-sends is the window: measured with 3 kills at --concurrency 4 --batch-size 20.
    func test_threeKills_concurrency4_batch20_resendWithinTheWindowBound() throws {
        let expected = try CLI.dryRunItems(["fixtures/sample"], batchSize: 20)
        let arguments = uploadArguments(["fixtures/sample"], batchSize: 20)  // --concurrency 4
        let (kills, code, stderr) = try runWithKills(arguments, killAfter: [9, 21, 14])
        XCTAssertEqual(kills, 3, "the test must really interrupt three runs")
        XCTAssertEqual(code, 1, stderr)
        assertAllArrived(expected: expected, kills: kills, batchSize: 20, concurrency: 4)
        try assertEveryRejectWrittenDown(["fixtures/sample"])
    }

    func test_stdinWithStreamName_resumesAfterKills_andAnotherStreamIsRefused() throws {
        let plain = stateDir.deletingLastPathComponent().appendingPathComponent("stream-\(UUID().uuidString).ndjson")
        try CLI.decompress("fixtures/sample/2026-11-02.ndjson.gz", to: plain)
        defer { try? FileManager.default.removeItem(at: plain) }
        let expected = try CLI.dryRunItems([plain.path], batchSize: 10)
        let arguments = uploadArguments(["-", "--stream-name", "nightly"])
        let (kills, code, stderr) = try runWithKills(arguments, stdinPath: plain.path, killAfter: [4, 9, 15, 6])
        XCTAssertGreaterThanOrEqual(kills, 2)
        XCTAssertEqual(code, 1, stderr)
        assertAllArrived(expected: expected, kills: kills, batchSize: 10)
        try assertEveryRejectWrittenDown([plain.path], as: { "-:" + $0.split(separator: ":").last! })

        // Another stream under the same name, after an unfinished run, is an error, not a silent skip.
        let other = stateDir.deletingLastPathComponent().appendingPathComponent("other-\(UUID().uuidString).ndjson")
        try CLI.decompress("fixtures/sample/2026-11-03.ndjson.gz", to: other)
        defer { try? FileManager.default.removeItem(at: other) }
        let checkpoint = stateDir.appendingPathComponent("checkpoint.json")
        var text = try String(contentsOf: checkpoint, encoding: .utf8)
        // Make the saved stream look unfinished, as after a crash (and keep its checksum valid).
        text = try CLI.rewriteCheckpoint(text) { file in
            file.inputs = file.inputs.map {
                var e = $0
                e.complete = false
                e.line = 10
                e.offset = 2000
                return e
            }
        }
        try text.write(to: checkpoint, atomically: true, encoding: .utf8)
        let result = try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token], stdinPath: other.path)
        XCTAssertEqual(result.exitCode, 3)
        XCTAssertTrue(result.stderr.contains("not the stream"), result.stderr)
    }

    /// A nightly cron reusing one --stream-name: after a completed stream, the same stream is
    /// done, more of it is continued, and another stream is refused (exit 3), never skipped unseen.
    func test_completedStreamName_sameStreamDone_longerStreamContinued_otherStreamRefused() throws {
        let folder = stateDir.deletingLastPathComponent()
        let day1 = folder.appendingPathComponent("day1-\(UUID().uuidString).ndjson")
        let day2 = folder.appendingPathComponent("day2-\(UUID().uuidString).ndjson")
        let longer = folder.appendingPathComponent("longer-\(UUID().uuidString).ndjson")
        defer { for url in [day1, day2, longer] { try? FileManager.default.removeItem(at: url) } }
        try CLI.decompress("fixtures/sample/2026-11-01.ndjson.gz", to: day1)
        try CLI.decompress("fixtures/sample/2026-11-02.ndjson.gz", to: day2)
        var both = try Data(contentsOf: day1)
        both.append(try Data(contentsOf: day2))
        try both.write(to: longer)
        let arguments = uploadArguments(["-", "--stream-name", "daily"])
        let environment = ["INTERCOM_ACCESS_TOKEN": Self.token]
        let reportURL = stateDir.appendingPathComponent("report.json")

        let first = try CLI.run(arguments, environment: environment, stdinPath: day1.path)
        XCTAssertEqual(first.exitCode, 1, first.stderr)
        let firstRecords = try XCTUnwrap(try CLI.report(reportURL)["records"] as? Int)
        let accepted = sandbox.stats().itemsAccepted

        let same = try CLI.run(arguments, environment: environment, stdinPath: day1.path)
        XCTAssertEqual(same.exitCode, 1, "done, with the earlier run's rejects: \(same.stderr)")
        XCTAssertEqual(sandbox.stats().itemsAccepted, accepted, "the same stream again sends nothing")
        let sameReport = try CLI.report(reportURL)
        XCTAssertEqual(sameReport["records"] as? Int, firstRecords)
        XCTAssertEqual(sameReport["resumed_records"] as? Int, firstRecords)

        let continued = try CLI.run(arguments, environment: environment, stdinPath: longer.path)
        XCTAssertEqual(continued.exitCode, 1, continued.stderr)
        let day2Items = try CLI.dryRunItems([day2.path], batchSize: 10)
        let now = sandbox.stats().itemsAccepted
        XCTAssertEqual(
            now.users + now.events - accepted.users - accepted.events, day2Items.count,
            "only the new part of the stream is sent")
        let continuedReport = try CLI.report(reportURL)
        XCTAssertTrue(CLI.addsUp(continuedReport))
        XCTAssertEqual(continuedReport["resumed_records"] as? Int, firstRecords)

        let checkpoint = try Data(contentsOf: stateDir.appendingPathComponent("checkpoint.json"))
        let other = try CLI.run(arguments, environment: environment, stdinPath: day2.path)
        XCTAssertEqual(other.exitCode, 3, other.stderr)
        XCTAssertTrue(other.stderr.contains("'daily'"), "the error names the stream: \(other.stderr)")
        XCTAssertTrue(other.stderr.contains("--stream-name"), "and says what to do: \(other.stderr)")
        XCTAssertEqual(sandbox.stats().itemsAccepted, now, "nothing of the other stream was sent")
        XCTAssertEqual(
            try Data(contentsOf: stateDir.appendingPathComponent("checkpoint.json")), checkpoint,
            "the checkpoint of 'daily' is kept as it was")
    }

    func test_folderRunTwice_onlyTheNewFileIsUploaded() throws {
        let folder = stateDir.deletingLastPathComponent().appendingPathComponent("archive-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(
            atPath: "fixtures/sample/2026-11-01.ndjson.gz", toPath: folder.appendingPathComponent("a.ndjson.gz").path)
        let first = try CLI.run(
            uploadArguments([folder.path], batchSize: 100), environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(first.exitCode, 1, first.stderr)
        let afterFirst = sandbox.stats()

        try FileManager.default.copyItem(
            atPath: "fixtures/sample/2026-11-02.ndjson.gz", toPath: folder.appendingPathComponent("b.ndjson.gz").path)
        let second = try CLI.run(
            uploadArguments([folder.path], batchSize: 100), environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(second.exitCode, 1, second.stderr)
        let afterSecond = sandbox.stats()
        let newItems = try CLI.dryRunItems(["fixtures/sample/2026-11-02.ndjson.gz"], batchSize: 100).count
        let delivered =
            (afterSecond.itemsAccepted.users + afterSecond.itemsAccepted.events + afterSecond.duplicates)
            - (afterFirst.itemsAccepted.users + afterFirst.itemsAccepted.events + afterFirst.duplicates)
        XCTAssertEqual(delivered, newItems, "only the new file's items are sent")
        let report = try CLI.report(stateDir.appendingPathComponent("report.json"))
        XCTAssertEqual(report["resumed_records"] as? Int, 1307)
        XCTAssertEqual(report["records"] as? Int, 1307 + 1407)
        XCTAssertTrue(CLI.addsUp(report))
    }

    func test_damagedCheckpoint_fallsBackToThePreviousOne_orStopsWithoutStartingOver() throws {
        let arguments = uploadArguments(["fixtures/sample/2026-11-01.ndjson.gz"], batchSize: 100)
        XCTAssertEqual(try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token]).exitCode, 1)
        XCTAssertEqual(try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token]).exitCode, 1)
        let current = stateDir.appendingPathComponent("checkpoint.json")
        let previous = stateDir.appendingPathComponent("checkpoint.prev.json")
        XCTAssertTrue(FileManager.default.fileExists(atPath: previous.path))

        // Half-written current file: the previous good one is used, with a warning.
        let good = try Data(contentsOf: current)
        try good.prefix(good.count / 2).write(to: current)
        let requestsBefore = sandbox.stats().requests
        let fallback = try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(fallback.exitCode, 1)
        XCTAssertTrue(fallback.stderr.contains("previous good one"), fallback.stderr)
        XCTAssertEqual(sandbox.stats().requests, requestsBefore, "the previous checkpoint says the input is done")

        // Both damaged: stop with a clear message, and never start from zero on our own.
        try Data("checksum 0\n{}".utf8).write(to: current)
        try Data("garbage".utf8).write(to: previous)
        let refused = try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(refused.exitCode, 3)
        XCTAssertTrue(refused.stderr.contains("--restart"), refused.stderr)
        XCTAssertEqual(sandbox.stats().requests, requestsBefore)

        // --restart starts over on purpose.
        let restarted = try CLI.run(arguments + ["--restart"], environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(restarted.exitCode, 1, restarted.stderr)
        XCTAssertGreaterThan(sandbox.stats().requests, requestsBefore)
    }

    func test_secondConcurrentRun_failsAtOnce_andALockOfADeadRunIsTakenOver() throws {
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        var lock: StateLock? = try StateLock(directory: stateDir.path)
        let busy = try CLI.run(
            uploadArguments(["fixtures/sample/2026-11-01.ndjson.gz"]), environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(busy.exitCode, 3)
        XCTAssertTrue(busy.stderr.contains("another intercom-backfill run"), busy.stderr)
        XCTAssertTrue(busy.stderr.contains("pid \(getpid())"), busy.stderr)
        lock = nil
        _ = lock
        // The lock file is still there (as after a kill -9), but nobody holds it.
        XCTAssertTrue(FileManager.default.fileExists(atPath: stateDir.appendingPathComponent("lock").path))
        let next = try CLI.run(
            uploadArguments(["fixtures/sample/2026-11-01.ndjson.gz"]), environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        XCTAssertEqual(next.exitCode, 1, next.stderr)
    }

    func test_followedFile_growthRotationAndCopyTruncate_eachLineUploadedOnce_stopsOnSIGTERM() throws {
        let work = stateDir.deletingLastPathComponent().appendingPathComponent("follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let all = work.appendingPathComponent("all.ndjson")
        try CLI.decompress("fixtures/sample/2026-11-01.ndjson.gz", to: all)
        let lines = try String(contentsOf: all, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(
            String.init)
        func text(_ range: Range<Int>) -> String { lines[range].joined(separator: "\n") + "\n" }
        /// How many items the first `n` lines map to, from a dry run of exactly those lines.
        func items(upTo n: Int) throws -> Int {
            let prefix = work.appendingPathComponent("prefix-\(n).ndjson")
            try text(0..<n).write(to: prefix, atomically: true, encoding: .utf8)
            return try CLI.dryRunItems([prefix.path], batchSize: 10).count
        }
        func delivered() -> Int {
            let stats = sandbox.stats()
            return stats.itemsAccepted.users + stats.itemsAccepted.events + stats.duplicates
        }
        let log = work.appendingPathComponent("app.log")
        try text(0..<100).write(to: log, atomically: false, encoding: .utf8)
        let process = try CLI.launch(uploadArguments([log.path, "--follow"]), environment: ["INTERCOM_ACCESS_TOKEN": Self.token])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let expected100 = try items(upTo: 100)
        CLI.wait(until: { delivered() >= expected100 }, deadline: 30)
        XCTAssertEqual(delivered(), expected100, "records are sent while the file is quiet, not held for a full batch")

        let handle = try FileHandle(forWritingTo: log)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text(100..<200).utf8))
        try handle.close()
        let expected200 = try items(upTo: 200)
        CLI.wait(until: { delivered() >= expected200 }, deadline: 30)
        XCTAssertEqual(delivered(), expected200, "growth is read")

        // Rotation: rename, then a new file at the path.
        try FileManager.default.moveItem(at: log, to: work.appendingPathComponent("app.log.1"))
        try text(200..<300).write(to: log, atomically: false, encoding: .utf8)
        let expected300 = try items(upTo: 300)
        CLI.wait(until: { delivered() >= expected300 }, deadline: 30)
        XCTAssertEqual(delivered(), expected300, "the new file is read from its start, the old one not again")

        // Copy-truncate: the file is emptied in place and written again.
        let truncating = try FileHandle(forWritingTo: log)
        try truncating.truncate(atOffset: 0)
        try truncating.write(contentsOf: Data(text(300..<350).utf8))
        try truncating.close()
        let expected350 = try items(upTo: 350)
        CLI.wait(until: { delivered() >= expected350 }, deadline: 30)
        XCTAssertEqual(delivered(), expected350, "after a truncation the file is read again from its start")

        kill(process.processIdentifier, SIGTERM)
        try CLI.waitForExit(process, deadline: 30)
        XCTAssertEqual(process.terminationStatus, 143)
        let report = try CLI.report(stateDir.appendingPathComponent("report.json"))
        XCTAssertEqual(report["records"] as? Int, 350)
        XCTAssertTrue(CLI.addsUp(report))
        XCTAssertTrue(CLI.checkpointIsValid(stateDir.appendingPathComponent("checkpoint.json")))
    }

    func test_fullStateDisk_stopsCleanly_withTheLastGoodCheckpointKept() throws {
        // A file-size limit makes writes past it fail with EFBIG, as a full disk fails with ENOSPC.
        let arguments = uploadArguments(["fixtures/sample/2026-11-01.ndjson.gz"], batchSize: 100)
        XCTAssertEqual(try CLI.run(arguments, environment: ["INTERCOM_ACCESS_TOKEN": Self.token]).exitCode, 1)
        let checkpoint = stateDir.appendingPathComponent("checkpoint.json")
        let saved = try Data(contentsOf: checkpoint)
        let limited = try CLI.run(
            ["fixtures/sample/2026-11-02.ndjson.gz"] + arguments.dropFirst(),
            environment: ["INTERCOM_ACCESS_TOKEN": Self.token], fileSizeLimitBlocks: 1)
        XCTAssertEqual(limited.exitCode, 3, limited.stderr)
        XCTAssertTrue(limited.stderr.contains("cannot"), limited.stderr)
        XCTAssertEqual(try Data(contentsOf: checkpoint), saved, "the last good checkpoint is kept as it was")
        XCTAssertTrue(CLI.checkpointIsValid(checkpoint))
    }

    /// A disk that fills during the upload: the run stops (exit 3), sends nothing more, and its
    /// summary counts every request the server saw.
    func test_diskFullMidRun_noFurtherRequests_summaryIsTrue() throws {
        let input = "fixtures/sample/2026-11-02.ndjson.gz"
        let expected = try CLI.dryRunItems([input], batchSize: 10)
        let before = sandbox.stats().requests
        // 8 blocks: the first rejects and checkpoint writes fit, a later one fails with EFBIG.
        let limited = try CLI.run(
            uploadArguments([input], batchSize: 10), environment: ["INTERCOM_ACCESS_TOKEN": Self.token],
            fileSizeLimitBlocks: 8, deadline: 60)
        XCTAssertEqual(limited.exitCode, 3, limited.stderr)
        XCTAssertTrue(limited.stderr.contains("cannot"), limited.stderr)
        let seen = sandbox.stats().requests - before
        let summary = try XCTUnwrap(
            limited.stderr.range(of: #"in (\d+) requests"#, options: .regularExpression).map { limited.stderr[$0] },
            "a summary: \(limited.stderr)")
        let reported = try XCTUnwrap(Int(summary.split(separator: " ")[1]))
        // Every request that reached the server is counted; the few in flight when the run
        // stopped are cancelled and may never arrive (at most --concurrency of them).
        XCTAssertGreaterThanOrEqual(reported, seen, "the summary counts every request that reached the server")
        XCTAssertLessThanOrEqual(reported, seen + 4, "and no request left after the failure but those in flight")
        XCTAssertLessThan(seen, expected.count / 10, "the run stopped before the end of its input")
        XCTAssertTrue(
            CLI.checkpointIsValid(stateDir.appendingPathComponent("checkpoint.json"))
                || !FileManager.default.fileExists(atPath: stateDir.appendingPathComponent("checkpoint.json").path))
    }
}

/// An accepted item, compared by content whatever its key order.
struct SandboxKey: Hashable, CustomStringConvertible {
    let dataType: String
    let canonical: String

    init(dataType: String, json: String) {
        self.dataType = dataType
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) ?? [:]
        canonical =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map {
                String(decoding: $0, as: UTF8.self)
            } ?? json
    }

    var description: String { "\(dataType) \(canonical)" }
}
