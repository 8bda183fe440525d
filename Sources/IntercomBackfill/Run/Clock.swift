import Foundation
import NIOCore
import NIOPosix

// The run's time, in one place: `UploadClock` for wall time and every wait (injectable, so tests
// share a virtual clock with the sandbox), `MonotonicClock` for durations and rates only.

/// Wall time and waiting: the one clock of a run's waits (rate limits, backoff, job polling,
/// checkpoint cadence). Injected so tests against the sandbox can share a virtual clock with it
/// and never sleep.
public protocol UploadClock: Sendable {
    /// Unix seconds now.
    func now() -> Double
    /// Waits `seconds` (or returns at once when the clock is virtual). Throws when cancelled.
    func sleep(seconds: Double) async throws
}

/// The real clock.
public struct SystemUploadClock: UploadClock {
    public init() {}
    public func now() -> Double { Date().timeIntervalSince1970 }
    public func sleep(seconds: Double) async throws {
        // NaN, infinities and absurd values never reach the integer conversion (it traps).
        guard seconds.isFinite, seconds > 0 else { return }
        // An event-loop timer, not `Task.sleep`: a cancelled `Task.sleep` keeps its dispatch timer
        // (and memory) until the deadline on Linux, and every request races one against
        // `--request-timeout`, so a long REST run piled up thousands of them. A cancelled
        // scheduled task leaves the loop's timer heap at once.
        let loop = NIOSingletons.posixEventLoopGroup.next()
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(min(seconds, 86_400) * 1_000_000_000))) {}
        do {
            try await withTaskCancellationHandler {
                try await timer.futureResult.get()
            } onCancel: {
                timer.cancel()
            }
        } catch EventLoopError.cancelled {
            throw CancellationError()
        }
    }
}

/// Seconds from a monotonic clock, for rates and elapsed times (never for dates).
public enum MonotonicClock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
