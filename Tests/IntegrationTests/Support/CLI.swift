import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where things are: the package root (from this file's path), the fixtures, the built binary.
enum Paths {
    /// `<root>/Tests/IntegrationTests/Support/CLI.swift` -> `<root>`.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let sample = packageRoot.appendingPathComponent("fixtures/sample")
    static let edge = packageRoot.appendingPathComponent("fixtures/edge")
    static let referenceMapper = packageRoot.appendingPathComponent("bench/reference_mapper.py")

    static var sampleFiles: [URL] {
        ["2026-11-01.ndjson.gz", "2026-11-02.ndjson.gz", "2026-11-03.ndjson.gz"].map { sample.appendingPathComponent($0) }
    }

    /// `intercom-backfill` in the build folder that holds this test bundle (`swift build
    /// --build-tests` and `swift test` build it), else `<root>/.build/debug/`.
    static let binary: URL? = {
        var folders: [URL] = []
        if let first = ProcessInfo.processInfo.arguments.first {
            folders.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            folders.append(bundle.bundleURL.deletingLastPathComponent())
        }
        folders.append(Bundle.main.bundleURL)
        folders.append(Bundle.main.bundleURL.deletingLastPathComponent())
        folders.append(packageRoot.appendingPathComponent(".build/debug"))
        return
            folders
            .map { $0.appendingPathComponent("intercom-backfill") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()
}

/// What a child process gets on its standard input.
enum StandardInput {
    /// /dev/null: an empty, non-terminal stdin.
    case null
    /// A file opened for reading.
    case file(URL)
    /// Bytes written into a pipe, which is then closed.
    case bytes(Data)
}

/// A finished run of the binary.
struct CLIResult {
    var status: Int32
    /// Ended by `exit` (not by an uncaught signal).
    var exited: Bool
    var stdout: Data
    var stderr: Data
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

struct ProcessTimedOut: Error, CustomStringConvertible {
    var arguments: [String]
    var seconds: Double
    var description: String { "intercom-backfill \(arguments.joined(separator: " ")) did not end within \(seconds) s: killed" }
}

/// A running `intercom-backfill`; stdout and stderr go to files (no pipe can fill up and stall it).
final class CLIProcess: @unchecked Sendable {
    let process: Process
    let arguments: [String]
    private let stdoutURL: URL
    private let stderrURL: URL

    init(arguments: [String], standardInput: StandardInput, environment extra: [String: String], directory: URL) throws {
        guard let binary = Paths.binary else {
            throw XCTSkip("intercom-backfill is not built beside the tests; run `swift build --build-tests` first")
        }
        self.arguments = arguments
        let id = UUID().uuidString
        stdoutURL = directory.appendingPathComponent(".stdout-\(id)")
        stderrURL = directory.appendingPathComponent(".stderr-\(id)")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)

        process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("INTERCOM_") }
        environment.merge(extra) { $1 }
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)

        var feed: (Pipe, Data)?
        switch standardInput {
        case .null:
            process.standardInput = FileHandle.nullDevice
        case .file(let url):
            process.standardInput = try FileHandle(forReadingFrom: url)
        case .bytes(let data):
            let pipe = Pipe()
            process.standardInput = pipe
            feed = (pipe, data)
        }
        try process.run()
        if let (pipe, data) = feed {
            let writer = pipe.fileHandleForWriting
            // The child reads while we write; a child that exits early must not kill us with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            Thread.detachNewThread {
                data.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = write(writer.fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                        if n <= 0 { break }
                        offset += n
                    }
                }
                try? writer.close()
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the exit; past the deadline the process is killed and `ProcessTimedOut` thrown.
    func wait(deadline seconds: Double) async throws -> CLIResult {
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > end {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw ProcessTimedOut(arguments: arguments, seconds: seconds)
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        process.waitUntilExit()
        let stdout = (try? Data(contentsOf: stdoutURL)) ?? Data()
        let stderr = (try? Data(contentsOf: stderrURL)) ?? Data()
        try? FileManager.default.removeItem(at: stdoutURL)
        try? FileManager.default.removeItem(at: stderrURL)
        return CLIResult(
            status: process.terminationStatus, exited: process.terminationReason == .exit, stdout: stdout, stderr: stderr)
    }
}

/// Waits in a loop (with a deadline) until `condition` holds; false when the deadline passed.
func waitUntil(deadline seconds: Double, _ condition: () -> Bool) async throws -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > end { return false }
        try await Task.sleep(nanoseconds: 5_000_000)
    }
    return true
}

/// The common base of the integration tests: a private temp folder per test, removed afterwards,
/// and runs of the binary with a deadline.
class IntegrationTestCase: XCTestCase {
    /// A generous bound on any one run: a hang fails the test instead of the suite.
    static let runDeadline = 90.0

    /// A fresh folder, removed when the test ends.
    func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("intercom-itests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func launch(_ arguments: [String], stdin: StandardInput = .null, environment: [String: String] = [:], in directory: URL)
        throws -> CLIProcess
    {
        try CLIProcess(arguments: arguments, standardInput: stdin, environment: environment, directory: directory)
    }

    /// Runs the binary to its end (killed and failed past `deadline`); it must end by exiting,
    /// never by a crash.
    func run(
        _ arguments: [String], stdin: StandardInput = .null, environment: [String: String] = [:], in directory: URL,
        deadline: Double = IntegrationTestCase.runDeadline, file: StaticString = #filePath, line: UInt = #line
    ) async throws -> CLIResult {
        let process = try launch(arguments, stdin: stdin, environment: environment, in: directory)
        let result = try await process.wait(deadline: deadline)
        XCTAssertTrue(
            result.exited, "intercom-backfill \(arguments) died of signal \(result.status): \(result.stderrText)", file: file,
            line: line)
        return result
    }
}

/// Usage errors (unknown options, `validate()` failures) exit 2, as documented, not ArgumentParser's 64.
func assertUsageErrorExit(_ result: CLIResult, file: StaticString = #filePath, line: UInt = #line) throws {
    XCTAssertEqual(result.status, 2, "a usage error exits 2: \(result.stderrText)", file: file, line: line)
}

// MARK: - Files and JSON

/// Decompressed bytes of an input as the tool reads it: gzip (by magic bytes, every member) via
/// `gzip -dc`, else the file itself.
func decodedInput(_ url: URL) throws -> Data {
    let raw = try Data(contentsOf: url)
    guard raw.count >= 2, raw[raw.startIndex] == 0x1F, raw[raw.startIndex + 1] == 0x8B else { return raw }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["gzip", "-dc", url.path]
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("intercom-itests-gunzip-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: out) }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return try Data(contentsOf: out)
}

/// The lines of an input, 1-based as the tool numbers them: split on `\n`, a `\r` before it
/// dropped, a BOM at the start dropped; a last line without newline is still a line.
func inputLines(_ data: Data) -> [Data] {
    var bytes = [UInt8](data)
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
    var lines: [Data] = []
    var start = 0
    for (i, b) in bytes.enumerated() where b == 0x0A {
        var end = i
        if end > start, bytes[end - 1] == 0x0D { end -= 1 }
        lines.append(Data(bytes[start..<end]))
        start = i + 1
    }
    if start < bytes.count { lines.append(Data(bytes[start...])) }
    return lines
}

func jsonObject(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    return try XCTUnwrap(
        value as? [String: Any], "not a JSON object: \(String(decoding: data.prefix(300), as: UTF8.self))", file: file, line: line
    )
}

/// Non-empty lines of an NDJSON file as objects (missing file: no lines).
func ndjsonObjects(_ url: URL, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
    guard let data = try? Data(contentsOf: url) else { return [] }
    return try data.split(separator: 0x0A).map { try jsonObject(Data($0), file: file, line: line) }
}

/// A JSON value written canonically (sorted keys), for comparing the same data written by
/// different writers (the tool, the sandbox).
func canonicalJSON(_ value: Any) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else {
        return "<not JSON>"
    }
    return String(decoding: data, as: UTF8.self)
}

func canonicalJSON(text: String) -> String {
    guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
        return "<not JSON: \(text)>"
    }
    return canonicalJSON(value)
}

/// Deterministic bytes for hostile inputs (SplitMix64).
struct SeededBytes {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ count: Int) -> Data {
        var data = Data(capacity: count + 8)
        while data.count < count {
            var word = next()
            withUnsafeBytes(of: &word) { data.append(contentsOf: $0) }
        }
        return data.prefix(count)
    }
}
