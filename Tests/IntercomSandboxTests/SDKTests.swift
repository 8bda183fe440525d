import Foundation
import IntercomSandbox
import XCTest

/// Intercom's own Python SDKs against the sandbox over loopback: the surest sign that it answers
/// like Intercom is that Intercom's clients are satisfied with it.
///
/// Each SDK lives in its own virtualenv (the two versions cannot share one), which `.ci/run`
/// creates: `.build/sdk-venv-5` (python-intercom 5.0.1) and `.build/sdk-venv-3` (3.1.0), or the
/// folders in `INTERCOM_SDK_VENV_5` / `INTERCOM_SDK_VENV_3`. Without them the tests skip, except
/// under `CI=true` or when a folder was named explicitly, where a missing SDK is a failure.
final class SDKTests: XCTestCase {
    private static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    /// The venv's python with `import intercom` working, else a skip (or a failure when required).
    private func python(venvVariable: String, defaultFolder: String, expectedVersion: String) throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        let named = environment[venvVariable].flatMap { $0.isEmpty ? nil : $0 }
        let required = named != nil || environment["CI"] == "true"
        let folder = named.map { URL(fileURLWithPath: $0) } ?? Self.packageRoot.appendingPathComponent(defaultFolder)
        let python = folder.appendingPathComponent("bin/python")
        var problem: String?
        if !FileManager.default.isExecutableFile(atPath: python.path) {
            problem = "no virtualenv at \(folder.path)"
        } else {
            let probe = try Self.runSync(
                python, ["-c", "import importlib.metadata as m; print(m.version('python-intercom'))"], environment: [:])
            let version = probe.output.trimmingCharacters(in: .whitespacesAndNewlines)
            if probe.status != 0 {
                problem = "python-intercom is not installed there: \(probe.errors)"
            } else if version != expectedVersion {
                problem = "python-intercom \(version) is installed there, not \(expectedVersion)"
            }
        }
        if let problem {
            let message =
                "\(problem); run .ci/run (or: python3 -m venv \(folder.path) && \(folder.path)/bin/pip install python-intercom==\(expectedVersion))"
            if required {
                XCTFail(message)
                throw XCTSkip("failed: " + message)
            }
            throw XCTSkip(message)
        }
        return python
    }

    /// Runs a process to its end; its output is small, so pipes are read after it exits.
    private static func runSync(_ executable: URL, _ arguments: [String], environment extra: [String: String]) throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extra) { $1 }
        // Loopback only: no proxy may intercept the SDK's calls.
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] {
            environment[name] = nil
        }
        environment["NO_PROXY"] = "127.0.0.1,localhost"
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // A safety net, not a timing assertion: a client that never stops (a pager that does
        // not see its last page) fails the test instead of hanging the suite.
        DispatchQueue.global().asyncAfter(deadline: .now() + 300) { [process] in
            if process.isRunning { process.terminate() }
        }
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
            errors: String(decoding: errData, as: UTF8.self))
    }

    /// Runs the script off the cooperative pool (it blocks until the script ends).
    private func runScript(_ python: URL, _ script: String, server: IntercomSandboxServer) async throws -> Run {
        let path = Self.packageRoot.appendingPathComponent("Tests/IntercomSandboxTests/SDK/\(script)").path
        let environment = ["SANDBOX_URL": server.baseURL, "SANDBOX_TOKEN": Harness.token, "PYTHONDONTWRITEBYTECODE": "1"]
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: try Self.runSync(python, [path], environment: environment))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    func test_pythonIntercom5_createsUpdatesSearchesAContact_attributeEventCompany_and409() async throws {
        let python = try python(venvVariable: "INTERCOM_SDK_VENV_5", defaultFolder: ".build/sdk-venv-5", expectedVersion: "5.0.1")
        try await withSandbox { sandbox in
            let run = try await runScript(python, "sdk5_rest.py", server: sandbox.server)
            XCTAssertEqual(run.status, 0, "stdout: \(run.output)\nstderr: \(run.errors)")
            XCTAssertTrue(run.output.contains("sdk5 ok"), run.output)

            let contacts = try await sandbox.stateContacts()
            XCTAssertEqual(contacts.count, 1)
            XCTAssertEqual(contacts.first?["name"] as? String, "Ada Lovelace")
            XCTAssertEqual((contacts.first?["companies"] as? [Any])?.count, 0, "joined, then left")
            let storedEvents = try await sandbox.workspaceState()["events"] as? [[String: Any]]
            let events = try XCTUnwrap(storedEvents)
            XCTAssertEqual(events.map { $0["event_name"] as? String }, ["sdk-tested"])
        }
    }

    func test_pythonIntercom3_bulkSubmitAppendJobLookupAndErrorFeed_withBasicTokenAuth() async throws {
        let python = try python(venvVariable: "INTERCOM_SDK_VENV_3", defaultFolder: ".build/sdk-venv-3", expectedVersion: "3.1.0")
        // The legacy SDK sends no Intercom-Version: the workspace's own version must be 1.x.
        try await withSandbox({ $0.defaultVersion = "1.4" }) { sandbox in
            let run = try await runScript(python, "sdk3_bulk.py", server: sandbox.server)
            XCTAssertEqual(run.status, 0, "stdout: \(run.output)\nstderr: \(run.errors)")
            XCTAssertTrue(run.output.contains("sdk3 ok"), run.output)

            let stats = sandbox.server.stats()
            XCTAssertEqual(stats.unauthorized, 0, "Basic token: auth is accepted")
            XCTAssertEqual(stats.jobs, 1)
            XCTAssertEqual(stats.itemsAccepted.users, 2)
            XCTAssertEqual(stats.itemsFailed, 1)
            let external = try await sandbox.stateContacts().compactMap { $0["external_id"] as? String }
            XCTAssertEqual(external, ["legacy-1", "legacy-3"], "the bulk users are contacts")
        }
    }
}
