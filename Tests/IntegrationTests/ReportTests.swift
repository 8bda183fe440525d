import Foundation
import XCTest

/// `--report PATH` (contract §7) and the human summary on stderr.
final class ReportTests: IntegrationTestCase {
    func test_report_hasTheContractShape_andTheSampleNumbers() async throws {
        let dir = try makeTemporaryDirectory()
        let run = try await dryRun([Paths.sample.path], in: dir)
        let raw = run.report.raw
        for key in [
            "records", "mapped", "skipped", "rejected", "warnings", "uploaded", "failed", "requests", "retries",
            "elapsed_seconds",
        ] {
            XCTAssertNotNil(raw[key], "the report has \(key): \(raw.keys.sorted())")
        }
        XCTAssertEqual(Set((raw["mapped"] as? [String: Any] ?? [:]).keys), ["users", "events"])
        XCTAssertEqual(Set((raw["uploaded"] as? [String: Any] ?? [:]).keys), ["users", "events"])
        XCTAssertNotNil(raw["records"] as? Int)
        XCTAssertNotNil(raw["failed"] as? Int)
        XCTAssertNotNil(raw["requests"] as? Int)
        XCTAssertNotNil(raw["retries"] as? Int)
        XCTAssertNotNil(raw["elapsed_seconds"] as? Double ?? (raw["elapsed_seconds"] as? Int).map(Double.init))

        // fixtures/README.md, "The sample in numbers".
        XCTAssertEqual(run.report.skipped, ["unsupported_type": 656, "anonymous": 99, "integrations_disabled": 91])
        XCTAssertEqual(
            run.report.rejected,
            [
                "invalid_json": 5, "not_an_object": 7, "missing_type": 6, "unknown_type": 6,
                "missing_event_name": 6, "missing_group_id": 8, "invalid_timestamp": 6,
            ])
        XCTAssertEqual(
            run.report.warnings,
            [
                "metadata_keys_dropped": 343, "string_truncated": 70, "invalid_created_at": 23,
                "invalid_company_created_at": 20, "invalid_last_request_at": 5,
            ])
        XCTAssertEqual(run.report.failed, 0)
        XCTAssertEqual(run.report.retries, 0)

        // The human summary, at the end, on stderr; stdout carries nothing of it.
        let stderr = run.result.stderrText
        XCTAssertTrue(stderr.contains("3971 records"), stderr)
        XCTAssertTrue(stderr.contains("982 users, 2099 events"), stderr)
        XCTAssertTrue(stderr.contains("42 requests"), stderr)
        XCTAssertTrue(stderr.contains("rejected: 44"), stderr)
        XCTAssertTrue(stderr.contains("skipped:  846"), stderr)
        XCTAssertTrue(stderr.contains("rejects.ndjson"), "the summary says where the rejects are: \(stderr)")
        XCTAssertTrue(run.result.stdout.isEmpty, "with --out, stdout stays empty")
    }

    func test_quiet_noSummaryOnStderr_reportStillWritten() async throws {
        let dir = try makeTemporaryDirectory()
        let run = try await dryRun([Paths.edge.appendingPathComponent("crlf_bom.ndjson").path], extra: ["--quiet"], in: dir)
        XCTAssertEqual(run.result.status, 0)
        XCTAssertEqual(run.report.records, 4)
        XCTAssertFalse(run.result.stderrText.contains("records"), "--quiet: no summary: \(run.result.stderrText)")
    }

    func test_dryRunToStdout_requestLinesOnStdout_summaryOnStderr() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.edge.appendingPathComponent("no_final_newline.ndjson").path
        let reportURL = dir.appendingPathComponent("r.json")
        let result = try await run(
            ["--dry-run", "--state-dir", dir.appendingPathComponent("s").path, "--report", reportURL.path, input], in: dir)
        XCTAssertEqual(result.status, 0, result.stderrText)
        let requests = try parseDryRun(result.stdout)
        let report = try Report(url: reportURL)
        assertAddsUp(report)
        XCTAssertEqual(requests.reduce(0) { $0 + $1.items.count }, report.mapped)
        XCTAssertEqual(report.records, 3)
        XCTAssertTrue(result.stderrText.contains("3 records"), result.stderrText)
    }
}
