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
        await limiter.update(limit: 10, remaining: 2, reset: 1_010)
        try await limiter.acquire()
        try await limiter.acquire()
        XCTAssertEqual(clock.slept.withLock { $0 }, 0)
        try await limiter.acquire()
        XCTAssertGreaterThanOrEqual(clock.now(), 1_010, "the third request waited for the window to reset")
    }

    func test_answersOfOneWindowOutOfOrder_keepTheSmallestRemaining() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.update(limit: 10, remaining: 1, reset: 1_010)
        await limiter.update(limit: 10, remaining: 5, reset: 1_010)
        let status = await limiter.status
        XCTAssertEqual(status.remaining, 1)
    }

    func test_429_blocksUntilTheGivenTime() async throws {
        let clock = VirtualClock()
        let limiter = RateLimiter(clock: clock)
        await limiter.exhausted(until: 1_030)
        try await limiter.acquire()
        XCTAssertGreaterThanOrEqual(clock.now(), 1_030)
    }
}
