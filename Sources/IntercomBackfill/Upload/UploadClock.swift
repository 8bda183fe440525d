import Foundation

/// Wall time and waiting, for the uploader's rate limiting, backoff and job polling. Injected so
/// tests against the sandbox can share a virtual clock with it and never sleep.
public protocol UploadClock: Sendable {
    /// Unix seconds now.
    func now() -> Double
    /// Waits `seconds` (or returns at once when the clock is virtual).
    func sleep(seconds: Double) async throws
}

/// The real clock.
public struct SystemUploadClock: UploadClock {
    public init() {}
    public func now() -> Double { Date().timeIntervalSince1970 }
    public func sleep(seconds: Double) async throws {
        guard seconds > 0 else { return }
        try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
    }
}
