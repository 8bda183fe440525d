import Foundation
import XCTest

/// The tool's `--dry-run` output against an independent implementation of the contract
/// (`bench/reference_mapper.py --exact-numbers`), byte for byte.
final class DifferentialTests: IntegrationTestCase {
    /// Without python3 and orjson the test is skipped, except in CI (`CI=true`), where a skip would
    /// let a machine that cannot run the comparison pass: there it fails, and `.ci/run` installs orjson.
    private func unavailable(_ reason: String, file: StaticString = #filePath, line: UInt = #line) -> Error {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail(
                "\(reason): the differential tests must run in CI (CI=true); install it with `python3 -m pip install orjson`",
                file: file, line: line)
            return DifferentialUnavailable(reason: reason)
        }
        return XCTSkip(reason)
    }

    private struct DifferentialUnavailable: Error { var reason: String }

    /// Runs the reference mapper on `input`, its output to a file; skips (fails in CI) when python3
    /// with orjson, which the script imports, is not there.
    private func referenceOutput(_ input: String, in dir: URL) async throws -> Data {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import orjson"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        do {
            try probe.run()
            probe.waitUntilExit()
        } catch {
            throw unavailable("python3 is not available")
        }
        if probe.terminationStatus != 0 { throw unavailable("python3 with orjson is not available") }

        let out = dir.appendingPathComponent("reference.ndjson")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Paths.referenceMapper.path, "--exact-numbers", "-o", out.path, input]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let finished = try await waitUntil(deadline: 120) { !process.isRunning }
        if !finished { process.terminate() }
        XCTAssertTrue(finished, "the reference mapper did not finish on \(input)")
        process.waitUntilExit()
        // 1: some records rejected, 3: a damaged input (the tool's exit codes).
        XCTAssertTrue(
            [0, 1, 3].contains(process.terminationStatus), "reference mapper exit \(process.terminationStatus) on \(input)")
        return try Data(contentsOf: out)
    }

    private func assertSameAsReference(_ input: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let dir = try makeTemporaryDirectory()
        let reference = try await referenceOutput(input, in: dir)
        let run = try await dryRun([input], in: dir, file: file, line: line)
        let ours = try Data(contentsOf: dir.appendingPathComponent("out.ndjson"))
        if ours != reference {
            let a = ours.split(separator: 0x0A)
            let b = reference.split(separator: 0x0A)
            let first = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            XCTFail(
                """
                dry-run output differs from bench/reference_mapper.py on \(input): \(a.count) vs \(b.count) lines, first difference in line \(first + 1)
                ours:      \(first < a.count ? String(decoding: a[first].prefix(400), as: UTF8.self) : "<none>")
                reference: \(first < b.count ? String(decoding: b[first].prefix(400), as: UTF8.self) : "<none>")
                """, file: file, line: line)
        }
        XCTAssertEqual(run.requests.reduce(0) { $0 + $1.items.count }, run.report.mapped, file: file, line: line)
    }

    func test_differential_sample_byteIdenticalToReferenceMapper() async throws {
        try await assertSameAsReference(Paths.sample.path)
    }

    func test_differential_eachEdgeFile_byteIdenticalToReferenceMapper() async throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Paths.edge.path)
            .filter { $0 != "README.md" && $0 != "expected.json" && !$0.hasPrefix(".") }.sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            try await assertSameAsReference(Paths.edge.appendingPathComponent(name).path)
        }
    }
}
