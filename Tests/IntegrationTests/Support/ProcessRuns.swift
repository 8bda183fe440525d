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

/// A run of the binary whose resource use is measured: `peakRSSKiB` is the kernel's peak resident
/// set of exactly that process. A process started by `posix_spawn` (or by Foundation's `Process`)
/// begins as a vfork of the test process and inherits its high-water mark at `exec`, so the
/// binary is started by a small `python3` parent that forks it from its own few MiB, reaps it
/// with `wait4` and writes its `ru_maxrss`. The binary gets stdin from /dev/null, stdout and
/// stderr in files, no descriptor of the test process beyond those three, default signal
/// handling, and optionally a lower `RLIMIT_NOFILE`.
struct MeasuredResult {
    var status: Int32
    /// Ended by `exit` (not by a signal).
    var exited: Bool
    var stdout: Data
    var stderr: Data
    /// `ru_maxrss` from `wait4`: kilobytes on Linux.
    var peakRSSKiB: Int
    /// The most descriptors seen open at once in `/proc/PID/fd`, sampled while it ran (a lower bound).
    var peakOpenFiles: Int
    var seconds: Double
    var cli: CLIResult { CLIResult(status: status, exited: exited, stdout: stdout, stderr: stderr) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    var peakRSSMiB: Double { Double(peakRSSKiB) / 1024 }
}

enum MeasuredRun {
    /// Forks and execs argv[3...] (with RLIMIT_NOFILE argv[2] when above 0), reaps it with
    /// wait4, writes its ru_maxrss to argv[1], and ends as it ended (same code, or same signal).
    static let parent = """
        import os, resource, signal, sys
        out, limit, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
        pid = os.fork()
        if pid == 0:
            if limit > 0:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda n, _: os.kill(pid, n))
        while True:
            try:
                _, status, usage = os.wait4(pid, 0)
                break
            except InterruptedError:
                pass
        with open(out, "w") as f:
            f.write(str(usage.ru_maxrss))
        if os.WIFSIGNALED(status):
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
        sys.exit(os.WEXITSTATUS(status))
        """

    /// Runs the binary with `arguments` in `directory` to its end; killed and `ProcessTimedOut`
    /// thrown past `deadline` (a hang is a failure).
    static func run(
        _ arguments: [String], environment extra: [String: String] = [:], in directory: URL, openFileLimit: Int? = nil,
        deadline: Double = 60
    ) async throws -> MeasuredResult {
        guard let binary = Paths.binary else { throw XCTSkip("intercom-backfill is not built beside the tests") }
        guard
            let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { throw XCTSkip("python3 is needed to measure the peak RSS of a run") }
        let id = UUID().uuidString
        let stdoutURL = directory.appendingPathComponent(".measured-out-\(id)")
        let stderrURL = directory.appendingPathComponent(".measured-err-\(id)")
        let rssURL = directory.appendingPathComponent(".measured-rss-\(id)")
        defer {
            for url in [stdoutURL, stderrURL, rssURL] { try? FileManager.default.removeItem(at: url) }
        }
        let argv = [python, "-S", "-c", parent, rssURL.path, "\(openFileLimit ?? 0)", binary.path] + arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("INTERCOM_") }
        environment.merge(extra) { $1 }
        let envp = environment.map { "\($0.key)=\($0.value)" }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // The test process's own sockets and files are not the child's to count.
        guard let closeFrom = glibc("posix_spawn_file_actions_addclosefrom_np", as: CloseFrom.self),
            let changeDirectory = glibc("posix_spawn_file_actions_addchdir_np", as: ChangeDirectory.self)
        else { throw XCTSkip("posix_spawn_file_actions_addclosefrom_np/addchdir_np need glibc 2.34") }
        _ = closeFrom(&actions, 3)
        _ = changeDirectory(&actions, directory.path)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The spawning thread may block signals and the tests ignore SIGPIPE: the child starts
        // clean, in a process group of its own (a deadline kills the parent and the binary).
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = envp.map { strdup($0) } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var pid: pid_t = 0
        let started = Date()
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }

        var status: Int32 = 0
        var peakFiles = 0
        var child: pid_t?
        let end = started.addingTimeInterval(deadline)
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0, errno != EINTR { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECHILD) }
            if child == nil { child = onlyChild(of: pid) }
            if let child { peakFiles = max(peakFiles, openFiles(child)) }
            if Date() > end {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                let stderr = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
                throw ProcessTimedOut(arguments: arguments + ["(stderr: \(stderr.suffix(1500)))"], seconds: deadline)
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        let seconds = Date().timeIntervalSince(started)
        let stdout = (try? Data(contentsOf: stdoutURL)) ?? Data()
        let stderr = (try? Data(contentsOf: stderrURL)) ?? Data()
        let rss = (try? String(contentsOf: rssURL, encoding: .utf8)).flatMap { Int($0) }
        guard let rss else {
            throw POSIXError(
                .ECHILD,
                userInfo: [NSLocalizedDescriptionKey: "no peak RSS from the parent: \(String(decoding: stderr, as: UTF8.self))"])
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand: the C macros are not imported.
        let signal = status & 0x7F
        return MeasuredResult(
            status: signal == 0 ? (status >> 8) & 0xFF : signal, exited: signal == 0, stdout: stdout, stderr: stderr,
            peakRSSKiB: rss, peakOpenFiles: peakFiles, seconds: seconds)
    }

    // glibc's GNU extensions are not in the Glibc module without _GNU_SOURCE: looked up at run time.
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static func glibc<F>(_ name: String, as: F.Type) -> F? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: F.self)
    }

    /// The process `pid` started (the binary under the python parent), once it exists.
    static func onlyChild(of pid: pid_t) -> pid_t? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return nil }
        return text.split(separator: " ").first.flatMap { pid_t($0) }
    }

    /// Descriptors open in `pid` now (0 when it cannot be read).
    static func openFiles(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }
}
