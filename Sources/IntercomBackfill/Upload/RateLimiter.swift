/// Paces requests by what Intercom says in `X-RateLimit-*` (contract §1): never a hard-coded
/// number. Each request takes one unit of the window's remaining budget before it is sent, so
/// requests in flight are counted; at zero, callers wait until the window resets.
///
/// While the budget of the current window is unknown (at the start, and after each reset), one
/// request goes alone and the others wait for its answer: an answer's `Remaining` does not count
/// the requests sent after it, so letting them all go would spend the budget twice. Requests still
/// out from an earlier window may land in the new one, so a new window's budget is taken net of
/// them. A server that sends no rate-limit headers at all is not paced.
public actor RateLimiter {
    private let clock: any UploadClock
    /// The budget left in the current window, as far as we know (nil: unknown).
    private var remaining: Int?
    /// Unix seconds at which the current window ends.
    private var resetAt: Double = 0
    public private(set) var limit: Int?

    private enum Headers { case notYetSeen, sent, absent }
    private var headers = Headers.notYetSeen
    /// A request is out to learn the unknown budget; the others wait for its answer.
    private var probing = false
    private var probeWaiters: [CheckedContinuation<Void, Never>] = []
    /// Requests let through whose answer has not been read yet.
    private var outstanding = 0

    public init(clock: any UploadClock) {
        self.clock = clock
    }

    /// Waits until the budget allows one more request, and takes it.
    public func acquire() async throws {
        while true {
            let now = clock.now()
            if now >= resetAt, resetAt > 0 {
                // A new window: the budget is unknown until the next answer tells it.
                remaining = nil
                resetAt = 0
            }
            if let left = remaining {
                if left > 0 {
                    remaining = left - 1
                    outstanding += 1
                    return
                }
                try await clock.sleep(seconds: max(0.05, resetAt - now + 0.05))
                continue
            }
            if headers == .absent {
                outstanding += 1
                return
            }
            if !probing {
                probing = true
                outstanding += 1
                return
            }
            await withCheckedContinuation { probeWaiters.append($0) }
        }
    }

    /// Reads the headers of an answer (one call per request let through).
    public func update(limit: Int?, remaining: Int?, reset: Double?) {
        outstanding = max(0, outstanding - 1)
        if let limit { self.limit = limit }
        defer { endProbe() }
        guard let remaining, let reset else {
            if headers == .notYetSeen { headers = .absent }
            return
        }
        headers = .sent
        if reset > resetAt {
            // A later window than we knew: its answer is the newest word on the budget, less
            // what is still out and may yet land in this window.
            resetAt = reset
            self.remaining = max(0, remaining - outstanding)
        } else if reset == resetAt {
            // Answers of one window arrive out of order: the smallest is the most recent.
            self.remaining = min(self.remaining ?? remaining, remaining)
        }
    }

    /// A request ended without an answer (dropped connection, timeout): if it was finding out
    /// the budget, the next one does.
    public func requestEndedWithoutAnswer() {
        outstanding = max(0, outstanding - 1)
        endProbe()
    }

    /// A 429: nothing more until `until` (unix seconds).
    public func exhausted(until: Double) {
        if until > resetAt { resetAt = until }
        remaining = 0
        endProbe()
    }

    /// The budget as known now, for the progress line.
    public var status: (remaining: Int?, limit: Int?) { (remaining, limit) }

    private func endProbe() {
        probing = false
        let waiters = probeWaiters
        probeWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }
}
