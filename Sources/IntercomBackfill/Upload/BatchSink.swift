/// Where closed batches go: the dry-run writer or the uploader.
public protocol BatchSink: AnyObject {
    /// Takes one batch. May suspend (back-pressure): the reader waits while the sink is full.
    func send(_ batch: Batch) async throws
    /// No more batches: finish what is in flight and say what happened.
    func finish() async throws -> SinkSummary
    /// A few words for the progress line (the uploader's rates, in-flight count, rate budget).
    var statusLine: String { get }
}

extension BatchSink {
    public var statusLine: String { "" }
}

/// What a sink did with the batches it was given.
public struct SinkSummary: Sendable, Equatable {
    public var requests = 0
    public var retries = 0
    public var uploadedUsers = 0
    public var uploadedEvents = 0
    /// Items Intercom did not take, by error code (each also written to the rejects file).
    public var failed: [String: Int] = [:]

    public init() {}
}

/// `--dry-run`: one JSON line per request that would be sent (contract §7):
/// `{"method":"POST","path":"/bulk/users","body":{"items":[...]}}`.
public final class DryRunWriter: BatchSink {
    private let file: BufferedFileWriter
    private var summary = SinkSummary()
    private var line: [UInt8] = []

    public init(path: String) throws {
        // A buffer smaller than a batch: the items (tens of KB) go to write(2) straight from the
        // batch instead of being copied into the buffer first; only the short wrappers are buffered.
        file = try BufferedFileWriter(path: path, capacity: 16 << 10)
    }

    public func send(_ batch: Batch) async throws {
        try write(batch)
    }

    /// The synchronous core of `send`, usable without an async context (benchmarks).
    public func write(_ batch: Batch) throws {
        line.removeAll(keepingCapacity: true)
        if batch.kind == .user {
            JSONWriter.append("{\"method\":\"POST\",\"path\":\"/bulk/users\",\"body\":{\"items\":[", to: &line)
        } else {
            JSONWriter.append("{\"method\":\"POST\",\"path\":\"/bulk/events\",\"body\":{\"items\":[", to: &line)
        }
        try file.write(line)
        try file.write(batch.items)
        line.removeAll(keepingCapacity: true)
        JSONWriter.append("]}}\n", to: &line)
        try file.write(line)
        summary.requests += 1
    }

    public func finish() async throws -> SinkSummary {
        try finishWriting()
    }

    /// The synchronous core of `finish`: flushes the file and says what was written.
    public func finishWriting() throws -> SinkSummary {
        try file.flush()
        return summary
    }
}
