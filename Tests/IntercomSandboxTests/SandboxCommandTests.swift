import AsyncHTTPClient
import Foundation
import NIOCore
import XCTest

/// The `sandbox` subcommand as a user runs it: the built binary, started with Process.
final class SandboxCommandTests: XCTestCase {
    /// `<build folder>/intercom-backfill`, beside the test bundle (`swift test` builds it too).
    private static var binary: URL? {
        var folders: [URL] = []
        if let first = ProcessInfo.processInfo.arguments.first {
            folders.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        folders.append(Bundle.main.bundleURL)
        folders.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            folders.append(bundle.bundleURL.deletingLastPathComponent())
        }
        return
            folders
            .map { $0.appendingPathComponent("intercom-backfill") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    private struct Launched {
        var process: Process
        var stdout: FileHandle
        var stderr: Pipe
        var exitStatus: AsyncStream<Int32>
    }

    private func launch(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Launched {
        let binary = try XCTUnwrap(
            Self.binary, "intercom-backfill is not built beside the tests; run `swift build` (or `swift test`, which builds it)")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["INTERCOM_SANDBOX_TOKEN", "INTERCOM_APP_ID", "INTERCOM_API_KEY"] { environment[name] = nil }
        environment.merge(extra) { $1 }
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        let (exitStatus, continuation) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { process in
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        try process.run()
        return Launched(process: process, stdout: stdout.fileHandleForReading, stderr: stderr, exitStatus: exitStatus)
    }

    /// Reads up to the first newline (or the end of the stream).
    private func firstLine(_ handle: FileHandle) -> String {
        var bytes: [UInt8] = []
        while true {
            let chunk = handle.readData(ofLength: 1)
            guard let byte = chunk.first else { break }
            if byte == UInt8(ascii: "\n") { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func test_sandboxCommand_announcesItsURLFirst_servesWithTheEnvToken_andExits0OnSIGTERM() async throws {
        let launched = try launch(
            ["sandbox", "--port", "0", "--rate-limit", "50"], environment: ["INTERCOM_SANDBOX_TOKEN": "cli-secret-token"])
        let line = firstLine(launched.stdout)
        XCTAssertTrue(line.hasPrefix("listening on http://127.0.0.1:"), "first stdout line: \(line)")
        let baseURL = String(line.dropFirst("listening on ".count))
        let port = Int(baseURL.split(separator: ":").last ?? "")
        XCTAssertNotNil(port)
        XCTAssertNotEqual(port, 0)

        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            for (token, expected) in [("cli-secret-token", 202), ("other", 401)] {
                var request = HTTPClientRequest(url: baseURL + "/bulk/users")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: "Accept", value: "application/json")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Intercom-Version", value: "1.4")
                request.body = .bytes(ByteBuffer(string: bulkBody("user", [user("cli")])))
                let response = try await client.execute(request, timeout: .seconds(30))
                _ = try await response.body.collect(upTo: 1 << 20)
                XCTAssertEqual(Int(response.status.code), expected, "token \(token)")
                // Budget headers go with authenticated answers only.
                XCTAssertEqual(response.headers.first(name: "X-RateLimit-Limit"), expected == 202 ? "50" : nil)
            }
        } catch {
            XCTFail("request to the sandbox failed: \(error)")
        }
        try await client.shutdown()

        launched.process.terminate()  // SIGTERM
        var status: Int32?
        for await code in launched.exitStatus { status = code }
        XCTAssertEqual(launched.process.terminationReason, .exit, "a signal stops it cleanly rather than killing it")
        XCTAssertEqual(status, 0)
        let logs = String(decoding: launched.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertFalse(logs.contains("cli-secret-token"), "tokens are never logged: \(logs)")
    }

    func test_sandboxCommand_badOption_exitsNonZeroWithTheReason() async throws {
        let launched = try launch(["sandbox", "--fail-rate", "1.5"])
        var status: Int32?
        for await code in launched.exitStatus { status = code }
        XCTAssertNotEqual(status, 0)
        let message = String(decoding: launched.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(message.contains("fail rate 1.5 must be between 0 and 1"), message)
        XCTAssertEqual(firstLine(launched.stdout), "", "nothing announced")
    }
}
