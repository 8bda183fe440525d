import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// How the sandbox behaves: credentials, rate limit, faults, job lifetime and the clock.
///
/// Every field has a default, so `SandboxConfiguration()` is an open sandbox on a free loopback
/// port that accepts any non-empty Bearer token and never fails on purpose.
public struct SandboxConfiguration: Sendable {
    /// When a job reports `"state": "completed"`.
    public enum JobCompletion: String, Sendable, CaseIterable {
        /// As soon as all its tasks are processed, which the sandbox does before answering each
        /// request. The job still accepts appends until its `closing_at`.
        case whenTasksDone = "when-tasks-done"
        /// Only once its `closing_at` has passed (the slow path of the real API), for testing a
        /// client's bounded wait.
        case atClosing = "at-closing"
    }

    /// What a bulk request costs in the shared rate-limit budget.
    public enum BulkCost: String, Sendable, CaseIterable {
        /// One unit a request, like every other call.
        case request
        /// One unit an item, as Intercom users have reported for the bulk API.
        case items
    }

    /// The address to listen on. Keep it on loopback: the sandbox has no TLS.
    public var host: String = "127.0.0.1"
    /// The port to listen on; 0 picks any free port (read it back from `IntercomSandboxServer.port`).
    public var port: Int = 0
    /// The only Bearer token accepted. When no credential at all is configured (no token and no
    /// app id/API key pair), any non-empty Bearer token or Basic pair is accepted.
    public var bearerToken: String?
    /// The Basic auth pair (`app_id:api_key`). Also names the `app_id` in job objects.
    public var appID: String?
    /// See `appID`.
    public var apiKey: String?
    /// Requests allowed per 10-second window before answering `429`; nil reports a generous
    /// 100,000 and never limits.
    public var rateLimitPerWindow: Int?
    /// The share (0...1) of `POST /bulk/*` requests answered with a fault (500, 503 or a dropped
    /// connection) instead of being applied.
    public var failRate: Double = 0
    /// Delay before every answer of the bulk API, in milliseconds (0: none).
    public var latencyMilliseconds: Int = 0
    /// Seeds the fault dice, so the same requests in the same order meet the same faults.
    public var seed: UInt64 = 0
    /// When set, every accepted item is appended there as one NDJSON line (the file is truncated
    /// at start).
    public var recordPath: String?
    /// Seconds a job accepts appends after its creation (Intercom: about 15 minutes).
    public var jobTTLSeconds: Int = 900
    /// When jobs report `completed`; see `JobCompletion`.
    public var jobCompletion: JobCompletion = .whenTasksDone
    /// Request bodies larger than this are answered `413`.
    public var maxBodyBytes: Int = 10 * 1024 * 1024
    /// Keep accepted items in memory for `IntercomSandboxServer.acceptedItems()`. Turn it off for
    /// long runs that only need the record file or the stats.
    public var retainsAcceptedItems: Bool = true
    /// Event-loop threads serving connections.
    public var threads: Int = min(System.coreCount, 4)
    /// Seconds a new contact stays invisible to `POST /contacts/search` (Intercom's index lags its
    /// writes); `find_by_external_id` and conflicts see it at once. Reads `clock`.
    public var searchLagSeconds: Double = 0
    /// The workspace's API version, used when a request sends no `Intercom-Version`.
    public var defaultVersion: String = "2.14"
    /// Whether `/bulk` and `/jobs` exist at all (under a 1.x version); off, a workspace without
    /// the bulk API, to test a client's fallback to 2.x.
    public var bulkAvailable: Bool = true
    /// What one bulk request costs in the rate-limit budget.
    public var bulkCost: BulkCost = .request
    /// Unix seconds now. Jobs' timestamps and closing, and the rate-limit window, read it; tests
    /// inject a `SandboxManualClock` to make time pass without sleeping.
    public var clock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        bearerToken: String? = nil,
        appID: String? = nil,
        apiKey: String? = nil,
        rateLimitPerWindow: Int? = nil,
        failRate: Double = 0,
        latencyMilliseconds: Int = 0,
        seed: UInt64 = 0,
        recordPath: String? = nil,
        jobTTLSeconds: Int = 900,
        jobCompletion: JobCompletion = .whenTasksDone,
        maxBodyBytes: Int = 10 * 1024 * 1024,
        retainsAcceptedItems: Bool = true,
        threads: Int = min(System.coreCount, 4),
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.host = host
        self.port = port
        self.bearerToken = bearerToken
        self.appID = appID
        self.apiKey = apiKey
        self.rateLimitPerWindow = rateLimitPerWindow
        self.failRate = failRate
        self.latencyMilliseconds = latencyMilliseconds
        self.seed = seed
        self.recordPath = recordPath
        self.jobTTLSeconds = jobTTLSeconds
        self.jobCompletion = jobCompletion
        self.maxBodyBytes = maxBodyBytes
        self.retainsAcceptedItems = retainsAcceptedItems
        self.threads = threads
        self.clock = clock
    }

    /// Checks the values a person can get wrong; the message says which option and why.
    public func validate() throws(SandboxError) {
        guard (0...65535).contains(port) else {
            throw SandboxError(.invalidConfiguration, "port \(port) is outside 0...65535")
        }
        if let token = bearerToken, token.isEmpty {
            throw SandboxError(.invalidConfiguration, "the sandbox token is empty; give a non-empty one or none at all")
        }
        if (appID == nil) != (apiKey == nil) {
            throw SandboxError(
                .invalidConfiguration,
                "Basic auth needs both an app id and an API key (INTERCOM_APP_ID and INTERCOM_API_KEY), only one is set")
        }
        if let appID, appID.isEmpty || appID.contains(":") {
            throw SandboxError(.invalidConfiguration, "the app id must be non-empty and hold no ':'")
        }
        if let apiKey, apiKey.isEmpty {
            throw SandboxError(.invalidConfiguration, "the API key is empty")
        }
        if let limit = rateLimitPerWindow, limit < 1 {
            throw SandboxError(.invalidConfiguration, "rate limit \(limit) must be at least 1 request per 10-second window")
        }
        guard failRate.isFinite, (0...1).contains(failRate) else {
            throw SandboxError(
                .invalidConfiguration, "fail rate \(failRate) must be between 0 and 1 (a share of requests, 0.1 = 10%)")
        }
        guard latencyMilliseconds >= 0 else {
            throw SandboxError(.invalidConfiguration, "latency \(latencyMilliseconds) ms must not be negative")
        }
        guard jobTTLSeconds >= 1 else {
            throw SandboxError(.invalidConfiguration, "job TTL \(jobTTLSeconds) s must be at least 1 second")
        }
        guard maxBodyBytes >= 1 else {
            throw SandboxError(.invalidConfiguration, "the body size limit must be at least 1 byte")
        }
        guard searchLagSeconds.isFinite, searchLagSeconds >= 0 else {
            throw SandboxError(.invalidConfiguration, "search lag \(searchLagSeconds) s must be a number of seconds, 0 or more")
        }
        guard APIFamily(version: defaultVersion) != nil else {
            throw SandboxError(
                .invalidConfiguration,
                "default version '\(defaultVersion)' is not an Intercom API version (1.0 to 1.4, 2.0 to 2.14, Unstable)")
        }
        guard threads >= 1 else {
            throw SandboxError(.invalidConfiguration, "the sandbox needs at least 1 thread")
        }
    }
}

/// A clock for tests: time stands still until the test moves it, so job closing and rate-limit
/// windows can be crossed without sleeping.
public final class SandboxManualClock: Sendable {
    private let seconds: NIOLockedValueBox<Double>

    /// Starts at `unixSeconds` (default: the start of a 10-second window, so a test knows where
    /// the window ends).
    public init(unixSeconds: Double = 1_700_000_000) {
        seconds = NIOLockedValueBox(unixSeconds)
    }

    /// Unix seconds now.
    public var now: Double { seconds.withLockedValue { $0 } }

    /// Moves time forward.
    public func advance(seconds delta: Double) {
        seconds.withLockedValue { $0 += delta }
    }

    /// Sets the time.
    public func set(unixSeconds: Double) {
        seconds.withLockedValue { $0 = unixSeconds }
    }

    /// The closure to put in `SandboxConfiguration.clock`.
    public var clock: @Sendable () -> Double {
        { [self] in self.now }
    }
}

/// What went wrong starting or running the sandbox, said so a person can act on it.
public struct SandboxError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure, for code that wants to react to it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable { case invalidConfiguration, bindFailed, recordFileUnwritable }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// A configuration value is out of range or inconsistent.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The host/port could not be bound (in use, no permission, unknown host).
        public static let bindFailed = Code(.bindFailed)
        /// The `--record` file could not be created.
        public static let recordFileUnwritable = Code(.recordFileUnwritable)

        public var description: String {
            switch wrapped {
            case .invalidConfiguration: return "invalid configuration"
            case .bindFailed: return "cannot listen"
            case .recordFileUnwritable: return "cannot write the record file"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What happened and what to do, in a sentence.
    public var message: String
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        var text = "sandbox: \(code): \(message)"
        if let cause { text += " (\(cause))" }
        return text
    }
}
