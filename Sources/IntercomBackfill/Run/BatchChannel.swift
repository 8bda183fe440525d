import Foundation
import Synchronization

/// The bounded hand-over from the reading thread to the uploading tasks: the reader blocks when
/// `capacity` units wait (memory stays flat when the network is slow); the consumer suspends
/// when none does. Either side can end it: the reader with `finish()`, the consumer with
/// `cancel()`, after which `send` returns false and the reader stops.
final class BatchChannel: Sendable {
    private struct State {
        var buffer: [Batch] = []
        var finished = false
        var cancelled = false
        var receiver: CheckedContinuation<Batch?, Never>?
    }

    private let capacity: Int
    private let state = Mutex(State())
    /// Wakes the blocked reader; a condition variable because the reader is a thread, not a task.
    private let space = NSCondition()

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Reader side (blocking): hands over one unit; false once the consumer cancelled.
    func send(_ unit: Batch) -> Bool {
        space.lock()
        defer { space.unlock() }
        while true {
            let outcome: (accepted: Bool, wake: CheckedContinuation<Batch?, Never>?)? = state.withLock { state in
                if state.cancelled { return (false, nil) }
                if let receiver = state.receiver {
                    state.receiver = nil
                    return (true, receiver)
                }
                guard state.buffer.count < capacity else { return nil }
                state.buffer.append(unit)
                return (true, nil)
            }
            if let outcome {
                outcome.wake?.resume(returning: unit)
                return outcome.accepted
            }
            space.wait()
        }
    }

    /// Reader side: no more units.
    func finish() {
        let receiver = state.withLock { state in
            state.finished = true
            defer { state.receiver = nil }
            return state.buffer.isEmpty ? state.receiver : nil
        }
        receiver?.resume(returning: nil)
    }

    /// Consumer side: the next unit, or nil when the reader finished (or the channel was cancelled).
    func next() async -> Batch? {
        let unit: Batch?? = state.withLock { state in
            if state.cancelled { return .some(nil) }
            if !state.buffer.isEmpty { return .some(state.buffer.removeFirst()) }
            if state.finished { return .some(nil) }
            return nil
        }
        if let unit {
            signalSpace()
            return unit
        }
        return await withCheckedContinuation { continuation in
            let immediate: Batch?? = state.withLock { state in
                if state.cancelled { return .some(nil) }
                if !state.buffer.isEmpty { return .some(state.buffer.removeFirst()) }
                if state.finished { return .some(nil) }
                state.receiver = continuation
                return nil
            }
            if let immediate {
                continuation.resume(returning: immediate)
                signalSpace()
            }
        }
    }

    /// Consumer side: take nothing more; the reader's next `send` returns false.
    func cancel() {
        let receiver = state.withLock { state in
            state.cancelled = true
            state.buffer.removeAll()
            defer { state.receiver = nil }
            return state.receiver
        }
        receiver?.resume(returning: nil)
        signalSpace()
    }

    private func signalSpace() {
        space.lock()
        space.signal()
        space.unlock()
    }
}
