/// Paces requests by what Intercom says in `X-RateLimit-*` (contract §1): never a hard-coded
/// number. Each request takes one unit of the window's remaining budget before it is sent, so
/// requests in flight are counted; at zero, callers wait until the window resets.
public actor RateLimiter {
    private let clock: any UploadClock
    /// The budget left in the current window, as far as we know (nil: unknown, go ahead).
    private var remaining: Int?
    /// Unix seconds at which the current window ends.
    private var resetAt: Double = 0
    public private(set) var limit: Int?

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
            guard let left = remaining, left <= 0 else {
                if let left = remaining { remaining = left - 1 }
                return
            }
            try await clock.sleep(seconds: max(0.05, resetAt - now + 0.05))
        }
    }

    /// Reads the headers of an answer.
    public func update(limit: Int?, remaining: Int?, reset: Double?) {
        if let limit { self.limit = limit }
        guard let remaining, let reset else { return }
        if reset > resetAt {
            // A later window than we knew: its answer is the newest word on the budget.
            resetAt = reset
            self.remaining = remaining
        } else if reset == resetAt {
            // Answers of one window arrive out of order: the smallest is the most recent.
            self.remaining = min(self.remaining ?? remaining, remaining)
        }
    }

    /// A 429: nothing more until `until` (unix seconds).
    public func exhausted(until: Double) {
        if until > resetAt { resetAt = until }
        remaining = 0
    }

    /// The budget as known now, for the progress line.
    public var status: (remaining: Int?, limit: Int?) { (remaining, limit) }
}
