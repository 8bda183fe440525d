import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One 2.x call (contract §8.2).
public struct RESTCall: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var body: [UInt8]?
    /// The call without its ids ("PUT /contacts/{id}"): how the report counts calls.
    public var endpoint: String

    public init(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, endpoint: String) {
        self.method = method
        self.path = path
        self.body = body
        self.endpoint = endpoint
    }
}

/// Where REST calls go: Intercom over HTTP, or the dry-run writer that answers as a workspace
/// that knows nobody would.
public protocol RESTTransport: Sendable {
    func send(_ call: RESTCall) async throws -> IntercomResponse
}

extension IntercomClient: RESTTransport {
    public func send(_ call: RESTCall) async throws -> IntercomResponse {
        try await request(call.method, call.path, body: call.body.map { ByteBuffer(bytes: $0) })
    }
}

/// What a call came to, once retries are behind it.
enum RESTResult: Sendable {
    /// A 2xx whose body the caller understood.
    case ok(IntercomResponse)
    /// A 4xx that is the answer (not found, conflict, refused): the caller decides what it means.
    case refused(status: Int, code: String, message: String)
    /// Not done in this run: retries spent, or the run is stopping.
    case gaveUp(String)
}

/// Counts of the calls made, for the report.
struct RESTCallCounts: Sendable {
    var byEndpoint: [String: Int] = [:]
    var total = 0
    var retries = 0
    var rateLimited = 0
}

/// Makes calls within the rate budget and the adaptive in-flight limit, retrying what is
/// transient (429, 408, 5xx, timeouts, dropped connections, a 2xx we did not understand), as §1
/// says for the bulk API. 401/403 and redirects end the run.
final class RESTCaller: Sendable {
    let transport: any RESTTransport
    let options: UploadOptions
    let limiter: RateLimiter
    let concurrency: AdaptiveConcurrency
    let backoff: RetryBackoff
    let clock: any UploadClock
    let stop: StopSignal
    let logger: Logger
    let counts = Mutex(RESTCallCounts())

    init(
        transport: any RESTTransport, options: UploadOptions, maxConcurrency: Int, clock: any UploadClock, stop: StopSignal,
        logger: Logger
    ) {
        self.transport = transport
        self.options = options
        self.clock = clock
        self.stop = stop
        self.logger = logger
        limiter = RateLimiter(clock: clock, stop: stop, maxWait: options.maxWait, logger: logger)
        concurrency = AdaptiveConcurrency(initial: min(4, maxConcurrency), maximum: maxConcurrency)
        backoff = RetryBackoff(options: options, limiter: limiter, clock: clock, stop: stop, logger: logger)
    }

    /// Sends `call` until it is answered for good. `understood` says whether a 2xx body is an
    /// answer to this call (a contact with an id, ...): one that is not is retried as `invalid_response`.
    func call(_ call: RESTCall, understood: (IntercomResponse) -> Bool = { _ in true }) async throws -> RESTResult {
        var attempt = 0
        while true {
            if stop.isRequested || Task.isCancelled { return .gaveUp("stopping") }
            let (outcome, waitUntil) = try await once(call, understood: understood)
            if let outcome { return outcome }
            attempt += 1
            if stop.isRequested || Task.isCancelled { return .gaveUp("stopping") }
            guard attempt <= options.maxRetries else {
                return .gaveUp("gave up after \(attempt) attempts of \(call.endpoint)")
            }
            counts.withLock { $0.retries += 1 }
            guard await backoff.wait(attempt: attempt, until: waitUntil) else { return .gaveUp("stopping") }
        }
    }

    /// One attempt: the result, or nil with when the server said the next attempt may go.
    private func once(_ call: RESTCall, understood: (IntercomResponse) -> Bool) async throws -> (RESTResult?, Double?) {
        await concurrency.acquire()
        guard await limiter.acquire() else {
            await concurrency.release(rtt: 0, backPressure: false, now: MonotonicClock.now())
            return (.gaveUp("stopping"), nil)
        }
        counts.withLock {
            $0.total += 1
            $0.byEndpoint[call.endpoint, default: 0] += 1
        }
        let started = MonotonicClock.now()
        let response: IntercomResponse
        do {
            response = try await transport.send(call)
        } catch {
            await limiter.requestEndedWithoutAnswer()
            await concurrency.release(rtt: MonotonicClock.now() - started, backPressure: true, now: MonotonicClock.now())
            logger.debug("a call ended without an answer", metadata: ["call": "\(call.endpoint)", "error": "\(error)"])
            return (nil, nil)
        }
        let ended = MonotonicClock.now()
        let headers = RateLimitHeaders(response.headers)
        await limiter.update(headers)
        let now = clock.now()
        let status = response.status
        let pushedBack = status == 429 || status == 408 || status >= 500
        await concurrency.release(rtt: ended - started, backPressure: pushedBack, now: ended)
        if response.isSuccess {
            if understood(response) { return (.ok(response), nil) }
            logger.debug("invalid_response: HTTP \(status) to \(call.endpoint) (\(response.bodyExcerpt))")
            return (nil, nil)
        }
        if response.isRedirect {
            throw UploadFatalError(
                kind: .redirect, status: status, code: "redirect", message: response.headers.first(name: "Location") ?? "")
        }
        let error = response.firstError
        let code = error?.code ?? "http_\(status)"
        switch status {
        case 401, 403:
            throw UploadFatalError(status: status, code: code, message: error?.message ?? "")
        case 429:
            counts.withLock { $0.rateLimited += 1 }
            return (nil, headers.retryAfter.map { now + $0 } ?? headers.reset ?? now)
        case 408, 500, 502...599:
            return (nil, headers.retryAfter.map { now + $0 })
        default:
            return (.refused(status: status, code: code, message: error?.message ?? ""), nil)
        }
    }
}

extension IntercomResponse {
    /// `POST /events` answers `202` with an empty body. A body that is not JSON (a proxy's or a
    /// captive portal's page) is not Intercom's: taken as acknowledged, the event would be lost.
    var acknowledgesEvent: Bool { body.readableBytes == 0 || jsonObject != nil }

    /// The `id` of a JSON object answer (a contact, a company), if it is a usable string.
    var objectID: String? {
        guard let id = jsonObject?["id"] as? String, !id.isEmpty, id.utf8.count <= 256 else { return nil }
        return id
    }
}
