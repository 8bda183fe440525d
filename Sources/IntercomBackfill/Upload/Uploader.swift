import Foundation
import Logging
import NIOCore
import Synchronization

/// How the uploader behaves (issue 5 and contract §1).
public struct UploadOptions: Sendable {
    /// Requests in flight at most.
    public var concurrency = 4
    /// Attempts after the first, for 429, 408, 5xx (not 501), timeouts and dropped connections.
    public var maxRetries = 8
    /// Backoff: full jitter over `min(maxBackoff, baseBackoff * 2^attempt)` seconds.
    public var baseBackoff = 0.5
    public var maxBackoff = 30.0
    /// How long, at the end, to wait for the run's jobs to complete before reading their error feeds.
    public var jobWait = 300.0
    public var jobPollInterval = 2.0
    /// A new job is started this long after the current one was created, well before Intercom
    /// closes it (900 s), and after this many items, which bounds what we remember per job.
    public var jobRotationSeconds = 600.0
    public var maxItemsPerJob = 10_000

    public init() {}
}

/// Why an upload cannot go on: the run stops at once (exit 3), the checkpoint stays valid.
public struct UploadFatalError: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var code: String
    public var message: String

    public var description: String {
        "Intercom refused the credentials (HTTP \(status) \(code)\(message.isEmpty ? "" : ": \(message)")). "
            + "Check INTERCOM_ACCESS_TOKEN (or INTERCOM_APP_ID/INTERCOM_API_KEY, or --token-file) and the workspace's region; "
            + "nothing was lost: run the same command again once the token is fixed."
    }
}

/// Sends batches to Intercom's bulk endpoints with at most `concurrency` requests in flight,
/// within the rate limit, retrying what is transient and writing down what fails (issue 5).
public final class Uploader: BatchSink, Sendable {
    private let client: IntercomClient
    private let options: UploadOptions
    private let rejects: RejectsWriter
    private let sources: InputRegistry
    private let clock: any UploadClock
    private let limiter: RateLimiter
    private let state: UploadState
    private let stop: StopSignal
    private let logger: Logger
    private let observer: (any SettlementObserver)?
    private let progress = Mutex(UploadProgress())

    /// `sources` names the inputs, indexed like `RecordPosition.input`.
    public init(client: IntercomClient, options: UploadOptions, rejects: RejectsWriter, sources: InputRegistry,
                clock: any UploadClock = SystemUploadClock(), stop: StopSignal = StopSignal(),
                observer: (any SettlementObserver)? = nil, logger: Logger) {
        self.client = client
        self.options = options
        self.rejects = rejects
        self.sources = sources
        self.clock = clock
        self.limiter = RateLimiter(clock: clock)
        self.state = UploadState(concurrency: options.concurrency)
        self.stop = stop
        self.observer = observer
        self.logger = logger
    }

    // MARK: BatchSink

    public func send(_ batch: Batch) async throws {
        // Jobs that take no more appends have their error feeds read now, not at the end, so
        // what is kept to trace failed items stays bounded whatever the input size.
        for job in await state.takeRetired() {
            let deadline = clock.now() + options.jobWait
            await state.addFeedReader(Task {
                await self.readErrorFeed(job, deadline: deadline)
                await self.state.dropJob(job.id)
            })
        }
        await state.acquireSlot()
        if let fatal = await state.fatal {
            await state.releaseSlot()
            throw fatal
        }
        if batch.kind == .user { await state.userBatchStarted(batch.sequence) }
        Task {
            await self.upload(batch)
            if batch.kind == .user { await self.state.userBatchSettled(batch.sequence) }
            await self.state.releaseSlot()
        }
    }

    public func finish() async throws -> SinkSummary {
        await state.waitUntilIdle()
        for reader in await state.takeFeedReaders() { await reader.value }
        if let fatal = await state.fatal { throw fatal }
        await readJobErrorFeeds()
        let unread = await state.unreadJobs
        if !unread.isEmpty {
            let jobs = await state.allJobs()
            observer?.pendingJobs(unread.map { id in PendingJob(id: id, kind: jobs.first { $0.id == id }?.kind.dataType ?? "user") })
        }
        return await state.summary
    }

    public var statusLine: String {
        progress.withLock { $0.line(clock: MonotonicClock.now()) }
    }

    // MARK: One batch

    private func upload(_ batch: Batch) async {
        if batch.kind == .event { await state.waitForUsers(before: batch.sequence) }
        if await state.fatal != nil { return }
        let path = batch.kind.path
        var attempt = 0
        var jobRetries = 0
        while true {
            let jobID = await state.jobForRequest(batch.kind, now: clock.now(), rotation: options.jobRotationSeconds, maxItems: options.maxItemsPerJob)
            let creating = jobID == nil
            let body = Self.requestBody(batch, jobID: jobID)
            let outcome: Outcome
            do {
                try await limiter.acquire()
                await state.countRequest()
                progress.withLock { $0.requests += 1; $0.inFlight += 1 }
                defer { progress.withLock { $0.inFlight -= 1 } }
                let response = try await client.post(path, body: body)
                await readRateLimit(response)
                outcome = classify(response, namedJob: jobID != nil)
            } catch {
                await limiter.requestEndedWithoutAnswer()
                outcome = .transient("\(error)")
            }
            if let jobID { await state.requestDone(job: jobID) }
            switch outcome {
            case .accepted(let newJobID):
                let id = newJobID ?? jobID
                if creating {
                    if let id { await state.jobCreated(batch.kind, id: id, at: clock.now()) } else { await state.jobCreationEnded(batch.kind) }
                }
                let fingerprints = ItemFingerprint.fromBatch(batch)
                await state.accepted(batch, jobID: id, fingerprints: fingerprints)
                observer?.settled(batch)
                progress.withLock { $0.items += batch.count }
                return
            case .jobGone(let code):
                if creating { await state.jobCreationEnded(batch.kind) }
                if let jobID { await state.jobDead(batch.kind, id: jobID) }
                jobRetries += 1
                logger.info("job \(jobID ?? "?") is \(code): sending the batch again in a new job")
                if jobRetries <= 3 { continue }
                await fail(batch, code: code, message: "the job closed three times in a row")
                return
            case .fatal(let error):
                if creating { await state.jobCreationEnded(batch.kind) }
                await state.setFatal(error)
                return
            case .rejected(let status, let code, let message):
                if creating { await state.jobCreationEnded(batch.kind) }
                await fail(batch, code: code, message: "HTTP \(status): \(message)")
                return
            case .rateLimited(let until):
                if creating { await state.jobCreationEnded(batch.kind) }
                await limiter.exhausted(until: until)
                fallthrough
            case .transient:
                if creating, case .transient = outcome { await state.jobCreationEnded(batch.kind) }
                attempt += 1
                if stop.isRequested {
                    // Stopping: not sent, not failed. The checkpoint does not pass it, so a
                    // resumed run sends it again.
                    await state.abandoned(batch)
                    return
                }
                guard attempt <= options.maxRetries else {
                    await fail(batch, code: "upload_failed", message: "gave up after \(attempt) attempts: \(outcome)")
                    return
                }
                await state.countRetry()
                if case .transient(let why) = outcome {
                    logger.debug("retrying a batch", metadata: ["attempt": "\(attempt)", "why": "\(why)"])
                    let ceiling = min(options.maxBackoff, options.baseBackoff * pow(2, Double(attempt - 1)))
                    try? await clock.sleep(seconds: Double.random(in: 0...ceiling))
                }
            }
        }
    }

    enum Outcome: CustomStringConvertible {
        case accepted(jobID: String?)
        case jobGone(String)
        case fatal(UploadFatalError)
        case rejected(status: Int, code: String, message: String)
        case rateLimited(until: Double)
        case transient(String)

        var description: String {
            switch self {
            case .accepted: return "accepted"
            case .jobGone(let code): return code
            case .fatal(let e): return e.description
            case .rejected(let status, let code, _): return "HTTP \(status) \(code)"
            case .rateLimited: return "HTTP 429 rate limited"
            case .transient(let why): return why
            }
        }
    }

    private func classify(_ response: IntercomResponse, namedJob: Bool) -> Outcome {
        let status = response.status
        if response.isSuccess {
            return .accepted(jobID: response.jsonObject?["id"] as? String)
        }
        let error = response.firstError
        let code = error?.code ?? "http_\(status)"
        let message = error?.message ?? ""
        switch status {
        case 401, 403:
            return .fatal(UploadFatalError(status: status, code: code, message: message))
        case 404, 422 where namedJob && (code == "job_closed" || code == "job_not_found"):
            return .jobGone(code)
        case 429:
            let reset = response.headers.first(name: "X-RateLimit-Reset").flatMap(Double.init)
            let until = response.retryAfter.map { clock.now() + $0 } ?? reset ?? clock.now() + 10
            return .rateLimited(until: until)
        case 408, 500, 502...599:
            return .transient("HTTP \(status) \(code)")
        default:
            return .rejected(status: status, code: code, message: message)
        }
    }

    private func readRateLimit(_ response: IntercomResponse) async {
        let limit = response.headers.first(name: "X-RateLimit-Limit").flatMap(Int.init)
        let remaining = response.headers.first(name: "X-RateLimit-Remaining").flatMap(Int.init)
        let reset = response.headers.first(name: "X-RateLimit-Reset").flatMap(Double.init)
        await limiter.update(limit: limit, remaining: remaining, reset: reset)
        if let remaining { progress.withLock { $0.budget = (remaining, limit) } }
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
    /// or retries exhausted), and counts them as failed.
    private func fail(_ batch: Batch, code: String, message: String) async {
        logger.warning("\(batch.count) \(batch.kind.dataType) items not uploaded: \(code): \(message)")
        var writeError: (any Error)?
        ItemScanner.forEachItemData(batch.items) { index, data in
            let position = batch.positions[index]
            guard writeError == nil else { return }
            do {
                try rejects.write(source: source(of: position), line: position.line, reason: code, detail: message, record: data)
                observer?.failed(at: position, code: code)
            } catch {
                writeError = error
            }
        }
        if let writeError {
            // Not written down means not settled: the run stops and a rerun sends the batch again.
            await state.setFatal(StopError(description: "\(writeError)"))
            return
        }
        await state.failed(batch, code: code)
        observer?.settled(batch)
    }

    private func source(of position: RecordPosition) -> String {
        sources.name(of: position.input)
    }

    // MARK: Job error feeds

    /// Waits (bounded) for each job of the run to complete, then writes its failed items to the
    /// rejects file with Intercom's code and message and the line they came from.
    private func readJobErrorFeeds() async {
        let jobs = await state.allJobs()
        guard !jobs.isEmpty else { return }
        let deadline = clock.now() + (stop.isRequested ? 0 : options.jobWait)
        for job in jobs {
            await readErrorFeed(job, deadline: deadline)
        }
    }

    /// Waits (until `deadline`) for one job to complete, then records its failed items.
    private func readErrorFeed(_ job: JobRecord, deadline: Double) async {
        // Requests that named the job before it retired may still add items to it.
        while await state.requestsInFlight(job: job.id) > 0, clock.now() < deadline {
            try? await clock.sleep(seconds: 0.05)
        }
        guard await waitForCompletion(job.id, deadline: deadline) else {
            logger.warning("job \(job.id) did not complete within --job-wait: its error feed was not read")
            await state.unreadJob(job.id)
            return
        }
        var next: String? = "/jobs/\(job.id)/error"
        while let path = next {
            guard let response = await get(path), response.isSuccess, let object = response.jsonObject else {
                logger.warning("could not read the error feed of job \(job.id)")
                await state.unreadJob(job.id)
                return
            }
            for item in (object["items"] as? [[String: Any]]) ?? [] {
                await recordFailedJobItem(item, job: job)
            }
            next = Self.nextPagePath((object["pages"] as? [String: Any])?["next"], base: client.endpoint.baseURL)
        }
    }

    private func recordFailedJobItem(_ item: [String: Any], job: JobRecord) async {
        let error = item["error"] as? [String: Any]
        let code = (error?["code"] as? String) ?? "job_item_failed"
        let message = (error?["message"] as? String) ?? ""
        let data = (item["data"] as? [String: Any]) ?? [:]
        let kind: ItemKind = (item["data_type"] as? String) == "event" ? .event : job.kind
        let fingerprint = ItemFingerprint.fromObject(data, kind: kind)
        let position = await state.takePosition(job: job.id, fingerprint: fingerprint)
        let text = (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        do {
            try rejects.write(source: position.map(source(of:)) ?? "(unknown: job \(job.id))", line: position?.line ?? 0,
                              reason: code, detail: message, record: text)
        } catch {
            await state.setFatal(StopError(description: "\(error)"))
        }
        await state.failedInJob(kind: kind, code: code)
        observer?.failed(at: position, code: code)
    }

    private func waitForCompletion(_ id: String, deadline: Double) async -> Bool {
        while true {
            if let response = await get("/jobs/\(id)"), response.isSuccess, (response.jsonObject?["state"] as? String) == "completed" {
                return true
            }
            if clock.now() >= deadline { return false }
            try? await clock.sleep(seconds: options.jobPollInterval)
        }
    }

    /// A GET with the same rate limiting and a few retries for transient failures.
    private func get(_ path: String) async -> IntercomResponse? {
        for attempt in 0...3 {
            do {
                try await limiter.acquire()
                await state.countRequest()
                let response = try await client.get(path)
                await readRateLimit(response)
                if response.status == 429 {
                    await limiter.exhausted(until: response.headers.first(name: "X-RateLimit-Reset").flatMap(Double.init) ?? clock.now() + 1)
                    continue
                }
                if response.status >= 500 {
                    // A server hiccup is not a spent budget: back off this call only.
                    try? await clock.sleep(seconds: Double.random(in: 0...min(options.maxBackoff, options.baseBackoff * pow(2, Double(attempt)))))
                    continue
                }
                return response
            } catch {
                await limiter.requestEndedWithoutAnswer()
                try? await clock.sleep(seconds: min(options.maxBackoff, options.baseBackoff * pow(2, Double(attempt))))
            }
        }
        return nil
    }

    static func nextPagePath(_ next: Any?, base: String) -> String? {
        guard let next = next as? String, !next.isEmpty else { return nil }
        if next.hasPrefix(base) { return String(next.dropFirst(base.count)) }
        if next.hasPrefix("/") { return next }
        return URLComponents(string: next).map { $0.path + ($0.query.map { "?" + $0 } ?? "") }
    }
}

/// A failure that must stop the run (the rejects file cannot be written).
public struct StopError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Numbers for the progress line, updated by the upload tasks.
struct UploadProgress {
    var items = 0
    var requests = 0
    var inFlight = 0
    var budget: (remaining: Int, limit: Int?)?
    let started = MonotonicClock.now()

    func line(clock now: Double) -> String {
        let elapsed = max(0.001, now - started)
        var text = "\(items) items uploaded (\(Int(Double(items) / elapsed))/s), \(Int(Double(requests) / elapsed)) requests/s, \(inFlight) in flight"
        if let budget { text += ", rate budget \(budget.remaining)" + (budget.limit.map { "/\($0)" } ?? "") }
        return text
    }
}
