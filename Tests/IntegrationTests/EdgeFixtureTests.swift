import Foundation
import XCTest

/// Every file of `fixtures/edge/`, run alone through the binary, against `expected.json`.
final class EdgeFixtureTests: IntegrationTestCase {
    func test_edgeFixtures_countsAndExitCodesMatchExpectedJSON() async throws {
        let expected = try jsonObject(Data(contentsOf: Paths.edge.appendingPathComponent("expected.json")))
        let files = try FileManager.default.contentsOfDirectory(atPath: Paths.edge.path)
            .filter { $0 != "README.md" && $0 != "expected.json" && !$0.hasPrefix(".") }
        XCTAssertEqual(Set(files), Set(expected.keys), "every edge file has its expectation, and only those")
        XCTAssertGreaterThanOrEqual(files.count, 12)

        for name in expected.keys.sorted() {
            let want = try XCTUnwrap(expected[name] as? [String: Any])
            let dir = try makeTemporaryDirectory()
            let path = Paths.edge.appendingPathComponent(name).path
            let run = try await dryRun([path], in: dir)
            let got = run.report
            XCTAssertEqual(got.records, want["records"] as? Int, "\(name): records")
            let mapped = want["mapped"] as? [String: Int] ?? [:]
            XCTAssertEqual(got.mappedUsers, mapped["users"], "\(name): mapped users")
            XCTAssertEqual(got.mappedEvents, mapped["events"], "\(name): mapped events")
            XCTAssertEqual(got.skipped.filter { $0.value > 0 }, want["skipped"] as? [String: Int], "\(name): skipped")
            XCTAssertEqual(got.rejected.filter { $0.value > 0 }, want["rejected"] as? [String: Int], "\(name): rejected")
            XCTAssertEqual(
                run.result.status, (want["exit_code"] as? Int).map(Int32.init), "\(name): exit code\n\(run.result.stderrText)")
            XCTAssertEqual(run.requests.reduce(0) { $0 + $1.items.count }, got.mapped, "\(name): items written = mapped")
            if run.result.status == 3 {
                XCTAssertTrue(
                    run.result.stderrText.contains(path), "\(name): the input error names the file:\n\(run.result.stderrText)")
                let errors = got.raw["input_errors"] as? [String] ?? []
                XCTAssertTrue(
                    errors.contains { $0.contains(path) }, "\(name): the report's input_errors name the file: \(errors)")
            }
        }
    }

    func test_edge_mixedBad_eachRejectedLineHasItsReason() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.edge.appendingPathComponent("mixed_bad.ndjson")
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1)
        let byLine = Dictionary(
            run.rejects.map { ($0["line"] as? Int ?? 0, $0["reason"] as? String ?? "") }, uniquingKeysWith: { a, _ in a })
        let expected: [Int: String] = [
            1: "invalid_json", 2: "not_an_object", 3: "not_an_object", 4: "missing_type", 8: "unknown_type", 9: "unknown_type",
            16: "missing_event_name", 17: "missing_event_name", 18: "missing_event_name",
            19: "invalid_timestamp", 20: "invalid_timestamp", 21: "invalid_timestamp", 22: "invalid_timestamp",
            23: "missing_group_id", 24: "missing_group_id", 25: "missing_group_id",
        ]
        XCTAssertEqual(byLine, expected)
        let lines = inputLines(try Data(contentsOf: input))
        for reject in run.rejects {
            XCTAssertEqual(reject["source"] as? String, input.path)
            let line = reject["line"] as? Int ?? 0
            XCTAssertEqual(reject["record"] as? String, String(decoding: lines[line - 1], as: UTF8.self), "line \(line)")
        }
    }

    func test_edge_invalidUTF8_recordBase64HoldsTheExactBytes() async throws {
        let dir = try makeTemporaryDirectory()
        let input = Paths.edge.appendingPathComponent("invalid_utf8.ndjson")
        let run = try await dryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1)
        XCTAssertEqual(run.rejects.count, 1)
        let reject = try XCTUnwrap(run.rejects.first)
        XCTAssertEqual(reject["line"] as? Int, 3)
        XCTAssertEqual(reject["reason"] as? String, "invalid_json")
        XCTAssertNil(reject["record"], "a line that is not UTF-8 has record_base64 instead of record")
        let base64 = try XCTUnwrap(reject["record_base64"] as? String)
        let bytes = try XCTUnwrap(Data(base64Encoded: base64))
        XCTAssertEqual(bytes, inputLines(try Data(contentsOf: input))[2])
        XCTAssertTrue(bytes.contains(0xE9))
    }
}
