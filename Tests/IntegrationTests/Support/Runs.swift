import Foundation
import XCTest

/// One line of `--dry-run` output: `{"method":"POST","path":...,"body":{"items":[...]}}`.
struct DryRunRequest {
    var method: String
    var path: String
    /// The items as sent: `{"method":"post","data_type":...,"data":{...}}`.
    var items: [[String: Any]]
    /// Each item's `data`, canonical JSON.
    var data: [String] { items.map { canonicalJSON($0["data"] ?? NSNull()) } }
    var isUsers: Bool { path == "/bulk/users" }
}

func parseDryRun(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> [DryRunRequest] {
    try data.split(separator: 0x0A).map { text in
        let object = try jsonObject(Data(text), file: file, line: line)
        let body = try XCTUnwrap(object["body"] as? [String: Any], "no body in \(object)", file: file, line: line)
        let items = try XCTUnwrap(body["items"] as? [[String: Any]], "no items in \(body)", file: file, line: line)
        return DryRunRequest(method: object["method"] as? String ?? "", path: object["path"] as? String ?? "", items: items)
    }
}

/// The `--report` JSON (contract §7).
struct Report {
    var raw: [String: Any]
    var records: Int { raw["records"] as? Int ?? -1 }
    var mappedUsers: Int { (raw["mapped"] as? [String: Any])?["users"] as? Int ?? -1 }
    var mappedEvents: Int { (raw["mapped"] as? [String: Any])?["events"] as? Int ?? -1 }
    var mapped: Int { mappedUsers + mappedEvents }
    var skipped: [String: Int] { raw["skipped"] as? [String: Int] ?? [:] }
    var rejected: [String: Int] { raw["rejected"] as? [String: Int] ?? [:] }
    var warnings: [String: Int] { raw["warnings"] as? [String: Int] ?? [:] }
    var uploadedUsers: Int { (raw["uploaded"] as? [String: Any])?["users"] as? Int ?? -1 }
    var uploadedEvents: Int { (raw["uploaded"] as? [String: Any])?["events"] as? Int ?? -1 }
    var failed: Int { raw["failed"] as? Int ?? -1 }
    var requests: Int { raw["requests"] as? Int ?? -1 }
    var retries: Int { raw["retries"] as? Int ?? -1 }
    var skippedTotal: Int { skipped.values.reduce(0, +) }
    var rejectedTotal: Int { rejected.values.reduce(0, +) }

    init(raw: [String: Any]) { self.raw = raw }

    init(url: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try Data(contentsOf: url)
        raw = try jsonObject(data, file: file, line: line)
    }
}

/// The report invariant of contract §7, checked in every end-to-end test.
func assertAddsUp(_ report: Report, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertGreaterThanOrEqual(report.records, 0, "no records in \(report.raw)", file: file, line: line)
    XCTAssertGreaterThanOrEqual(report.mappedUsers, 0, "no mapped.users in \(report.raw)", file: file, line: line)
    XCTAssertGreaterThanOrEqual(report.mappedEvents, 0, "no mapped.events in \(report.raw)", file: file, line: line)
    XCTAssertEqual(
        report.records, report.mappedUsers + report.mappedEvents + report.skippedTotal + report.rejectedTotal,
        "records != mapped + skipped + rejected in \(report.raw)", file: file, line: line)
}

/// A dry run's outputs, read back.
struct DryRun {
    var result: CLIResult
    var requests: [DryRunRequest]
    var report: Report
    var rejects: [[String: Any]]
}

extension IntegrationTestCase {
    /// `intercom-backfill --dry-run --out <dir>/out.ndjson --state-dir <dir>/state --report <dir>/report.json INPUTS`.
    func dryRun(
        _ inputs: [String], extra: [String] = [], stdin: StandardInput = .null, in directory: URL,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> DryRun {
        let out = directory.appendingPathComponent("out.ndjson")
        let state = directory.appendingPathComponent("state")
        let reportURL = directory.appendingPathComponent("report.json")
        for url in [out, reportURL, state.appendingPathComponent("rejects.ndjson")] {
            try? FileManager.default.removeItem(at: url)
        }
        let result = try await run(
            ["--dry-run", "--out", out.path, "--state-dir", state.path, "--report", reportURL.path] + extra + inputs,
            stdin: stdin, in: directory, file: file, line: line)
        let report = try Report(url: reportURL, file: file, line: line)
        assertAddsUp(report, file: file, line: line)
        let requests = try parseDryRun((try? Data(contentsOf: out)) ?? Data(), file: file, line: line)
        let rejects = try ndjsonObjects(state.appendingPathComponent("rejects.ndjson"), file: file, line: line)
        return DryRun(result: result, requests: requests, report: report, rejects: rejects)
    }
}
