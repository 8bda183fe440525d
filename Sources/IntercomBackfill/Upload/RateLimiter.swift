import Logging
import NIOHTTP1

/// The rate-limit headers of one answer, validated: a gateway's milliseconds become seconds, and
/// what is not a finite number (`inf`, `nan`, text) or is negative is treated as absent.
public struct RateLimitHeaders: Sendable, Equatable {
    public var limit: Int?
    public var remaining: Int?
    /// Unix seconds at which the window resets.
    public var reset: Double?
    /// Seconds the server asks us to wait (`Retry-After` as a number).
    public var retryAfter: Double?

    public init(limit: Int? = nil, remaining: Int? = nil, reset: Double? = nil, retryAfter: Double? = nil) {
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.retryAfter = retryAfter
    }

    public init(_ headers: HTTPHeaders) {
        func number(_ name: String) -> Double? {
            guard let text = headers.first(name: name), let value = Double(text.trimmingCharacters(in: .whitespaces)),
                value.isFinite
            else { return nil }
            return value
        }
        limit = number("X-RateLimit-Limit").flatMap { $0 >= 0 && $0 < 1e12 ? Int($0) : nil }
        // A negative Remaining is not a budget: ignored like text (clamped to 0 it made every
        // request wait for the window, up to --max-wait each).
        remaining = number("X-RateLimit-Remaining").flatMap { $0 >= 0 && $0 < 1e12 ? Int($0) : nil }
        // Above 10^11 a unix time is in milliseconds (the year 5138 in seconds).
        reset = number("X-RateLimit-Reset").flatMap { $0 > 0 ? ($0 > 1e11 ? $0 / 1000 : $0) : nil }
        retryAfter = number("Retry-After").flatMap { $0 >= 0 ? $0 : nil }
    }
}

/// Paces requests by what Intercom says in `X-RateLimit-*` (contract §1): never a hard-coded
/// number. Each request takes one unit of the window's remaining budget before it is sent, so
/// requests in flight are counted; at zero, callers wait until the window resets.
///
/// While the budget of the current window is unknown (at the start, and after each reset), one
/// request goes alone and the others wait for its answer: an answer's `Remaining` does not count
/// the requests sent after it, so letting them all go would spend the budget twice. Requests still
/// out from an earlier window may land in the new one, so a new window's budget is taken net of
/// them. A server that sends no rate-limit headers at all is not paced.
///
/// Every wait is finite: a reset further ahead than `maxWait` is waited for `maxWait` only (then
/// one request finds out), one in the past or missing is not waited for, and a stop ends a wait at once.
public actor RateLimiter {
    private let clock: any UploadClock
    private let stop: StopSignal
    private let maxWait: Double
    private let logger: Logger
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
    /// The window whose long wait was logged, so a wait is logged once, not by every caller.
    private var loggedWaitFor: Double = 0

    /// Units of the budget one request takes. 1 unless `learnsCost`: a bulk request may be
    /// charged per item (as Intercom users report), so it is learned from how far `Remaining`
    /// falls across the answers of one window.
    public private(set) var unitsPerRequest = 1
    private let learnsCost: Bool
    /// This window's first `Remaining`, its lowest, and the answers read when each was seen.
    private var windowFirst = 0
    private var windowLowest = 0
    private var answersAtLowest = 0
    private var windowAnswers = 0
    /// Until the cost is known, one request at a time: requests sent together before it is
    /// known would each be charged the cost while `Remaining` allowed one unit for each (the
    /// first window's `429`s). Known once two answers of one window showed `Remaining` fall; a
    /// server whose windows are too short for that, or whose `Remaining` does not fall, is paced
    /// one at a time for ten answers at most.
    private var costKnown = false
    private var answersWhileLearning = 0
    private var learningCost: Bool { learnsCost && !costKnown && answersWhileLearning < 10 }

    public init(
        clock: any UploadClock, stop: StopSignal = StopSignal(), maxWait: Double = 900, learnsCost: Bool = false,
        logger: Logger? = nil
    ) {
        self.clock = clock
        self.stop = stop
        self.maxWait = max(0, maxWait)
        self.learnsCost = learnsCost
        self.logger = logger ?? Logger(label: "intercom-backfill.rate-limit") { _ in SwiftLogNoOpLogHandler() }
    }

    /// Waits until the budget allows one more request, and takes it; false when a stop ended the wait.
    public func acquire() async -> Bool {
        while !stop.isRequested {
            let now = clock.now()
            if now >= resetAt, resetAt > 0 {
                // A new window: the budget is unknown until the next answer tells it.
                remaining = nil
                resetAt = 0
            }
            if let left = remaining {
                if left >= unitsPerRequest, learningCost, outstanding > 0 {
                    await withCheckedContinuation { probeWaiters.append($0) }
                    continue
                }
                if left >= unitsPerRequest {
                    remaining = left - unitsPerRequest
                    outstanding += 1
                    return true
                }
                let wait = resetAt - now + 0.05
                if wait > 30, loggedWaitFor != resetAt {
                    loggedWaitFor = resetAt
                    logger.notice("rate limit spent: waiting \(Int(wait)) s for the window to reset (at most --max-wait)")
                }
                guard await stop.sleep(seconds: max(0.05, wait), clock: clock) else { return false }
                continue
            }
            if headers == .absent || !probing {
                probing = probing || headers != .absent
                outstanding += 1
                return true
            }
            await withCheckedContinuation { probeWaiters.append($0) }
        }
        return false
    }

    /// Reads the headers of an answer (one call per request let through).
    public func update(_ answer: RateLimitHeaders) {
        outstanding = max(0, outstanding - 1)
        if let limit = answer.limit { self.limit = limit }
        defer { endProbe() }
        guard let remaining = answer.remaining, let reset = answer.reset else {
            if headers == .notYetSeen { headers = .absent }
            return
        }
        headers = .sent
        if learningCost { answersWhileLearning += 1 }
        let now = clock.now()
        // A reset in the past says nothing about the next window; one too far ahead is waited for maxWait only.
        guard reset > now else { return }
        let windowEnd = min(reset, now + maxWait)
        if reset > now + maxWait, remaining == 0, loggedWaitFor != windowEnd {
            loggedWaitFor = windowEnd
            logger.notice(
                "the rate limit resets in \(Int(min(reset - now, 1e12))) s; waiting --max-wait \(Int(maxWait)) s at most")
        }
        if windowEnd > resetAt {
            // A later window than we knew: its answer is the newest word on the budget, less
            // what is still out and may yet land in this window.
            resetAt = windowEnd
            self.remaining = max(0, remaining - outstanding * unitsPerRequest)
            windowFirst = remaining
            windowLowest = remaining
            windowAnswers = 1
            answersAtLowest = 1
        } else if windowEnd == resetAt {
            // Answers of one window arrive out of order: the smallest is the most recent.
            self.remaining = min(self.remaining ?? remaining, remaining)
            windowAnswers += 1
            if remaining < windowLowest {
                windowLowest = remaining
                answersAtLowest = windowAnswers
                // Between the first reading and the lowest, about one request was charged per
                // answer read; from three answers on, their average cost is the request's. Sent
                // one at a time (learning), two answers of a window tell it exactly.
                if learnsCost, answersAtLowest >= (learningCost ? 2 : 3) {
                    let perAnswer = Double(windowFirst - windowLowest) / Double(answersAtLowest - 1)
                    unitsPerRequest = max(1, Int(perAnswer.rounded()))
                    costKnown = true
                }
            }
        }
    }

    /// A request ended without an answer (dropped connection, timeout): if it was finding out
    /// the budget, the next one does.
    public func requestEndedWithoutAnswer() {
        outstanding = max(0, outstanding - 1)
        endProbe()
    }

    /// A 429: nothing more until `until` (unix seconds), at the latest `maxWait` from now, at the
    /// earliest a moment from now (a reset already past must not let a burst through).
    public func exhausted(until: Double, atLeast minimum: Double) {
        let now = clock.now()
        let end = min(max(until, now + minimum), now + maxWait)
        if end > resetAt { resetAt = end }
        remaining = 0
        endProbe()
    }

    /// The budget as known now, for the progress line.
    public var status: (remaining: Int?, limit: Int?) { (remaining, limit) }

    /// Requests waiting for an answer before they may go (tests).
    var waitingForAnAnswer: Int { probeWaiters.count }

    private func endProbe() {
        probing = false
        let waiters = probeWaiters
        probeWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }
}
