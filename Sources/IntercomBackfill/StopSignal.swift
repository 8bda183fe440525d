import Synchronization

/// Asked to stop (SIGINT/SIGTERM): the reader stops at the next chunk, requests in flight finish,
/// and every wait (rate limit, backoff, job, durability) ends at once so the report and the
/// checkpoint are written.
public final class StopSignal: Sendable {
    private let flag = Atomic<Int32>(0)
    private let waiters = Mutex<[Int: CheckedContinuation<Void, Never>]>([:])
    private let nextWaiter = Atomic<Int>(0)
    private let actions = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    /// Records the signal that asked to stop (the first one wins) and wakes every waiter.
    public func request(signal: Int32) {
        _ = flag.compareExchange(expected: 0, desired: signal, ordering: .sequentiallyConsistent)
        let woken = waiters.withLock { waiters in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in woken { waiter.resume() }
        for action in actions.withLock({ $0 }) { action() }
    }

    /// Runs `action` when a stop is requested (at once if it already was): for waits that are
    /// not tasks of their own, such as the checkpoint's durability waits.
    public func whenRequested(_ action: @escaping @Sendable () -> Void) {
        actions.withLock { $0.append(action) }
        if isRequested { action() }
    }

    public var requestedBy: Int32? {
        let v = flag.load(ordering: .sequentiallyConsistent)
        return v == 0 ? nil : v
    }
    public var isRequested: Bool { flag.load(ordering: .sequentiallyConsistent) != 0 }

    /// Returns when a stop is requested, or when the calling task is cancelled.
    public func wait() async {
        let id = nextWaiter.wrappingAdd(1, ordering: .relaxed).oldValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters.withLock { waiters in
                    if isRequested || Task.isCancelled {
                        continuation.resume()
                    } else {
                        waiters[id] = continuation
                    }
                }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.resume()
        }
    }

    /// Sleeps `seconds` on `clock`, ending early on a stop (or cancellation). True when the whole
    /// time passed without a stop.
    public func sleep(seconds: Double, clock: any UploadClock) async -> Bool {
        if isRequested { return false }
        let slept = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await clock.sleep(seconds: seconds)) != nil && !Task.isCancelled }
            group.addTask {
                await self.wait()
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        return slept && !isRequested
    }
}
