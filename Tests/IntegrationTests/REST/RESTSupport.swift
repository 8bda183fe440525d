import AsyncHTTPClient
import Foundation
import IntercomSandbox
import NIOCore
import NIOHTTP1
import XCTest

/// Shared pieces of the REST-mode (contract §8) acceptance tests: runs of the binary in 2.x mode
/// against an in-process sandbox, the sandbox's own routes (`/sandbox/seed`, `/sandbox/state`),
/// the rest-mix corpus, and the independent model `Support/expected_state.py`.
enum RESTFixture {
    /// One fixed token for every REST test sandbox: the state store is keyed by endpoint and
    /// token, so a second run against the same sandbox must send the same token to reuse it.
    static let token = "rest-itest-token-7c41e9"

    static let model = Paths.packageRoot.appendingPathComponent("Tests/IntegrationTests/Support/expected_state.py")
    static let generator = Paths.packageRoot.appendingPathComponent("fixtures/generate.py")

    /// The endpoints a rerun that finds nothing to write may still call (contract §8.4).
    static let readOnlyAndEventCalls: Set<String> = ["POST /events", "GET /data_attributes"]
}

/// A finished helper process (python3).
struct ToolResult {
    var status: Int32
    var stdout: Data
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs `python3 -B ARGS` (no `__pycache__` in the source tree), stdout and stderr in files so no
/// pipe can fill up.
func runPython(_ arguments: [String]) throws -> ToolResult {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rest-py-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let out = folder.appendingPathComponent("out")
    let err = folder.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-B"] + arguments
    process.currentDirectoryURL = Paths.packageRoot
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    process.waitUntilExit()
    return ToolResult(
        status: process.terminationStatus, stdout: (try? Data(contentsOf: out)) ?? Data(),
        stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

/// The rest-mix corpus (fixtures/README.md) and the seed workspace it is meant to run over.
struct RestMix {
    var input: URL
    var seed: URL

    /// `generate.py rest-mix --out DIR/rest-mix.ndjson --seed-out DIR/rest-mix-seed.json [--records N]`
    /// (plain NDJSON: the rejects' lines can be read back).
    static func generate(in directory: URL, records: Int? = nil, file: StaticString = #filePath, line: UInt = #line)
        throws -> RestMix
    {
        let mix = RestMix(
            input: directory.appendingPathComponent("rest-mix.ndjson"),
            seed: directory.appendingPathComponent("rest-mix-seed.json"))
        var arguments = [RESTFixture.generator.path, "rest-mix", "--out", mix.input.path, "--seed-out", mix.seed.path]
        if let records { arguments += ["--records", "\(records)"] }
        let result = try runPython(arguments)
        XCTAssertEqual(result.status, 0, "generate.py rest-mix failed: \(result.stderr)", file: file, line: line)
        return mix
    }
}

// MARK: - The sandbox's own routes

/// Sends one request to a sandbox route and returns (status, body).
func sandboxCall(
    _ server: IntercomSandboxServer, _ method: HTTPMethod, _ path: String, body: Data? = nil
) async throws -> (status: Int, body: Data) {
    var request = HTTPClientRequest(url: server.baseURL + path)
    request.method = method
    request.headers.add(name: "Accept", value: "application/json")
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    let buffer = try await response.body.collect(upTo: 256 * 1024 * 1024)
    return (Int(response.status.code), Data(buffer.readableBytesView))
}

/// `POST /sandbox/seed`: preloads an existing workspace (contacts, companies, attributes,
/// archive, merge); it must be accepted.
func seedSandbox(_ server: IntercomSandboxServer, _ body: Data, file: StaticString = #filePath, line: UInt = #line)
    async throws
{
    let answer = try await sandboxCall(server, .POST, "/sandbox/seed", body: body)
    XCTAssertEqual(
        answer.status, 200, "seed refused: \(String(decoding: answer.body, as: UTF8.self))", file: file, line: line)
}

/// `GET /sandbox/state`: the whole workspace, raw (ids, merged contacts, events' contact ids).
func fetchSandboxState(_ server: IntercomSandboxServer, file: StaticString = #filePath, line: UInt = #line) async throws
    -> Data
{
    let answer = try await sandboxCall(server, .GET, "/sandbox/state")
    XCTAssertEqual(answer.status, 200, file: file, line: line)
    return answer.body
}

// MARK: - The report in REST mode

extension Report {
    var api: String? { raw["api"] as? String }
    /// Endpoint -> count, e.g. `"PUT /contacts/{id}": 3`.
    var calls: [String: Int] { raw["calls"] as? [String: Int] ?? [:] }
    var unchanged: Int { raw["unchanged"] as? Int ?? -1 }
    /// Events not sent because the same one was acknowledged before (a repeat in the input).
    var eventsAlreadySent: Int { raw["events_already_sent"] as? Int ?? -1 }
    var merged: Int { raw["merged"] as? Int ?? -1 }
    var failedReasons: [String: Int] { raw["failed_reasons"] as? [String: Int] ?? [:] }
}

/// The bookkeeping every REST run must show (contract §7 and §8.3a): records = mapped +
/// skipped + rejected; uploaded + failed = mapped (a failed item stays mapped); failed is the sum
/// of its reasons; the rejects file holds one line per mapping reject and per failed item.
func assertRESTAddsUp(
    _ report: Report, rejects: [[String: Any]]? = nil, file: StaticString = #filePath, line: UInt = #line
) {
    assertAddsUp(report, file: file, line: line)
    XCTAssertGreaterThanOrEqual(report.failed, 0, "no failed in \(report.raw)", file: file, line: line)
    XCTAssertEqual(
        report.uploadedUsers + report.uploadedEvents + report.failed, report.mapped,
        "uploaded users + events + failed != mapped in \(report.raw)", file: file, line: line)
    XCTAssertEqual(
        report.failedReasons.values.reduce(0, +), report.failed, "failed != sum of failed_reasons in \(report.raw)",
        file: file, line: line)
    if let rejects {
        XCTAssertEqual(
            rejects.count, report.rejectedTotal + report.failed, "rejects file lines != rejected + failed", file: file,
            line: line)
        var byReason: [String: Int] = [:]
        for reject in rejects { byReason[reject["reason"] as? String ?? "?", default: 0] += 1 }
        for (reason, count) in report.failedReasons {
            XCTAssertEqual(byReason[reason] ?? 0, count, "rejects with reason \(reason)", file: file, line: line)
        }
    }
}

// MARK: - Runs

/// An upload run's outputs, read back.
struct UploadOutcome {
    var result: CLIResult
    var report: Report
    /// The lines this run wrote to `<state-dir>/rejects.ndjson`.
    var rejects: [[String: Any]]
    var stateDir: URL
}

extension IntegrationTestCase {
    /// `intercom-backfill run --endpoint SANDBOX --state-dir STATE --report REPORT --no-progress
    /// EXTRA INPUTS` with the fixed token; the report must exist and add up.
    func backfillUpload(
        _ inputs: [String], to server: IntercomSandboxServer, stateDir: URL, extra: [String], in directory: URL,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> UploadOutcome {
        let reportURL = directory.appendingPathComponent("report-\(UUID().uuidString).json")
        let rejectsURL = stateDir.appendingPathComponent("rejects.ndjson")
        let earlierRejects = try ndjsonObjects(rejectsURL, file: file, line: line).map(canonicalJSON)
        let result = try await run(
            [
                "run", "--endpoint", server.baseURL, "--state-dir", stateDir.path, "--report", reportURL.path,
                "--no-progress", "--job-wait", "60",
            ] + extra + inputs,
            environment: ["INTERCOM_ACCESS_TOKEN": RESTFixture.token], in: directory, file: file, line: line)
        XCTAssertTrue([0, 1].contains(result.status), "run ended \(result.status): \(result.stderrText)", file: file, line: line)
        let report = try Report(url: reportURL, file: file, line: line)
        // A later run with the same state folder appends to the rejects file (`--restart` starts
        // it over): this run's rejects are the lines after the earlier ones.
        let allRejects = try ndjsonObjects(rejectsURL, file: file, line: line)
        let appended =
            allRejects.count >= earlierRejects.count
            && zip(allRejects, earlierRejects).allSatisfy { canonicalJSON($0) == $1 }
        let rejects = appended ? Array(allRejects.dropFirst(earlierRejects.count)) : allRejects
        assertRESTAddsUp(report, rejects: rejects, file: file, line: line)
        return UploadOutcome(result: result, report: report, rejects: rejects, stateDir: stateDir)
    }

    /// A REST-mode upload (`--api-version 2.14` unless EXTRA names another).
    func restUpload(
        _ inputs: [String], to server: IntercomSandboxServer, stateDir: URL, batchSize: Int = 100, extra: [String] = [],
        in directory: URL, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> UploadOutcome {
        let version = extra.contains("--api-version") ? [] : ["--api-version", "2.14"]
        let outcome = try await backfillUpload(
            inputs, to: server, stateDir: stateDir, extra: version + ["--batch-size", "\(batchSize)"] + extra,
            in: directory, file: file, line: line)
        return outcome
    }

    /// The bulk dry run the model reads: `run --dry-run --api-version 1.4 --batch-size N --out
    /// DIR/dry-N.ndjson`. The batch size must be the REST run's: the REST run registers its items
    /// in that batch order.
    func bulkDryRunItems(
        _ inputs: [String], batchSize: Int = 100, in directory: URL, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> (items: URL, report: Report) {
        let out = directory.appendingPathComponent("dry-\(batchSize)-\(UUID().uuidString).ndjson")
        let state = directory.appendingPathComponent("dry-state-\(UUID().uuidString)")
        let reportURL = directory.appendingPathComponent("dry-report-\(UUID().uuidString).json")
        let result = try await run(
            [
                "run", "--dry-run", "--api-version", "1.4", "--batch-size", "\(batchSize)", "--out", out.path,
                "--state-dir", state.path, "--report", reportURL.path, "--no-progress",
            ] + inputs, in: directory, file: file, line: line)
        XCTAssertTrue(
            [0, 1].contains(result.status), "dry run ended \(result.status): \(result.stderrText)", file: file, line: line)
        let report = try Report(url: reportURL, file: file, line: line)
        assertAddsUp(report, file: file, line: line)
        return (out, report)
    }
}

// MARK: - The model

/// `expected_state.py expect --items DRY [--seed SEED] --api API`, written to a file (normalized
/// form).
func modelState(
    items: URL, seed: URL? = nil, api: String, in directory: URL, file: StaticString = #filePath, line: UInt = #line
) throws -> URL {
    var arguments = [RESTFixture.model.path, "expect", "--items", items.path, "--api", api]
    if let seed { arguments += ["--seed", seed.path] }
    let result = try runPython(arguments)
    XCTAssertEqual(result.status, 0, "expected_state.py expect failed: \(result.stderr)", file: file, line: line)
    let url = directory.appendingPathComponent("expected-\(api)-\(UUID().uuidString).json")
    try result.stdout.write(to: url)
    return url
}

/// Writes a sandbox state answer to a file (for `expected_state.py diff`).
func writeState(_ state: Data, named name: String, in directory: URL) throws -> URL {
    let url = directory.appendingPathComponent("\(name)-\(UUID().uuidString).json")
    try state.write(to: url)
    return url
}

/// `expected_state.py diff EXPECTED ACTUAL` must say they are equal; its lines of differences
/// are the failure message otherwise.
func assertSameState(
    expected: URL, actual: URL, _ message: String, file: StaticString = #filePath, line: UInt = #line
) throws {
    let result = try runPython([RESTFixture.model.path, "diff", expected.path, actual.path])
    XCTAssertEqual(
        result.status, 0, "\(message): the state differs from the model:\n\(result.stdoutText)\(result.stderr)", file: file,
        line: line)
}

/// `expected_state.py normalize STATE`: the normalized form (no ids, sorted), as JSON text.
func normalizedState(_ state: URL, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let result = try runPython([RESTFixture.model.path, "normalize", state.path])
    XCTAssertEqual(result.status, 0, "expected_state.py normalize failed: \(result.stderr)", file: file, line: line)
    return try jsonObject(result.stdout, file: file, line: line)
}

// MARK: - What both APIs express

/// The part of a raw `GET /sandbox/state` that a bulk run and a REST run of the same items must
/// agree on (the rules where they differ are listed at the top of expected_state.py):
/// - contacts that are neither archived nor merged away (rule 4, 9), keyed by (external_id,
///   email), with their standard fields and memberships (sorted company_ids); custom attributes
///   are left out (rules 1, 2: bulk creates any name and stores any type, REST refuses some);
/// - companies' standard fields; `user_count` and custom attributes are left out (archived
///   contacts' memberships and rules 1, 2);
/// - events that resolved to one of those contacts, by (name, second, who, metadata); events
///   stored without a contact exist in bulk mode only (rule 5);
/// - contacts whose external id is in `excluding` (a REST item that failed with `conflict`, rule
///   6, which bulk applies as a second contact) are left out with their events.
struct SharedState: Equatable {
    var contacts: [String: String]
    var companies: [String: String]
    var events: Set<String>

    init(raw data: Data, excluding: Set<String> = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let state = try jsonObject(data, file: file, line: line)
        let contactList = state["contacts"] as? [[String: Any]] ?? []
        var included: [String: String] = [:]  // contact id -> who
        var contacts: [String: String] = [:]
        for contact in contactList {
            guard contact["archived"] as? Bool != true, contact["merged_into"] is NSNull || contact["merged_into"] == nil
            else { continue }
            let externalID = contact["external_id"] as? String
            if let externalID, excluding.contains(externalID) { continue }
            let email = contact["email"] as? String
            let key = "\(externalID ?? "")|\(email ?? "")"
            var fields: [String: Any] = [:]
            for name in [
                "role", "name", "phone", "signed_up_at", "last_seen_at", "unsubscribed_from_emails", "companies",
            ] {
                fields[name] = contact[name] ?? NSNull()
            }
            contacts[key] = canonicalJSON(fields)
            if let id = contact["id"] as? String { included[id] = externalID ?? email ?? "" }
        }
        var companies: [String: String] = [:]
        for company in state["companies"] as? [[String: Any]] ?? [] {
            var fields: [String: Any] = [:]
            for name in ["name", "plan", "monthly_spend", "remote_created_at", "size", "website", "industry"] {
                fields[name] = company[name] ?? NSNull()
            }
            companies[company["company_id"] as? String ?? "?"] = canonicalJSON(fields)
        }
        var events = Set<String>()
        for event in state["events"] as? [[String: Any]] ?? [] {
            guard let id = event["contact_id"] as? String, let who = included[id] else { continue }
            events.insert(
                canonicalJSON([
                    "event_name": event["event_name"] ?? NSNull(), "created_at": event["created_at"] ?? NSNull(),
                    "who": who, "metadata": event["metadata"] ?? NSNull(),
                ]))
        }
        self.contacts = contacts
        self.companies = companies
        self.events = events
    }

    /// Up to `limit` lines saying where two shared states differ.
    func differences(from other: SharedState, limit: Int = 12) -> [String] {
        var lines: [String] = []
        for key in Set(contacts.keys).union(other.contacts.keys).sorted() where contacts[key] != other.contacts[key] {
            lines.append("contact \(key): \(contacts[key] ?? "absent") vs \(other.contacts[key] ?? "absent")")
        }
        for key in Set(companies.keys).union(other.companies.keys).sorted() where companies[key] != other.companies[key] {
            lines.append("company \(key): \(companies[key] ?? "absent") vs \(other.companies[key] ?? "absent")")
        }
        for event in events.subtracting(other.events).sorted() { lines.append("event only in the first: \(event)") }
        for event in other.events.subtracting(events).sorted() { lines.append("event only in the second: \(event)") }
        return Array(lines.prefix(limit)) + (lines.count > limit ? ["... \(lines.count) differences in all"] : [])
    }
}

/// The external ids of the REST rejects with this reason (read from the reject's `record`).
func rejectedUserIDs(_ rejects: [[String: Any]], reason: String) -> Set<String> {
    Set(
        rejects.filter { $0["reason"] as? String == reason }.compactMap { reject -> String? in
            guard let text = reject["record"] as? String,
                let record = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            else { return nil }
            return record["user_id"] as? String
        })
}

/// The JSON object of a checkpoint file (its first line may be a `checksum ...` line).
func checkpointObject(_ url: URL, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let text = try String(contentsOf: url, encoding: .utf8)
    let body = text.hasPrefix("checksum") ? String(text.drop { $0 != "\n" }) : text
    return try jsonObject(Data(body.utf8), file: file, line: line)
}
