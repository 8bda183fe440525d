import Foundation
import IntercomBackfill
import XCTest

/// Launches the built binary for the crash and resume tests: processes that are killed
/// mid-run, with outputs in files so a kill never blocks on a pipe.
enum CLI {
    static var root: URL { Paths.packageRoot }
    static var binary: URL { Paths.binary ?? Paths.packageRoot.appendingPathComponent(".build/debug/intercom-backfill") }

    struct Result {
        var exitCode: Int32
        var stdout: String
        var stderr: String
    }

    /// Starts the binary; stdout and stderr go to files so a killed process never blocks on a pipe.
    static func launch(
        _ arguments: [String], environment: [String: String] = [:], stdinPath: String? = nil,
        fileSizeLimitBlocks: Int? = nil, output: URL? = nil
    ) throws -> Process {
        let process = Process()
        if let blocks = fileSizeLimitBlocks {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -f \(blocks) && exec \"$0\" \"$@\"", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        process.currentDirectoryURL = root
        var env = ProcessInfo.processInfo.environment
        for key in ["INTERCOM_ACCESS_TOKEN", "INTERCOM_APP_ID", "INTERCOM_API_KEY", "INTERCOM_ENDPOINT"] { env[key] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardInput = stdinPath.flatMap { FileHandle(forReadingAtPath: $0) } ?? FileHandle.nullDevice
        let out = output ?? FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: out.path + ".err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out.path + ".out")
        process.standardError = FileHandle(forWritingAtPath: out.path + ".err")
        outputs.withLock { $0[ObjectIdentifier(process)] = out }
        try process.run()
        return process
    }

    private static let outputs = LockedBox<[ObjectIdentifier: URL]>([:])

    /// Runs to the end (killed and failed after `deadline` seconds: a hang is a failure).
    static func run(
        _ arguments: [String], environment: [String: String] = [:], stdinPath: String? = nil,
        fileSizeLimitBlocks: Int? = nil, deadline: Double = 120
    ) throws -> Result {
        let process = try launch(
            arguments, environment: environment, stdinPath: stdinPath, fileSizeLimitBlocks: fileSizeLimitBlocks)
        try waitForExit(process, deadline: deadline)
        let out = outputs.withLock { $0.removeValue(forKey: ObjectIdentifier(process)) }!
        defer {
            try? FileManager.default.removeItem(atPath: out.path + ".out")
            try? FileManager.default.removeItem(atPath: out.path + ".err")
        }
        return Result(
            exitCode: process.terminationStatus,
            stdout: (try? String(contentsOfFile: out.path + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: out.path + ".err", encoding: .utf8)) ?? "")
    }

    struct Hang: Error {}

    static func waitForExit(_ process: Process, deadline: Double) throws {
        wait(until: { !process.isRunning }, deadline: deadline)
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTFail("the process did not end within \(deadline) s")
            throw Hang()
        }
        process.waitUntilExit()
    }

    /// Polls a condition (not a fixed sleep): returns as soon as it holds, or at the deadline.
    static func wait(until condition: () -> Bool, deadline: Double) {
        let end = Date().addingTimeInterval(deadline)
        while !condition(), Date() < end { usleep(1000) }
    }

    /// The items the dry run of `inputs` would send, in order.
    static func dryRunItems(_ inputs: [String], batchSize: Int) throws -> [SandboxKey] {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("dry-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: state) }
        let result = try run(inputs + ["--dry-run", "--batch-size", "\(batchSize)", "--state-dir", state.path, "--quiet"])
        XCTAssertTrue(result.exitCode == 0 || result.exitCode == 1, result.stderr)
        var items: [SandboxKey] = []
        for line in result.stdout.split(separator: "\n") {
            let request = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let body = request["body"] as! [String: Any]
            for item in body["items"] as! [[String: Any]] {
                let data = try JSONSerialization.data(withJSONObject: item["data"]!, options: [.sortedKeys])
                items.append(SandboxKey(dataType: item["data_type"] as! String, json: String(decoding: data, as: UTF8.self)))
            }
        }
        return items
    }

    /// The records the dry run of `inputs` rejects, as "source:line" (the mapping's rejects).
    static func dryRunRejects(_ inputs: [String]) throws -> [String] {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("dry-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: state) }
        let result = try run(inputs + ["--dry-run", "--out", "/dev/null", "--state-dir", state.path, "--quiet"])
        XCTAssertTrue(result.exitCode == 0 || result.exitCode == 1, result.stderr)
        return try rejectedLines(state.appendingPathComponent("rejects.ndjson"))
    }

    /// The "source:line" of every line of a rejects file.
    static func rejectedLines(_ url: URL) throws -> [String] {
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return "\(object["source"] as? String ?? "?"):\(object["line"] as? Int ?? -1)"
        }
    }

    static func report(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    /// The report's promise: records = mapped + skipped + rejected.
    static func addsUp(_ report: [String: Any]) -> Bool {
        func sum(_ key: String) -> Int { ((report[key] as? [String: Int]) ?? [:]).values.reduce(0, +) }
        let mapped = report["mapped"] as? [String: Int] ?? [:]
        return report["records"] as? Int == (mapped["users"] ?? 0) + (mapped["events"] ?? 0) + sum("skipped") + sum("rejected")
    }

    static func decompress(_ gzipPath: String, to target: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "gzip -dc \"$0\" > \"$1\"", root.appendingPathComponent(gzipPath).path, target.path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }

    /// Loads a checkpoint text, changes it, and returns it re-encoded with a valid checksum.
    static func rewriteCheckpoint(_ text: String, _ change: (inout CheckpointFile) -> Void) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try text.write(to: folder.appendingPathComponent("checkpoint.json"), atomically: true, encoding: .utf8)
        let store = CheckpointStore(directory: folder.path)
        var file = try XCTUnwrap(try store.load { _ in })
        change(&file)
        try store.save(file)
        return try String(contentsOf: folder.appendingPathComponent("checkpoint.json"), encoding: .utf8)
    }

    static func checkpointIsValid(_ url: URL) -> Bool {
        var warned = false
        let file = try? CheckpointStore(directory: url.deletingLastPathComponent().path).load { _ in warned = true }
        return file != nil && !warned
    }
}

/// A value behind a lock, for test bookkeeping shared across threads.
final class LockedBox<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
