import NIOHTTP1
import Synchronization
import XCTest

@testable import IntercomBackfill

/// A virtual clock: sleeping moves time forward at once.
final class VirtualClock: UploadClock {
    let time = Mutex(1_000.0)
    let slept = Mutex(0.0)
    func now() -> Double { time.withLock { $0 } }
    func sleep(seconds: Double) async throws {
        time.withLock { $0 += seconds }
        slept.withLock { $0 += seconds }
    }
}

final class RateLimiterTests: XCTestCase {
    func test_goesAheadWhileBudgetRemains_thenWaitsForTheReset() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.update(RateLimitHeaders(limit: 10, remaining: 2, reset: 1_010))
        _ = await limiter.acquire()
        _ = await limiter.acquire()
        XCTAssertEqual(clock.slept.withLock { $0 }, 0)
        _ = await limiter.acquire()
        XCTAssertGreaterThanOrEqual(clock.now(), 1_010, "the third request waited for the window to reset")
    }

    /// A server that charges 100 units a request (one per bulk item): after three answers the
    /// limiter takes 100 units a request, so the 700 units left let 7 requests go, not 700.
    func test_learnsCost_fromTheFallOfRemaining_thenPacesByIt() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock, learnsCost: true)
        for remaining in [900, 800, 700] {
            _ = await limiter.acquire()
            await limiter.update(RateLimitHeaders(limit: 1000, remaining: remaining, reset: 1_010))
        }
        let learned = await limiter.unitsPerRequest
        XCTAssertEqual(learned, 100)
        for _ in 0..<7 { _ = await limiter.acquire() }
        XCTAssertEqual(clock.slept.withLock { $0 }, 0, "seven requests of 100 fit in 700")
        _ = await limiter.acquire()
        XCTAssertGreaterThanOrEqual(clock.now(), 1_010, "the eighth waited for the window to reset")
    }

    /// Until the cost is known, a request waits for the answer of the one in flight, though
    /// `Remaining` would allow it; once two answers of a window told the cost, requests overlap.
    func test_learnsCost_aRequestWaitsForTheAnswerInFlight_untilTheCostIsKnown() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock, learnsCost: true)
        _ = await limiter.acquire()  // the budget is unknown: this one finds it out
        await limiter.update(RateLimitHeaders(limit: 300, remaining: 200, reset: 1_010))
        _ = await limiter.acquire()
        let wentAhead = Mutex(false)
        let waiting = Task {
            _ = await limiter.acquire()
            wentAhead.withLock { $0 = true }
        }
        // Until it either went ahead or waits (no sleep: only turns of the scheduler).
        while !wentAhead.withLock({ $0 }), await limiter.waitingForAnAnswer == 0 { await Task.yield() }
        XCTAssertFalse(wentAhead.withLock { $0 }, "a second request went while the first was out")
        await limiter.update(RateLimitHeaders(limit: 300, remaining: 100, reset: 1_010))
        await waiting.value
        await limiter.update(RateLimitHeaders(limit: 300, remaining: 0, reset: 1_010))
        let learned = await limiter.unitsPerRequest
        XCTAssertEqual(learned, 100, "two answers of one window, one request apart")
        // Known now: with 300 units in the next window, three requests go together.
        clock.time.withLock { $0 = 1_011 }
        _ = await limiter.acquire()
        await limiter.update(RateLimitHeaders(limit: 300, remaining: 300, reset: 1_020))
        for _ in 0..<3 { _ = await limiter.acquire() }
        let slept = clock.slept.withLock { $0 }
        XCTAssertEqual(slept, 0, "three requests of 100 in 300 went at once")
        let waiters = await limiter.waitingForAnAnswer
        XCTAssertEqual(waiters, 0)
    }

    /// Four requests at a time against a server that charges 100 units a request out of 300 a
    /// window (a bulk API that charges per item): until the cost is known they go one at a time,
    /// so none is answered 429 (sent together, each took one unit of a `Remaining` of 200).
    func test_learnsCost_oneRequestAtATimeUntilKnown_soNoneIsAnswered429() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock, learnsCost: true)
        let server = PerRequestCostServer(clock: clock, unitsPerWindow: 300, cost: 100)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<6 {
                        guard await limiter.acquire() else { return }
                        await limiter.update(await server.charge())
                    }
                }
            }
        }
        let (accepted, refused) = await (server.accepted, server.refused)
        XCTAssertEqual(refused, 0, "requests answered 429")
        XCTAssertEqual(accepted, 24)
        let learned = await limiter.unitsPerRequest
        XCTAssertEqual(learned, 100)
    }

    /// Without `learnsCost` (REST calls cost one unit each) a request takes one unit, however far
    /// Remaining falls between answers.
    func test_withoutLearnsCost_aRequestTakesOneUnit() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        for remaining in [900, 800, 700] {
            _ = await limiter.acquire()
            await limiter.update(RateLimitHeaders(limit: 1000, remaining: remaining, reset: 1_010))
        }
        let units = await limiter.unitsPerRequest
        XCTAssertEqual(units, 1)
    }

    func test_answersOfOneWindowOutOfOrder_keepTheSmallestRemaining() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.update(RateLimitHeaders(limit: 10, remaining: 1, reset: 1_010))
        await limiter.update(RateLimitHeaders(limit: 10, remaining: 5, reset: 1_010))
        let status = await limiter.status
        XCTAssertEqual(status.remaining, 1)
    }

    func test_429_blocksUntilTheGivenTime() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.exhausted(until: 1_030, atLeast: 0)
        _ = await limiter.acquire()
        XCTAssertGreaterThanOrEqual(clock.now(), 1_030)
    }

    func test_headersThatAreNotFiniteNumbers_areAbsent_millisecondsBecomeSeconds() {
        var headers = HTTPHeaders()
        headers.add(name: "X-RateLimit-Limit", value: "inf")
        headers.add(name: "X-RateLimit-Remaining", value: "-3")
        headers.add(name: "X-RateLimit-Reset", value: "1700000000000")
        headers.add(name: "Retry-After", value: "nan")
        let parsed = RateLimitHeaders(headers)
        XCTAssertNil(parsed.limit)
        XCTAssertNil(parsed.remaining, "a negative Remaining is no budget: ignored, not a wait for the window")
        XCTAssertEqual(parsed.reset, 1_700_000_000)
        XCTAssertNil(parsed.retryAfter)
        var past = HTTPHeaders()
        past.add(name: "X-RateLimit-Reset", value: "0")
        past.add(name: "Retry-After", value: "1e300")
        XCTAssertNil(RateLimitHeaders(past).reset)
        XCTAssertEqual(RateLimitHeaders(past).retryAfter, 1e300, "kept: the waits clamp it")
    }

    func test_aResetFarAhead_isWaitedForMaxWaitOnly() async {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock, maxWait: 60)
        await limiter.update(RateLimitHeaders(limit: 10, remaining: 0, reset: 1_000 + 86_400))
        _ = await limiter.acquire()
        XCTAssertLessThanOrEqual(clock.now(), 1_000 + 61, "a day ahead is cut to --max-wait")
    }

    func test_a429WithAResetInThePast_stillWaitsAMoment_neverForever() async {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock, maxWait: 60)
        await limiter.exhausted(until: 0, atLeast: 2)
        let acquired = await limiter.acquire()
        XCTAssertTrue(acquired)
        XCTAssertGreaterThanOrEqual(clock.now(), 1_002, "a burst of 429s backs off")
        XCTAssertLessThan(clock.now(), 1_010)
    }

    func test_aStopEndsARateLimitWaitAtOnce() async {
        let clock = VirtualClock()
        let stop = StopSignal()
        let limiter = RateLimiter(clock: clock, stop: stop, maxWait: 900)
        await limiter.exhausted(until: 1_500, atLeast: 0)
        stop.request(signal: SIGTERM)
        let acquired = await limiter.acquire()
        XCTAssertFalse(acquired)
        XCTAssertEqual(clock.slept.withLock { $0 }, 0)
    }
}

/// A rate-limited server that charges `cost` units a request out of `unitsPerWindow` a 10-second
/// window of `clock`, and answers with the `X-RateLimit-*` it would send (Remaining 0 on a 429).
actor PerRequestCostServer {
    let clock: VirtualClock
    let unitsPerWindow: Int
    let cost: Int
    private var window = -1.0
    private var remaining = 0
    private(set) var accepted = 0
    private(set) var refused = 0

    init(clock: VirtualClock, unitsPerWindow: Int, cost: Int) {
        self.clock = clock
        self.unitsPerWindow = unitsPerWindow
        self.cost = cost
    }

    func charge() -> RateLimitHeaders {
        let start = (clock.now() / 10).rounded(.down) * 10
        if start != window { (window, remaining) = (start, unitsPerWindow) }
        if remaining >= cost {
            remaining -= cost
            accepted += 1
        } else {
            refused += 1
        }
        return RateLimitHeaders(limit: unitsPerWindow, remaining: remaining, reset: window + 10)
    }
}
