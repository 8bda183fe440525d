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
        let (unit, wake): (Batch??, Bool) = state.withLock { take(&$0) }
        if wake { signalSpace() }
        if let unit { return unit }
        return await withCheckedContinuation { continuation in
            let (immediate, wake): (Batch??, Bool) = state.withLock { state in
                let taken = take(&state)
                if taken.unit == nil { state.receiver = continuation }
                return taken
            }
            if wake { signalSpace() }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// The next unit when one is there (`.some(nil)`: the end), nil when the consumer must wait;
    /// and whether to wake the reader. It is woken only once the buffer is half empty, so a full
    /// channel does not cost two thread switches a batch. (The reader is signalled outside the
    /// state lock: it takes the two locks in the other order.)
    private func take(_ state: inout State) -> (unit: Batch??, wake: Bool) {
        if state.cancelled { return (.some(nil), false) }
        if !state.buffer.isEmpty {
            let unit = state.buffer.removeFirst()
            return (.some(unit), state.buffer.count <= capacity / 2)
        }
        if state.finished { return (.some(nil), false) }
        return (nil, false)
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
