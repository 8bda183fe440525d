import Foundation
import Logging

/// The wait before another attempt, the same for the bulk and the REST uploader: full jitter
/// over `min(maxBackoff, baseBackoff * 2^(attempt-1))`, and never less than a rate-limited
/// answer asked for (clamped to `maxWait`); a 429 whose reset is already past still backs off.
struct RetryBackoff: Sendable {
    let options: UploadOptions
    let limiter: RateLimiter
    let clock: any UploadClock
    let stop: StopSignal
    let logger: Logger

    /// False when a stop ended the wait.
    func wait(attempt: Int, until: Double?) async -> Bool {
        let ceiling = min(options.maxBackoff, options.baseBackoff * pow(2, Double(attempt - 1)))
        var wait = Double.random(in: 0...ceiling)
        if let until {
            let askedFor = until - clock.now()
            if askedFor > options.maxWait {
                logger.notice(
                    "the server asks to wait \(Int(min(askedFor, 1e12))) s; waiting --max-wait \(Int(options.maxWait)) s at most")
            }
            let asked = min(options.maxWait, askedFor)
            if asked > wait { wait = asked }
            await limiter.exhausted(until: until, atLeast: wait)
        }
        if wait > 30 { logger.notice("waiting \(Int(wait)) s before retrying (the server asked for it; at most --max-wait)") }
        return await stop.sleep(seconds: wait, clock: clock)
    }
}
