import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hostile inputs against the process's resources: each dry run's peak RSS (from `wait4`) stays
/// under 64 MiB, it ends with a documented exit code before its deadline, and descriptors stay
/// bounded (runs under `ulimit -n 32`, and the most seen open in /proc/PID/fd).
final class ResourceLimitTests: IntegrationTestCase {
    static let peakRSSLimitKiB = 64 * 1024

    /// A fresh folder for a big tree, removed when the test ends: in /dev/shm when it is a tmpfs
    /// with room (making and removing 100,000 files or 10,000 levels on this machine's disk takes
    /// minutes), else in the temporary folder.
    private func scratchDirectory() throws -> URL {
        var info = statvfs()
        guard statvfs("/dev/shm", &info) == 0, UInt64(info.f_bavail) * UInt64(info.f_frsize) > 2 << 30,
            access("/dev/shm", W_OK) == 0
        else { return try makeTemporaryDirectory() }
        let url = URL(fileURLWithPath: "/dev/shm/intercom-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private struct Outcome {
        var result: MeasuredResult
        var report: Report
        var rejects: [[String: Any]]
    }

    /// `--dry-run --out /dev/null` of `inputs`, measured; the report must exist and add up.
    private func measuredDryRun(
        _ inputs: [String], in dir: URL, extra: [String] = [], openFileLimit: Int? = 32, deadline: Double = 60,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> Outcome {
        let reportURL = dir.appendingPathComponent("report.json")
        let state = dir.appendingPathComponent("state")
        let result = try await MeasuredRun.run(
            ["--dry-run", "--out", "/dev/null", "--no-progress", "--state-dir", state.path, "--report", reportURL.path]
                + extra + inputs,
            in: dir, openFileLimit: openFileLimit, deadline: deadline)
        XCTAssertTrue(result.exited, "died of signal \(result.status): \(result.stderrText.suffix(1500))", file: file, line: line)
        let report = try Report(url: reportURL, file: file, line: line)
        assertAddsUp(report, file: file, line: line)
        XCTAssertLessThan(
            result.peakRSSKiB, Self.peakRSSLimitKiB, "peak RSS \(result.peakRSSKiB) KiB", file: file, line: line)
        let rejects = try ndjsonObjects(state.appendingPathComponent("rejects.ndjson"), file: file, line: line)
        print(
            String(
                format: "resource limits %@: exit %d, peak RSS %.1f MiB, %.1f s, at most %d descriptors seen open",
                name, result.status, result.peakRSSMiB, result.seconds, result.peakOpenFiles))
        return Outcome(result: result, report: report, rejects: rejects)
    }

    private static func record(_ i: Int) -> String {
        #"{"type":"track","userId":"u\#(i)","event":"Limit Event","timestamp":"2026-11-01T10:00:00Z","properties":{"n":\#(i)}}"#
            + "\n"
    }

    /// Writes `data` to a new file at `path` with plain syscalls (fast enough for 100,000 files).
    private static func writeFile(_ path: String, _ data: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path): errno \(errno)")
        _ = data.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    // MARK: Compressed and long input

    /// A gzip bomb: 1 GiB of spaces in 128 gzip members of 8 MiB each (about 1 MB on disk; the
    /// tool reads every member), made without holding more than 8 MiB: one member is compressed
    /// once and written 128 times. It is one line of spaces: not buffered whole.
    func test_gzipBombOf1GiB_peakRSSUnder64MiB() async throws {
        let dir = try makeTemporaryDirectory()
        let spaces = dir.appendingPathComponent("spaces")
        try Data(repeating: 0x20, count: 8 << 20).write(to: spaces)
        let member = dir.appendingPathComponent("member.gz")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gzip.arguments = ["-c", "gzip -9 -c \"$0\" > \"$1\"", spaces.path, member.path]
        try gzip.run()
        gzip.waitUntilExit()
        XCTAssertEqual(gzip.terminationStatus, 0)
        let memberBytes = try Data(contentsOf: member)
        try FileManager.default.removeItem(at: spaces)
        let bomb = dir.appendingPathComponent("bomb.ndjson.gz")
        _ = FileManager.default.createFile(atPath: bomb.path, contents: nil)
        let handle = try FileHandle(forWritingTo: bomb)
        for _ in 0..<128 { try handle.write(contentsOf: memberBytes) }
        try handle.close()
        let run = try await measuredDryRun([bomb.path], in: dir, deadline: 90)
        XCTAssertTrue([0, 1].contains(run.result.status), run.result.stderrText)
        XCTAssertEqual(run.report.mapped, 0)
        XCTAssertLessThanOrEqual(run.report.records, 1, "one line of spaces: blank, or one line_too_long: \(run.report.raw)")
    }

    /// A line of a million `[`: the parser does not recurse into the stack; the record is rejected.
    func test_millionNestedBrackets_rejected_peakRSSUnder64MiB() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("nested.ndjson")
        try (String(repeating: "[", count: 1_000_000) + "\n" + Self.record(1)).write(
            to: input, atomically: false, encoding: .utf8)
        let run = try await measuredDryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertEqual(run.report.records, 2)
        XCTAssertEqual(run.report.mapped, 1, "the record after it is read")
        XCTAssertEqual(run.rejects.first?["line"] as? Int, 1)
    }

    /// 100 MB on one line without a newline: rejected `line_too_long` without being buffered.
    func test_100MBLineWithoutNewline_rejectedLineTooLong_peakRSSUnder64MiB() async throws {
        let dir = try makeTemporaryDirectory()
        let input = dir.appendingPathComponent("long.ndjson")
        _ = FileManager.default.createFile(atPath: input.path, contents: nil)
        let handle = try FileHandle(forWritingTo: input)
        try handle.write(contentsOf: Data(Self.record(0).utf8))
        let chunk = Data(#"{"type":"track","userId":"u","event":""#.utf8) + Data(repeating: 0x61, count: (1 << 20) - 40)
        for _ in 0..<100 { try handle.write(contentsOf: chunk) }
        try handle.close()
        let run = try await measuredDryRun([input.path], in: dir)
        XCTAssertEqual(run.result.status, 1, run.result.stderrText)
        XCTAssertEqual(run.report.records, 2)
        XCTAssertEqual(run.report.rejected["line_too_long"], 1, "\(run.report.raw)")
    }

    // MARK: Folders

    /// A folder with a symlink loop (`self -> self`), a folder link back up (`up -> ..`) and a good
    /// file: no endless walk; the loop is an unreadable input (named, exit 3), the file is read.
    func test_symlinkLoops_noEndlessWalk_loopNamed_goodFileRead() async throws {
        let dir = try makeTemporaryDirectory()
        let folder = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.record(1).write(to: folder.appendingPathComponent("a.ndjson"), atomically: false, encoding: .utf8)
        XCTAssertEqual(symlink("self", folder.appendingPathComponent("self").path), 0)
        XCTAssertEqual(symlink("..", folder.appendingPathComponent("up").path), 0)
        let run = try await measuredDryRun([folder.path], in: dir)
        XCTAssertEqual(run.result.status, 3, run.result.stderrText)
        XCTAssertTrue(run.result.stderrText.contains("self"), "the loop is named: \(run.result.stderrText)")
        XCTAssertEqual(run.report.mapped, 1, "the good file is read: \(run.report.raw)")
    }

    /// A FIFO inside a folder is skipped (no writer: opening it would block for ever); a FIFO named
    /// directly is read like a pipe.
    func test_fifo_inAFolderSkipped_namedDirectlyRead() async throws {
        let dir = try makeTemporaryDirectory()
        let folder = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.record(1).write(to: folder.appendingPathComponent("a.ndjson"), atomically: false, encoding: .utf8)
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("b.fifo").path, 0o644), 0)
        let skipped = try await measuredDryRun([folder.path], in: dir)
        XCTAssertEqual(skipped.result.status, 0, skipped.result.stderrText)
        XCTAssertEqual(skipped.report.mapped, 1)

        let fifo = dir.appendingPathComponent("direct.fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o644), 0)
        let text = (0..<50).map(Self.record).joined()
        let path = fifo.path
        // The writer blocks in open until the run opens the FIFO for reading.
        Thread.detachNewThread {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            _ = text.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, $0.count - 1) }
            close(fd)
        }
        let direct = try await measuredDryRun([fifo.path], in: dir, deadline: 30)
        XCTAssertEqual(direct.result.status, 0, direct.result.stderrText)
        XCTAssertEqual(direct.report.mapped, 50)
    }

    /// `count` one-record files in a folder (`width` files a subfolder), read under `ulimit -n 32`.
    private func assertManySmallFiles(_ count: Int, width: Int) async throws {
        let dir = try scratchDirectory()
        let folder = dir.appendingPathComponent("many")
        let started = Date()
        XCTAssertEqual(mkdir(folder.path, 0o755), 0)
        for sub in 0..<((count + width - 1) / width) {
            let subfolder = folder.appendingPathComponent(String(format: "%03d", sub)).path
            XCTAssertEqual(mkdir(subfolder, 0o755), 0)
            for i in (sub * width)..<min(count, (sub + 1) * width) {
                Self.writeFile(subfolder + String(format: "/%06d.ndjson", i), Self.record(i))
            }
        }
        print(String(format: "resource limits: %d files made in %.1f s", count, Date().timeIntervalSince(started)))
        let run = try await measuredDryRun([folder.path], in: dir, deadline: 90)
        XCTAssertEqual(run.result.status, 0, run.result.stderrText.suffix(1500).description)
        XCTAssertEqual(run.report.records, count)
        XCTAssertEqual(run.report.mapped, count)
        XCTAssertLessThanOrEqual(run.result.peakOpenFiles, 32, "descriptors seen open at once")
    }

    /// 3,000 small files in one folder, under `ulimit -n 32`.
    func test_3000SmallFiles_peakRSSUnder64MiB_fewDescriptors() async throws {
        try await assertManySmallFiles(3000, width: 3000)
    }

    /// 100,000 small files (100 subfolders of 1,000), under `ulimit -n 32`.
    func test_100000SmallFiles_peakRSSUnder64MiB_fewDescriptors() async throws {
        try await assertManySmallFiles(100_000, width: 1000)
    }

    /// 10,000 nested folders (a path of 20,000 bytes, past PATH_MAX) with one file at the
    /// bottom: the walk neither exhausts the stack nor holds a descriptor per level (`ulimit -n 32`),
    /// and the file at the bottom is read.
    func test_10000NestedFolders_noStackOrDescriptorExhaustion_bottomFileRead() async throws {
        let dir = try scratchDirectory()
        let top = dir.appendingPathComponent("deep")
        XCTAssertEqual(mkdir(top.path, 0o755), 0)
        let depth = 10_000
        // Made and removed one level at a time through descriptors: the path is too long for mkdir -p or rm -r.
        var fd = open(top.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for _ in 0..<depth {
            XCTAssertEqual(mkdirat(fd, "d", 0o755), 0)
            let child = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            close(fd)
            fd = child
        }
        let file = openat(fd, "bottom.ndjson", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        let text = Self.record(7)
        _ = text.utf8CString.withUnsafeBytes { write(file, $0.baseAddress, $0.count - 1) }
        close(file)
        close(fd)
        addTeardownBlock { Self.removeChain(top.path, depth: depth) }
        let run = try await measuredDryRun([top.path], in: dir, deadline: 90)
        XCTAssertEqual(run.result.status, 0, run.result.stderrText.suffix(1500).description)
        XCTAssertEqual(run.report.mapped, 1, "the file at the bottom is read: \(run.report.raw)")
        XCTAssertLessThanOrEqual(run.result.peakOpenFiles, 32)
    }

    /// Removes `top/d/d/.../bottom.ndjson` from the top: the level below is moved up beside
    /// `top/d`, which is then empty and removed, `depth` times.
    private static func removeChain(_ top: String, depth: Int) {
        let fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for _ in 0..<depth {
            guard renameat(fd, "d/d", fd, "next") == 0 || renameat(fd, "d/bottom.ndjson", fd, "bottom.ndjson") == 0 else {
                break
            }
            _ = unlinkat(fd, "d/bottom.ndjson", 0)
            guard unlinkat(fd, "d", AT_REMOVEDIR) == 0 else { break }
            _ = renameat(fd, "next", fd, "d")
        }
        _ = unlinkat(fd, "bottom.ndjson", 0)
        _ = unlinkat(fd, "d/bottom.ndjson", 0)
        _ = unlinkat(fd, "d", AT_REMOVEDIR)
    }
}
