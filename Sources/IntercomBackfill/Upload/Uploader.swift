import Foundation
import Logging
import NIOCore
import Synchronization

/// How the uploader behaves (contract §1).
public struct UploadOptions: Sendable {
    /// Attempts after the first, for 429, 408, 5xx (not 501), timeouts, dropped connections and
    /// answers we did not understand.
    public var maxRetries = 8
    /// Backoff: full jitter over `min(maxBackoff, baseBackoff * 2^attempt)` seconds.
    public var baseBackoff = 0.5
    public var maxBackoff = 30.0
    /// The longest single wait a server can ask for (rate-limit reset, `Retry-After`).
    public var maxWait = 900.0
    /// How long, at the end, to wait for the run's jobs to complete and read their error feeds.
    public var jobWait = 300.0
    public var jobPollInterval = 2.0
    /// Error-feed pages read per job at most (a feed that pages forever is cut there).
    public var maxFeedPages = 1000
    /// A new job is started this long after the current one was created, well before Intercom
    /// closes it (900 s), and after this many items, which bounds what we remember per job.
    public var jobRotationSeconds = 600.0
    public var maxItemsPerJob = 10_000
    /// The API asked for (`--api-version`): carried for REST mode (contract §8.1); this release
    /// uploads with the 1.4 bulk API, which `auto` starts with.
    public var apiVersion: IntercomAPIVersion = .auto

    public init() {}
}

/// `auto` (contract §8.1): the first bulk call said this workspace has no bulk API (`400
/// intercom_version_invalid`, or `404`/`410` for the `/bulk` path). Nothing was accepted.
public struct BulkAPIUnavailable: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var code: String
    public var description: String { "the bulk API is not available (HTTP \(status) \(code))" }
}

/// Why an upload cannot go on: the run stops at once (exit 3), the checkpoint stays valid.
public struct UploadFatalError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case credentials, redirect, output }
    public var kind: Kind
    public var status: Int
    public var code: String
    public var message: String

    public init(kind: Kind = .credentials, status: Int, code: String, message: String) {
        self.kind = kind
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String {
        switch kind {
        case .credentials:
            return "Intercom refused the credentials (HTTP \(status) \(code)\(message.isEmpty ? "" : ": \(message)")). "
                + "Check INTERCOM_ACCESS_TOKEN (or INTERCOM_APP_ID/INTERCOM_API_KEY, or --token-file) and the workspace's region; "
                + "nothing was lost: run the same command again once the token is fixed."
        case .redirect:
            return "the endpoint answered HTTP \(status) with a redirect to \(message.isEmpty ? "(no Location)" : message); "
                + "redirects are never followed (the records are personal data). Check --endpoint or --region, "
                + "then run the same command again: nothing was lost."
        case .output:
            return
                "cannot write the rejects file (\(message)): stopping so that nothing is settled unwritten; free the disk and run the same command again."
        }
    }
}

/// Sends batches to Intercom's bulk endpoints within the rate limit, retrying what is transient
/// and writing down what fails. A batch counts as accepted only on a job object with a string id:
/// any other answer is retried, then written down, never taken as delivered.
public final class Uploader: Destination {
    let client: IntercomClient
    let options: UploadOptions
    let rejects: RejectsWriter
    let sources: InputRegistry
    let clock: any UploadClock
    let limiter: RateLimiter
    let backoff: RetryBackoff
    let state = UploadState()
    let stop: StopSignal
    let logger: Logger
    let tracker: CheckpointTracker?
    let progress = Mutex(UploadProgress())

    /// `sources` names the inputs, indexed like `RecordPosition.input`; `tracker` (when resuming)
    /// counts failed items per input.
    public init(
        client: IntercomClient, options: UploadOptions, rejects: RejectsWriter, sources: InputRegistry,
        clock: any UploadClock = SystemUploadClock(), stop: StopSignal, tracker: CheckpointTracker? = nil, logger: Logger
    ) {
        self.client = client
        self.options = options
        self.rejects = rejects
        self.sources = sources
        self.clock = clock
        // Bulk requests learn what they cost: a server may charge one unit per item, not per request.
        self.limiter = RateLimiter(clock: clock, stop: stop, maxWait: options.maxWait, learnsCost: true, logger: logger)
        self.backoff = RetryBackoff(options: options, limiter: limiter, clock: clock, stop: stop, logger: logger)
        self.stop = stop
        self.tracker = tracker
        self.logger = logger
    }

    // MARK: Destination

    public func register(_ batch: Batch) async {
        if batch.kind == .user { await state.userBatchStarted(batch.sequence) }
    }

    public func deliver(_ batch: Batch) async throws -> Delivery {
        let delivery: Delivery
        do {
            delivery = try await upload(batch)
        } catch {
            if batch.kind == .user { await state.userBatchSettled(batch.sequence) }
            throw error
        }
        // An abandoned users batch releases the events behind it too: they are not sent either
        // (the run is stopping), but must not wait for it.
        if batch.kind == .user { await state.userBatchSettled(batch.sequence) }
        return delivery
    }

    /// Jobs that take no more appends have their error feeds read now, not at the end, so what is
    /// kept to trace failed items stays bounded whatever the input size.
    public func afterDelivery() async {
        for job in await state.takeRetiredAndIdle() {
            await readErrorFeed(job, deadline: clock.now() + options.jobWait)
            await state.dropJob(job.id)
        }
    }

    public func finish() async throws -> SinkSummary {
        if let fatal = await state.fatal { throw fatal }
        let jobs = await state.allJobs()
        let deadline = clock.now() + (stop.isRequested ? 0 : options.jobWait)
        for job in jobs {
            await readErrorFeed(job, deadline: deadline)
            await state.dropJob(job.id)
        }
        if let fatal = await state.fatal { throw fatal }
        return await summarySoFar()
    }

    public func summarySoFar() async -> SinkSummary {
        var summary = await state.summary
        summary.api = IntercomAPIVersion.bulk.description
        return summary
    }

    public var statusLine: String {
        progress.withLock { $0.line(clock: MonotonicClock.now()) }
    }

    // MARK: One batch

    /// Sends `batch` until it is accepted or refused for good (settled), or gives it up for this
    /// run: a stop, a fatal error in another delivery, or retries spent (then written down as
    /// `upload_failed`, and sent again by the next run).
    private func upload(_ batch: Batch) async throws -> Delivery {
        if batch.kind == .event { await state.waitForUsers(before: batch.sequence) }
        var attempt = 0
        var jobRetries = 0
        while true {
            if await state.fatal != nil || Task.isCancelled { return .retryLater }
            let jobID = await state.jobForRequest(
                batch.kind, now: clock.now(), rotation: options.jobRotationSeconds, maxItems: options.maxItemsPerJob)
            let outcome = await send(batch, jobID: jobID)
            if jobID == nil {
                // This request was to open the job the others of its kind wait for.
                if case .accepted(let id) = outcome {
                    await state.jobCreated(batch.kind, id: id, at: clock.now())
                } else {
                    await state.jobCreationEnded(batch.kind)
                }
            }
            switch outcome {
            case .accepted(let id):
                await state.accepted(batch, jobID: id, fingerprints: ItemFingerprint.fromBatch(batch))
                progress.withLock { $0.items += batch.count }
                return .settled
            case .jobGone(let code):
                if let jobID { await state.jobDead(batch.kind, id: jobID) }
                jobRetries += 1
                logger.info("job \(jobID ?? "?") is \(code): sending the batch again in a new job")
                if jobRetries <= 3 { continue }
                try await fail(batch, code: "upload_failed", message: "\(code): the job closed three times in a row")
                return .retryLater
            case .fatal(let error):
                await state.setFatal(error)
                throw error
            case .rejected(let status, let code, let message):
                if options.apiVersion == .auto,
                    status == 400 && code == "intercom_version_invalid" || status == 404 || status == 410,
                    await state.nothingAcceptedYet
                {
                    throw BulkAPIUnavailable(status: status, code: code)
                }
                try await fail(batch, code: code, message: "HTTP \(status): \(message)")
                return .settled
            case .rateLimited, .transient:
                attempt += 1
                // Stopping: not sent, not failed. The checkpoint does not pass it, so a resumed run sends it again.
                if stop.isRequested || Task.isCancelled { return .retryLater }
                guard attempt <= options.maxRetries else {
                    try await fail(batch, code: "upload_failed", message: "gave up after \(attempt) attempts: \(outcome)")
                    return .retryLater
                }
                await state.countRetry()
                logger.debug("retrying a batch", metadata: ["attempt": "\(attempt)", "why": "\(outcome)"])
                guard await backoff.wait(attempt: attempt, until: outcome.waitUntil) else { return .retryLater }
            }
        }
    }

    /// One request: rate budget, the call, and what its answer means.
    private func send(_ batch: Batch, jobID: String?) async -> Outcome {
        guard await limiter.acquire() else { return .transient("stopping", until: nil) }
        await state.countRequest()
        progress.withLock {
            $0.requests += 1
            $0.inFlight += 1
        }
        defer { progress.withLock { $0.inFlight -= 1 } }
        let outcome: Outcome
        do {
            let response = try await client.post(batch.kind.path, body: Self.requestBody(batch, jobID: jobID))
            let headers = RateLimitHeaders(response.headers)
            await limiter.update(headers)
            if let remaining = headers.remaining { progress.withLock { $0.budget = (remaining, headers.limit) } }
            outcome = Outcome(response, namedJob: jobID != nil, headers: headers, now: clock.now())
        } catch {
            await limiter.requestEndedWithoutAnswer()
            outcome = .transient("\(error)", until: nil)
        }
        if let jobID { await state.requestDone(job: jobID) }
        return outcome
    }

    /// `{"items":[...],"job":{"id":"..."}}`
    static func requestBody(_ batch: Batch, jobID: String?) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(batch.items.count + 64)
        buffer.writeStaticString("{\"items\":[")
        buffer.writeBytes(batch.items)
        buffer.writeStaticString("]")
        if let jobID {
            var quoted: [UInt8] = []
            var copy = jobID
            copy.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &quoted) }
            buffer.writeStaticString(",\"job\":{\"id\":")
            buffer.writeBytes(quoted)
            buffer.writeStaticString("}")
        }
        buffer.writeStaticString("}")
        return buffer
    }

    /// Writes every item of the batch to the rejects file with `code` (contract §1: other 4xx,
    /// or retries exhausted), and counts them as failed. Not written down means not settled: an
    /// unwritable rejects file ends the run, and a rerun sends the batch again.
    private func fail(_ batch: Batch, code: String, message: String) async throws {
        logger.warning("\(batch.count) \(batch.kind.dataType) items not uploaded: \(code): \(message)")
        var writeError: (any Error)?
        ItemScanner.forEachItemData(batch.items) { index, data in
            let position = batch.positions[index]
            guard writeError == nil else { return }
            do {
                try rejects.write(
                    source: sources.name(of: position.input), line: position.line, reason: code, detail: message, record: data)
                tracker?.failed(at: position, code: code)
            } catch {
                writeError = error
            }
        }
        if let writeError {
            let fatal = UploadFatalError(kind: .output, status: 0, code: "rejects_unwritable", message: "\(writeError)")
            await state.setFatal(fatal)
            throw fatal
        }
        await state.failed(batch, code: code)
    }
}

/// What an answer to a bulk request means.
enum Outcome: CustomStringConvertible {
    case accepted(jobID: String)
    case jobGone(String)
    case fatal(UploadFatalError)
    case rejected(status: Int, code: String, message: String)
    case rateLimited(until: Double)
    /// Worth another attempt; `until`, when the server said how long to wait.
    case transient(String, until: Double?)

    /// When the server said the next attempt may go (unix seconds).
    var waitUntil: Double? {
        switch self {
        case .rateLimited(let until): return until
        case .transient(_, let until): return until
        default: return nil
        }
    }

    var description: String {
        switch self {
        case .accepted: return "accepted"
        case .jobGone(let code): return code
        case .fatal(let e): return e.description
        case .rejected(let status, let code, _): return "HTTP \(status) \(code)"
        case .rateLimited: return "HTTP 429 rate limited"
        case .transient(let why, _): return why
        }
    }

    /// Only a job object with a string id is acceptance (contract §1): a 2xx with HTML, `{}`,
    /// `[]`, no body or a numeric id is an answer we did not understand, retried as `invalid_response`.
    init(_ response: IntercomResponse, namedJob: Bool, headers: RateLimitHeaders, now: Double) {
        let status = response.status
        if response.isSuccess {
            let object = response.jsonObject
            if let id = object?["id"] as? String, !id.isEmpty, id.utf8.count <= 256,
                (object?["type"] as? String).map({ $0 == "job" }) ?? true
            {
                self = .accepted(jobID: id)
            } else {
                self = .transient("invalid_response: HTTP \(status) without a job object (\(response.bodyExcerpt))", until: nil)
            }
            return
        }
        if response.isRedirect {
            self = .fatal(
                UploadFatalError(
                    kind: .redirect, status: status, code: "redirect", message: response.headers.first(name: "Location") ?? ""))
            return
        }
        let error = response.firstError
        let code = error?.code ?? "http_\(status)"
        let message = error?.message ?? ""
        switch status {
        case 401, 403:
            self = .fatal(UploadFatalError(status: status, code: code, message: message))
        // The job condition on both statuses: a `where` after `404, 422` would guard only the 422,
        // and every 404 (a wrong path, not a job) would be taken for a closed job.
        case 404 where namedJob && (code == "job_closed" || code == "job_not_found"),
            422 where namedJob && (code == "job_closed" || code == "job_not_found"):
            self = .jobGone(code)
        case 429:
            self = .rateLimited(until: headers.retryAfter.map { now + $0 } ?? headers.reset ?? now)
        case 408, 500, 502...599:
            self = .transient("HTTP \(status) \(code)", until: headers.retryAfter.map { now + $0 })
        default:
            self = .rejected(status: status, code: code, message: message)
        }
    }
}

/// Numbers for the progress line, updated by the deliveries.
struct UploadProgress {
    var items = 0
    var requests = 0
    var inFlight = 0
    var budget: (remaining: Int, limit: Int?)?
    let started = MonotonicClock.now()

    func line(clock now: Double) -> String {
        let elapsed = max(0.001, now - started)
        var text =
            "\(items) items uploaded (\(Int(Double(items) / elapsed))/s), \(Int(Double(requests) / elapsed)) requests/s, \(inFlight) in flight"
        if let budget { text += ", rate budget \(budget.remaining)" + (budget.limit.map { "/\($0)" } ?? "") }
        return text
    }
}
