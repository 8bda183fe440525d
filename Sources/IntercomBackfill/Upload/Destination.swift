import Synchronization

/// Where closed batches go: the dry-run writer, the bulk uploader, or (REST mode) the 2.x
/// uploader. The reading side never knows which one runs.
public protocol Destination: AnyObject, Sendable {
    /// Called in batch order before `deliver`, so ordering rules (users before the events that
    /// follow them) can be kept however the deliveries interleave.
    func register(_ batch: Batch) async
    /// Sends one batch until it is settled, or gives it up for this run. Throws only what must
    /// end the run (refused credentials, an unwritable rejects file).
    func deliver(_ batch: Batch) async throws -> Delivery
    /// Work that follows deliveries without holding a window slot (reading retired jobs' error feeds).
    func afterDelivery() async
    /// No more batches: finish what is pending (job error feeds) and say what happened.
    func finish() async throws -> SinkSummary
    /// What happened so far, for the report of a run that had to stop.
    func summarySoFar() async -> SinkSummary
    /// A few words for the progress line (rates, in-flight count, rate budget).
    var statusLine: String { get }
    /// How many batches it wants delivering at once, when it knows better than `--concurrency`
    /// (REST mode: a wider window lets more updates merge).
    var windowCapacity: Int? { get }
}

extension Destination {
    public func register(_ batch: Batch) async {}
    public func afterDelivery() async {}
    public var statusLine: String { "" }
    public var windowCapacity: Int? { nil }
}

/// A destination that does no network I/O (the dry-run writer): the reading thread hands it
/// batches directly, since a hand-over to the delivery tasks would only add two thread switches
/// a batch (measured: 15-20 % of a dry run).
public protocol SynchronousDestination: Destination {
    func write(_ batch: Batch) throws
}

/// How a delivery ended.
public enum Delivery: Sendable, Equatable {
    /// Accepted, or refused for good with its items written to the rejects file.
    case settled
    /// Not delivered in this run: abandoned on a stop, or the retries ran out (its items then are
    /// in the rejects file as `upload_failed`). The checkpoint stays before it, so the same
    /// command run again sends it again.
    case retryLater
}

/// What a destination did with the batches it was given.
public struct SinkSummary: Sendable, Equatable {
    public var requests = 0
    public var retries = 0
    public var uploadedUsers = 0
    public var uploadedEvents = 0
    /// Items Intercom did not take, by error code (each also written to the rejects file).
    public var failed: [String: Int] = [:]
    /// Error-feed items that match nothing this run sent (or that were listed again): logged, counted apart.
    public var unmatchedJobItems = 0
    /// Jobs whose error feeds could not be read: the run is not known to be clean.
    public var unreadJobFeeds: [PendingJob] = []
    /// Values the destination left out of what it sent (REST mode's attribute rules).
    public var warnings = ReasonCounts<MappingWarning>()
    /// The API the items went through ("1.4", "2.14"); nil for a bulk dry run.
    public var api: String?
    /// REST mode's calls and savings.
    public var rest: RESTFigures?

    public init() {}
}

/// `--dry-run`: one JSON line per request that would be sent (contract §7):
/// `{"method":"POST","path":"/bulk/users","body":{"items":[...]}}`.
public final class DryRunWriter: SynchronousDestination {
    private struct State {
        var file: BufferedFileWriter
        var summary = SinkSummary()
        var line: [UInt8] = []
    }
    private let state: Mutex<State>

    public init(path: String) throws {
        // A buffer smaller than a batch: the items (tens of KB) go to write(2) straight from the
        // batch instead of being copied into the buffer first; only the short wrappers are buffered.
        state = Mutex(State(file: try BufferedFileWriter(path: path, capacity: 16 << 10)))
    }

    public func deliver(_ batch: Batch) async throws -> Delivery {
        try write(batch)
        return .settled
    }

    /// The synchronous core of `deliver`, usable without an async context (benchmarks).
    public func write(_ batch: Batch) throws {
        try state.withLock { state in
            state.line.removeAll(keepingCapacity: true)
            if batch.kind == .user {
                JSONWriter.append("{\"method\":\"POST\",\"path\":\"/bulk/users\",\"body\":{\"items\":[", to: &state.line)
            } else {
                JSONWriter.append("{\"method\":\"POST\",\"path\":\"/bulk/events\",\"body\":{\"items\":[", to: &state.line)
            }
            try state.file.write(state.line)
            try state.file.write(batch.items)
            state.line.removeAll(keepingCapacity: true)
            JSONWriter.append("]}}\n", to: &state.line)
            try state.file.write(state.line)
            state.summary.requests += 1
        }
    }

    public func finish() async throws -> SinkSummary {
        try finishWriting()
    }

    public func summarySoFar() async -> SinkSummary { state.withLock { $0.summary } }

    /// The synchronous core of `finish`: flushes the file and says what was written.
    public func finishWriting() throws -> SinkSummary {
        try state.withLock { state in
            try state.file.flush()
            return state.summary
        }
    }
}
