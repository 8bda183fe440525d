import Synchronization

/// Asked to stop (SIGINT/SIGTERM): the pipeline stops reading at the next chunk, lets the sink
/// finish what it has, and reports.
public final class StopSignal: Sendable {
    private let flag = Atomic<Int32>(0)
    public init() {}
    /// Records the signal that asked to stop (the first one wins).
    public func request(signal: Int32) { _ = flag.compareExchange(expected: 0, desired: signal, ordering: .relaxed) }
    public var requestedBy: Int32? { let v = flag.load(ordering: .relaxed); return v == 0 ? nil : v }
    public var isRequested: Bool { flag.load(ordering: .relaxed) != 0 }
}
