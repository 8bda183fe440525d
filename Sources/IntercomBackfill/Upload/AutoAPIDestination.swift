import Logging
import Synchronization

/// `--api-version auto` (contract §8.1): starts with the bulk API; when its first call says the
/// workspace has none (nothing was accepted), says so once and goes on in REST mode, with the
/// same batch. Until that first answer the other batches wait, registered in order, so REST
/// mode sees them as if it had run from the start.
public final class AutoAPIDestination: Destination {
    private enum Mode {
        case undecided(first: Int?, waiting: [CheckedContinuation<Void, Never>], registered: [Batch])
        case bulk
        case rest
    }

    private let bulk: Uploader
    /// Made only on the fallback: a bulk run opens no state store.
    private let makeREST: @Sendable () throws -> RESTDestination
    private let made = Mutex<RESTDestination?>(nil)
    private let logger: Logger
    private let mode = Mutex(Mode.undecided(first: nil, waiting: [], registered: []))
    /// Called once when the run moves to REST mode (the checkpoint remembers it).
    private let onFallback: @Sendable (String) -> Void

    public init(
        bulk: Uploader, rest: @escaping @Sendable () throws -> RESTDestination, logger: Logger,
        onFallback: @escaping @Sendable (String) -> Void
    ) {
        self.bulk = bulk
        self.makeREST = rest
        self.logger = logger
        self.onFallback = onFallback
    }

    private var current: any Destination {
        let isREST = mode.withLock { mode in
            if case .rest = mode { return true }
            return false
        }
        return isREST ? (made.withLock { $0 } ?? bulk) : bulk
    }

    public func register(_ batch: Batch) async {
        let deferred = mode.withLock { mode -> Bool in
            guard case .undecided(let first, let waiting, var registered) = mode else { return false }
            registered.append(batch)
            mode = .undecided(first: first ?? batch.sequence, waiting: waiting, registered: registered)
            return true
        }
        if deferred {
            await bulk.register(batch)
        } else {
            await current.register(batch)
        }
    }

    public func deliver(_ batch: Batch) async throws -> Delivery {
        let isProbe = mode.withLock { mode -> Bool? in
            guard case .undecided(let first, _, _) = mode else { return nil }
            return first == batch.sequence
        }
        switch isProbe {
        case true?:
            return try await probe(batch)
        case false?:
            await withCheckedContinuation { continuation in
                let decided = mode.withLock { mode -> Bool in
                    guard case .undecided(let first, var waiting, let registered) = mode else { return true }
                    waiting.append(continuation)
                    mode = .undecided(first: first, waiting: waiting, registered: registered)
                    return false
                }
                if decided { continuation.resume() }
            }
            return try await current.deliver(batch)
        case nil:
            return try await current.deliver(batch)
        }
    }

    /// The first batch goes to the bulk API; its answer decides the mode for the whole run.
    private func probe(_ batch: Batch) async throws -> Delivery {
        do {
            let delivery = try await bulk.deliver(batch)
            decide(.bulk)
            return delivery
        } catch let unavailable as BulkAPIUnavailable {
            let rest: RESTDestination
            do {
                rest = try makeREST()
            } catch {
                decide(.bulk)
                throw error
            }
            made.withLock { $0 = rest }
            logger.notice(
                "this workspace has no bulk API (\(unavailable)); nothing was accepted: going on with the 2.x REST API (\(rest.options.version))"
            )
            onFallback(rest.options.version)
            // Hand REST mode every batch registered so far, in order, until none is left; the
            // switch happens under the same lock as the last check, so none slips between.
            while true {
                var waiting: [CheckedContinuation<Void, Never>] = []
                let next = mode.withLock { mode -> [Batch] in
                    guard case .undecided(let first, let waiters, let registered) = mode else { return [] }
                    if registered.isEmpty {
                        waiting = waiters
                        mode = .rest
                    } else {
                        mode = .undecided(first: first, waiting: waiters, registered: [])
                    }
                    return registered
                }
                if next.isEmpty {
                    for waiter in waiting { waiter.resume() }
                    break
                }
                for earlier in next { await rest.register(earlier) }
            }
            return try await rest.deliver(batch)
        } catch {
            decide(.bulk)
            throw error
        }
    }

    private func decide(_ decided: Mode) {
        let waiting = mode.withLock { mode -> [CheckedContinuation<Void, Never>] in
            guard case .undecided(_, let waiting, _) = mode else { return [] }
            mode = decided
            return waiting
        }
        for waiter in waiting { waiter.resume() }
    }

    public func afterDelivery() async { await current.afterDelivery() }

    public func finish() async throws -> SinkSummary { try await current.finish() }

    public func summarySoFar() async -> SinkSummary { await current.summarySoFar() }

    public var statusLine: String { current.statusLine }

    public var windowCapacity: Int? { current.windowCapacity }
}
