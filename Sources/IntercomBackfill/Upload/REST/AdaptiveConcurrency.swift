/// How many REST calls may be in flight, adapted to what the server shows (AIMD, as Vector's
/// adaptive request concurrency does): REST calls are small and many, and at real latencies a
/// fixed `--concurrency 4` cannot fill Intercom's budget (Little's law: 166 calls/s at 200 ms
/// needs 33 in flight). The limit grows by about one per round trip while latency stays near
/// its average, and halves on back-pressure (a 429, a 5xx, a timeout), at most once a round trip.
/// The rate-limit budget is kept apart, by `RateLimiter`: this only decides parallelism.
actor AdaptiveConcurrency {
    let maximum: Int
    private(set) var limit: Double
    private(set) var peak: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Moving average of round trips that were not back-pressure.
    private var meanRTT: Double?
    private var lastDecrease = -Double.infinity

    init(initial: Int = 4, maximum: Int) {
        self.maximum = max(1, maximum)
        limit = Double(min(max(1, initial), self.maximum))
        peak = Int(limit)
    }

    func acquire() async {
        if inFlight < Int(limit) {
            inFlight += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// A call ended; `rtt` its round trip in seconds, `backPressure` whether the server pushed back.
    func release(rtt: Double, backPressure: Bool, now: Double) {
        if backPressure {
            if now - lastDecrease > (meanRTT ?? 0) {
                limit = max(1, limit / 2)
                lastDecrease = now
            }
        } else {
            let mean = meanRTT ?? rtt
            if rtt <= mean * 1.5 + 0.005 { limit = min(Double(maximum), limit + 1 / limit) }
            meanRTT = mean * 0.9 + rtt * 0.1
        }
        peak = max(peak, Int(limit))
        inFlight -= 1
        wakeWaiters()
    }

    private func wakeWaiters() {
        while inFlight < Int(limit), !waiters.isEmpty {
            inFlight += 1
            waiters.removeFirst().resume()
        }
        while operations < Int(limit), !operationWaiters.isEmpty {
            operations += 1
            operationWaiters.removeFirst().resume()
        }
    }

    // MARK: operations

    /// Operations running (each makes its calls one after another).
    private var operations = 0
    private var operationWaiters: [CheckedContinuation<Void, Never>] = []

    /// Admits an operation to start while fewer run than the call limit: one that cannot start
    /// yet stays open, so a later update of the same contact merges into it instead of costing
    /// a call of its own (contract §8.4). Older operations go first. (Kept in this actor, with
    /// the limit it reads, so no check and wait can be split by a suspension and miss a wake-up.)
    func enterOperation() async {
        if operationWaiters.isEmpty, operations < Int(limit) {
            operations += 1
            return
        }
        await withCheckedContinuation { operationWaiters.append($0) }
    }

    func leaveOperation() {
        operations -= 1
        wakeWaiters()
    }

    var current: Int { Int(limit) }
}
