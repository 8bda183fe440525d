#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One self-updating status line on stderr, only when stderr is a terminal (never in logs or cron mail).
public final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private let start = MonotonicClock.now()
    private var lastDraw = 0.0
    private var drawn = false

    /// `enabled` is the user's choice (`--no-progress`/`--quiet` turn it off); a non-terminal stderr always does.
    public init(enabled: Bool) {
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
    }

    /// Redraws at most four times a second; cheap enough to call once per chunk.
    public func update(bytesRead: Int64, totalBytes: Int64?, records: Int, extra: @autoclosure () -> String = "") {
        guard enabled else { return }
        let now = MonotonicClock.now()
        guard now - lastDraw >= 0.25 else { return }
        lastDraw = now
        let elapsed = now - start
        var text = "\r\u{1B}[K"
        if let totalBytes, totalBytes > 0 {
            let percent = min(100, Double(bytesRead) * 100 / Double(totalBytes))
            text += "\(formatBytes(bytesRead)) of \(formatBytes(totalBytes)) (\(Int(percent))%)"
        } else {
            text += "\(formatBytes(bytesRead)) read"
        }
        let rate = elapsed > 0 ? Int(Double(records) / elapsed) : 0
        text += ", \(records) records, \(rate) records/s, \(Int(elapsed)) s"
        let extra = extra()
        if !extra.isEmpty { text += ", " + extra }
        writeToStandardError(text)
        drawn = true
    }

    /// Clears the line before the summary is printed.
    public func finish() {
        guard enabled, drawn else { return }
        writeToStandardError("\r\u{1B}[K")
        drawn = false
    }

    private func formatBytes(_ n: Int64) -> String {
        if n >= 1 << 30 { return "\(Double(n * 10 / (1 << 30)) / 10) GiB" }
        if n >= 1 << 20 { return "\(Double(n * 10 / (1 << 20)) / 10) MiB" }
        if n >= 1 << 10 { return "\(n >> 10) KiB" }
        return "\(n) B"
    }
}

private func writeToStandardError(_ text: String) {
    var copy = text
    copy.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
