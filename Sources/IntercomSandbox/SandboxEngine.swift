import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1

/// One complete HTTP request as the engine sees it.
struct SandboxRequest {
    var method: HTTPMethod
    var uri: String
    var headers: HTTPHeaders
    var body: [UInt8]
    /// The body was larger than `maxBodyBytes` and was discarded.
    var bodyTooLarge: Bool
}

/// What the handler does with a request: answer it (perhaps after the configured latency), or
/// drop the connection without a word.
enum SandboxOutcome {
    case respond(SandboxResponse)
    case dropConnection
}

struct SandboxResponse {
    var status: HTTPStatus
    var headers: [(String, String)]
    var body: String
    var contentType = "application/json; charset=utf-8"
    /// Bulk API answers wait for `latencyMilliseconds`; the sandbox's own endpoints do not.
    var delayed = true
}

/// The state machine behind the HTTP surface: auth, rate limit, faults, jobs, items and stats.
///
/// Parsing and validating a request happen outside the lock; only the short part that reads or
/// changes shared state (window count, dice, jobs, dedup sets, records) holds it.
final class SandboxEngine: Sendable {
    let configuration: SandboxConfiguration
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// `http://host:port`, known once bound; used for job links when a request has no Host.
    private let fallbackBaseURL = NIOLockedValueBox("http://127.0.0.1")
    private let appID: String
    private let jobPrefix: String
    static let windowSeconds = 10
    static let generousLimit = 100_000

    init(configuration: SandboxConfiguration, logger: Logger, recordFile: RecordFile?) {
        self.configuration = configuration
        self.logger = logger
        self.appID = configuration.appID ?? "sandbox"
        var prefixRNG = SplitMix64(seed: configuration.seed)
        self.jobPrefix = hex(prefixRNG.next() & 0xFFFF_FFFF, width: 8)
        let workspace = Workspace(
            workspaceID: configuration.appID ?? "sandbox", idPrefix: hex(prefixRNG.next() & 0xFFFF_FFFF, width: 8))
        self.state = NIOLockedValueBox(State(rng: SplitMix64(seed: configuration.seed), record: recordFile, workspace: workspace))
    }

    func setBaseURL(_ url: String) {
        fallbackBaseURL.withLockedValue { $0 = url }
    }

    // MARK: in-process reads

    func stats() -> SandboxStats {
        state.withLockedValue { $0.stats }
    }

    func acceptedItems() -> [AcceptedItem] {
        state.withLockedValue { $0.accepted }
    }

    func closeRecordFile() {
        state.withLockedValue { state in
            state.record?.closeFile()
            state.record = nil
        }
    }

    // MARK: requests

    func handle(_ request: SandboxRequest) -> SandboxOutcome {
        let now = configuration.clock()
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let route = Route(method: request.method, path: path)

        switch route {
        case .stats:
            return .respond(sandboxStatsResponse(now: now))
        case .items:
            return .respond(sandboxItemsResponse())
        case .seed:
            return .respond(seedResponse(request, now: now))
        case .state:
            return .respond(stateResponse())
        default:
            break
        }

        let authorized = authenticate(request.headers)
        // No header: the workspace's own version, as Intercom does.
        let family = APIFamily(version: request.headers.first(name: "Intercom-Version") ?? configuration.defaultVersion)
        // Everything that needs no shared state is decided here, before taking the lock.
        var prepared: PreparedBulk?
        var preparedREST: PreparedREST?
        if authorized, case .bulk(let kind) = route {
            prepared = prepareBulk(request, kind: kind)
        }
        if authorized, case .rest(let restRoute) = route {
            preparedREST = prepareREST(request, route: restRoute)
        }
        var cost = 1
        if configuration.bulkCost == .items, case .items(let items, _, _)? = prepared {
            cost = items.count
        }
        let base = baseURL(for: request.headers)

        let decision: Decision = state.withLockedValue { state in
            state.stats.requests += 1
            state.requestCounter += 1
            let requestID = "req_" + jobPrefix + hex(UInt64(state.requestCounter), width: 12)
            let window = state.enterWindow(now: now)

            // Rate-limit headers go with authenticated answers only, as Intercom's do.
            guard authorized else {
                state.stats.unauthorized += 1
                return .answer(.unauthorized, requestID, [])
            }
            if let perWindow = configuration.rateLimitPerWindow {
                // A request costing more than a whole window still goes through in an empty one.
                let charge = min(cost, perWindow)
                guard state.windowUsed + charge <= perWindow else {
                    state.stats.rateLimited += 1
                    return .answer(.rateLimited(perWindow), requestID, state.rateHeaders(window: window, limit: limit))
                }
                state.windowUsed += charge
            } else {
                state.windowUsed += cost
            }
            let headers = state.rateHeaders(window: window, limit: limit)

            switch route {
            case .bulk, .job, .jobErrors:
                guard family != nil else { return .answer(.versionNotValid, requestID, headers) }
                guard family == .legacy, configuration.bulkAvailable else {
                    return .answer(.versionUnavailable, requestID, headers)
                }
            case .users:
                guard family != nil else { return .answer(.versionNotValid, requestID, headers) }
                guard family == .legacy else { return .answer(.versionUnavailable, requestID, headers) }
            case .rest:
                guard family != nil else { return .answer(.versionNotValid, requestID, headers) }
                guard family == .rest else { return .answer(.versionUnavailable, requestID, headers) }
            default:
                break
            }

            var faultable = false
            if case .bulk = route { faultable = true }
            if case .rest(let restRoute) = route, restRoute.isWrite { faultable = true }
            if faultable, configuration.failRate > 0, state.rng.nextUnit() < configuration.failRate {
                switch state.rng.next() % 3 {
                case 0:
                    state.stats.faults.http500 += 1
                    return .answer(.fault500, requestID, headers)
                case 1:
                    state.stats.faults.http503 += 1
                    return .answer(.fault503, requestID, headers)
                default:
                    state.stats.faults.dropped += 1
                    return .drop
                }
            }

            switch route {
            case .bulk:
                guard let prepared else { return .answer(.notFound, requestID, headers) }
                switch prepared {
                case .rejected(let error):
                    return .answer(.error(error), requestID, headers)
                case .items(let items, let jobID, let kind):
                    return applyBulk(
                        &state, items: items, jobID: jobID, kind: kind, now: now, requestID: requestID, headers: headers)
                }
            case .job(let id):
                guard let job = state.jobs[id] else { return .answer(.jobNotFound(id), requestID, headers) }
                return .job(job, headers, tasks: .all)
            case .jobErrors(let id):
                guard let job = state.jobs[id] else { return .answer(.jobNotFound(id), requestID, headers) }
                return .errorFeed(job, headers)
            case .rest(let restRoute):
                guard let preparedREST else { return .answer(.notFound, requestID, headers) }
                switch preparedREST {
                case .rejected(let error):
                    return .answer(.error(error), requestID, headers)
                case .ready(let body, let query, let bodyText):
                    return applyREST(
                        &state, route: restRoute, body: body, query: query, bodyText: bodyText,
                        method: request.method, uri: request.uri, now: now, requestID: requestID, headers: headers)
                }
            case .users(let id):
                do throws(APIError) {
                    if let id { return .rest(try state.workspace.getUser(id: id), headers) }
                    return .rest(try state.workspace.findUser(query: parseQuery(request.uri)), headers)
                } catch {
                    return .answer(.error(error), requestID, headers)
                }
            case .methodNotAllowed(let allowed):
                return .answer(.methodNotAllowed(allowed), requestID, headers)
            case .notFound, .stats, .items, .seed, .state:
                return .answer(.notFound, requestID, headers)
            }
        }

        let outcome = render(decision, now: now, base: base)
        if logger.logLevel <= .debug {
            switch outcome {
            case .respond(let response):
                logger.debug("\(request.method) \(path) -> \(response.status.code)")
            case .dropConnection:
                logger.debug("\(request.method) \(path) -> dropped connection (injected fault)")
            }
        }
        return outcome
    }

    private var limit: Int { configuration.rateLimitPerWindow ?? Self.generousLimit }

    // MARK: auth

    /// Bearer token, Basic `app_id:api_key`, or Basic `token:` (empty password). With no
    /// credential configured, any non-empty token or pair passes; with some configured, only those.
    private func authenticate(_ headers: HTTPHeaders) -> Bool {
        let values = headers["Authorization"]
        guard values.count == 1, let value = values.first else { return false }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return false }
        let scheme = parts[0].lowercased()
        let credential = parts[1].trimmingCharacters(in: .whitespaces)
        guard !credential.isEmpty else { return false }
        let openMode = configuration.bearerToken == nil && configuration.appID == nil
        switch scheme {
        case "bearer":
            if openMode { return true }
            guard let token = configuration.bearerToken else { return false }
            return constantTimeEquals(credential, token)
        case "basic":
            guard let decoded = Data(base64Encoded: credential).flatMap({ String(data: $0, encoding: .utf8) }),
                let colon = decoded.firstIndex(of: ":")
            else { return false }
            let id = String(decoded[..<colon])
            let key = String(decoded[decoded.index(after: colon)...])
            guard !id.isEmpty else { return false }
            if key.isEmpty {
                // `Basic base64(token:)`: the access token as user name, as the legacy SDKs send it.
                if openMode { return true }
                guard let token = configuration.bearerToken else { return false }
                return constantTimeEquals(id, token)
            }
            if openMode { return true }
            guard let appID = configuration.appID, let apiKey = configuration.apiKey else { return false }
            return constantTimeEquals(id, appID) && constantTimeEquals(key, apiKey)
        default:
            return false
        }
    }

    // MARK: preparing a bulk request (no lock)

    private enum PreparedBulk {
        case rejected(APIError)
        case items([PreparedItem], jobID: String?, kind: ItemKind)
    }

    private enum PreparedItem {
        case valid(ValidItem)
        /// The error-feed entry without its `id` (assigned under the lock): `"method":...}`.
        case failed(code: String, entryTail: String)
    }

    private func prepareBulk(_ request: SandboxRequest, kind: ItemKind) -> PreparedBulk {
        guard isJSONMediaType(request.headers.first(name: "Content-Type")) else {
            return .rejected(
                APIError(
                    status: .unsupportedMediaType, code: "unsupported_media_type",
                    message: "Content-Type must be application/json"))
        }
        if request.bodyTooLarge {
            return .rejected(
                APIError(
                    status: .payloadTooLarge, code: "request_entity_too_large",
                    message:
                        "The request body is larger than \(configuration.maxBodyBytes) bytes; send at most 100 items a request"))
        }
        let body: JSONValue
        do {
            body = try JSONReader.parse(request.body)
        } catch {
            return .rejected(
                APIError(
                    status: .badRequest, code: "bad_request",
                    message: request.body.isEmpty
                        ? "The request body is empty; send a JSON object with an items array"
                        : "The request body is not valid JSON: \(error)"))
        }
        guard let object = body.objectValue else {
            return .rejected(
                APIError(
                    status: .badRequest, code: "bad_request",
                    message: "The request body must be a JSON object with an items array, got \(body.typeName)"))
        }
        guard let itemsValue = object["items"] else {
            return .rejected(.parameterInvalid("items is missing; send {\"items\": [...]}", field: "items"))
        }
        guard case .array(let items) = itemsValue else {
            return .rejected(.parameterInvalid("items must be an array, got \(itemsValue.typeName)", field: "items"))
        }
        guard !items.isEmpty else {
            return .rejected(.parameterInvalid("items is empty; send 1 to 100 items", field: "items"))
        }
        guard items.count <= 100 else {
            return .rejected(
                .parameterInvalid("items has \(items.count) entries; a bulk request takes at most 100", field: "items"))
        }
        var jobID: String?
        if let job = object["job"], job != .null {
            guard let jobObject = job.objectValue, let id = jobObject["id"]?.stringValue, !id.isEmpty else {
                return .rejected(
                    .parameterInvalid(
                        "job must be an object with a non-empty string id: {\"job\": {\"id\": \"job_...\"}}", field: "job.id"))
            }
            jobID = id
        }
        let acceptable = isAcceptable(request.headers)
        var prepared: [PreparedItem] = []
        prepared.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            guard let itemObject = item.objectValue else {
                return .rejected(
                    .parameterInvalid("items[\(index)] must be an object, got \(item.typeName)", field: "items[\(index)]"))
            }
            let result = acceptable ? ItemValidator.validate(itemObject, as: kind) : .failure(.mediaTypeNotAcceptable)
            switch result {
            case .success(let valid):
                prepared.append(.valid(valid))
            case .failure(let failure):
                prepared.append(.failed(code: failure.code, entryTail: failure.errorFeedEntryTail(of: itemObject)))
            }
        }
        return .items(prepared, jobID: jobID, kind: kind)
    }

    /// Intercom fails every item unless the client accepts `application/json`.
    private func isAcceptable(_ headers: HTTPHeaders) -> Bool {
        headers["Accept"].contains { value in
            value.split(separator: ",").contains { isJSONMediaType(String($0)) }
        }
    }

    // MARK: applying (under the lock)

    private func applyBulk(
        _ state: inout State,
        items: [PreparedItem],
        jobID: String?,
        kind: ItemKind,
        now: Double,
        requestID: String,
        headers: [(String, String)]
    ) -> Decision {
        let second = Int(now.rounded(.down))
        var job: Job
        if let jobID {
            guard let existing = state.jobs[jobID] else {
                return .answer(.jobNotFound(jobID), requestID, headers)
            }
            guard Double(existing.closingAt) > now else {
                return .answer(.jobClosed(jobID), requestID, headers)
            }
            job = existing
        } else {
            state.jobCounter += 1
            let id = "job_" + jobPrefix + hex(UInt64(state.jobCounter), width: 16)
            job = Job(id: id, createdAt: second, updatedAt: second, closingAt: second + configuration.jobTTLSeconds)
            state.stats.jobs += 1
        }
        // Keep the job's storage uniquely referenced while appending to it.
        state.jobs[job.id] = nil

        state.taskCounter += 1
        let taskID = "task_" + jobPrefix + hex(UInt64(state.taskCounter), width: 16)
        job.tasks.append(JobTask(id: taskID, itemCount: items.count, createdAt: second))
        job.updatedAt = second

        var record = ""
        for (index, item) in items.enumerated() {
            switch item {
            case .valid(let valid):
                switch valid.kind {
                case .user:
                    if state.users.insert(valid.key).inserted { state.stats.usersStored += 1 }
                    state.stats.itemsAccepted.users += 1
                    state.workspace.applyBulkUser(valid.data, now: now, searchableFrom: now + configuration.searchLagSeconds)
                case .event:
                    guard state.workspace.applyBulkEvent(valid.data) else {
                        state.stats.duplicates += 1
                        continue
                    }
                    state.stats.itemsAccepted.events += 1
                }
                let accepted = AcceptedItem(dataType: valid.kind.rawValue, jobID: job.id, dataJSON: valid.dataJSON)
                if state.record != nil { record += accepted.recordLine }
                if configuration.retainsAcceptedItems { state.accepted.append(accepted) }
            case .failed(let code, let tail):
                var entry = "{\"id\":"
                JSONValue.writeString("\(taskID)_\(index)", into: &entry)
                entry += ","
                entry += tail
                job.errorItems.append(entry)
                state.stats.itemsFailed += 1
                state.stats.itemsFailedByCode[code, default: 0] += 1
            }
        }
        if !record.isEmpty { state.writeRecord(record, logger: logger) }
        state.jobs[job.id] = job
        return .job(job, headers, tasks: .last)
    }

    // MARK: 2.x calls

    /// Checks media type and parses the body, outside the lock.
    private func prepareREST(_ request: SandboxRequest, route: RESTRoute) -> PreparedREST {
        route.prepare(
            uri: request.uri, contentType: request.headers.first(name: "Content-Type"), body: request.body,
            bodyTooLarge: request.bodyTooLarge, maxBodyBytes: configuration.maxBodyBytes)
    }

    private func applyREST(
        _ state: inout State,
        route: RESTRoute,
        body: JSONObject,
        query: [String: String],
        bodyText: String?,
        method: HTTPMethod,
        uri: String,
        now: Double,
        requestID: String,
        headers: [(String, String)]
    ) -> Decision {
        let answer: RESTAnswer
        do {
            answer = try state.workspace.handle(
                route, body: body, query: query, now: now,
                searchLag: configuration.searchLagSeconds, stats: &state.stats)
        } catch {
            return .answer(.error(error), requestID, headers)
        }
        if answer.changed, state.record != nil {
            var line = "{\"method\":"
            JSONValue.writeString(method.rawValue, into: &line)
            line += ",\"path\":"
            JSONValue.writeString(uri, into: &line)
            line += ",\"status\":\(answer.status.code),\"body\":" + (bodyText ?? "null") + "}\n"
            state.writeRecord(line, logger: logger)
        }
        return .rest(answer, headers)
    }

    // MARK: the workspace's admin routes (no auth, no budget)

    private func seedResponse(_ request: SandboxRequest, now: Double) -> SandboxResponse {
        func failure(_ error: APIError) -> SandboxResponse {
            SandboxResponse(status: error.status, headers: [], body: error.body(requestID: "req_sandbox"), delayed: false)
        }
        let value: JSONValue
        do {
            value = try JSONReader.parse(request.body)
        } catch {
            return failure(APIError(status: .badRequest, code: "bad_request", message: "The seed is not valid JSON: \(error)"))
        }
        guard let object = value.objectValue else {
            return failure(APIError(status: .badRequest, code: "bad_request", message: "The seed must be a JSON object"))
        }
        let result = state.withLockedValue { state -> Result<JSONValue, APIError> in
            // All or nothing: the seed is applied to a copy that replaces the workspace on success.
            var workspace = state.workspace
            do throws(APIError) {
                let answer = try workspace.seed(object, now: now)
                state.workspace = workspace
                return .success(answer)
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let answer):
            return SandboxResponse(status: .ok, headers: [], body: answer.serialized, delayed: false)
        case .failure(let error):
            return failure(error)
        }
    }

    private func stateResponse() -> SandboxResponse {
        let body = state.withLockedValue { $0.workspace.stateJSON }.serialized
        return SandboxResponse(status: .ok, headers: [], body: body, delayed: false)
    }

    // MARK: rendering (no lock)

    private enum Decision {
        case answer(Answer, String, [(String, String)])
        case rest(RESTAnswer, [(String, String)])
        case job(Job, [(String, String)], tasks: TaskListing)
        case errorFeed(Job, [(String, String)])
        case drop
    }

    private enum TaskListing { case all, last }

    private enum Answer {
        case unauthorized
        case rateLimited(Int)
        case fault500
        case fault503
        case jobNotFound(String)
        case jobClosed(String)
        case notFound
        case methodNotAllowed(String)
        case versionNotValid
        case versionUnavailable
        case error(APIError)

        var error: APIError {
            switch self {
            case .unauthorized:
                return APIError(status: .unauthorized, code: "unauthorized", message: "Access Token Invalid")
            case .rateLimited(let perWindow):
                return APIError(
                    status: .tooManyRequests, code: "rate_limit_exceeded",
                    message:
                        "Exceeded rate limit of \(perWindow) requests per \(SandboxEngine.windowSeconds) seconds; wait until X-RateLimit-Reset"
                )
            case .fault500:
                return APIError(
                    status: .internalServerError, code: "server_error",
                    message: "Injected fault (sandbox --fail-rate): internal server error; nothing was applied")
            case .fault503:
                return APIError(
                    status: .serviceUnavailable, code: "service_unavailable",
                    message: "Injected fault (sandbox --fail-rate): service unavailable; nothing was applied")
            case .jobNotFound(let id):
                return APIError(status: .notFound, code: "job_not_found", message: "Job \(id) not found", field: "job.id")
            case .jobClosed(let id):
                return APIError(
                    status: .unprocessableEntity, code: "job_closed",
                    message: "Job \(id) is closed and takes no more items; send them in a new job", field: "job.id")
            case .notFound:
                return APIError(
                    status: .notFound, code: "not_found",
                    message:
                        "No such endpoint: the sandbox serves the bulk API (/bulk/users, /bulk/events, /jobs/{id}, /jobs/{id}/error, GET /users) under Intercom-Version 1.x, /contacts, /companies, /data_attributes and /events under 2.x, and /sandbox/stats, /sandbox/items, /sandbox/state and /sandbox/seed"
                )
            case .versionNotValid:
                return APIError(
                    status: .badRequest, code: "intercom_version_invalid",
                    message: "The requested Intercom-Version is not valid; use 1.0 to 1.4, 2.0 to 2.14 or Unstable")
            case .versionUnavailable:
                return APIError(
                    status: .badRequest, code: "intercom_version_invalid",
                    message: "Requested resource is not available in current API version")
            case .methodNotAllowed(let allowed):
                return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "Use \(allowed) on this path")
            case .error(let error):
                return error
            }
        }
    }

    private func render(_ decision: Decision, now: Double, base: String) -> SandboxOutcome {
        switch decision {
        case .drop:
            return .dropConnection
        case .rest(let answer, let headers):
            return .respond(SandboxResponse(status: answer.status, headers: headers, body: answer.body?.serialized ?? ""))
        case .answer(let answer, let requestID, var headers):
            let error = answer.error
            if case .rateLimited = answer,
                let reset = headers.first(where: { $0.0 == "X-RateLimit-Reset" }).flatMap({ Int($0.1) })
            {
                headers.append(("Retry-After", String(max(1, reset - Int(now.rounded(.down))))))
            }
            if case .methodNotAllowed(let allowed) = answer {
                headers.append(("Allow", allowed))
            }
            return .respond(SandboxResponse(status: error.status, headers: headers, body: error.body(requestID: requestID)))
        case .job(let job, let headers, let listing):
            let status: HTTPStatus = listing == .last ? .accepted : .ok
            return .respond(
                SandboxResponse(status: status, headers: headers, body: jobJSON(job, now: now, base: base, listing: listing)))
        case .errorFeed(let job, let headers):
            let count = job.errorItems.count
            let body = JSONValue.obj([
                ("type", .string("job.error")),
                ("app_id", .string(appID)),
                ("job_id", .string(job.id)),
                (
                    "pages",
                    .obj([
                        ("type", .string("pages")), ("next", .null), ("page", .int(1)),
                        ("per_page", .int(count)), ("total_pages", .int(1)),
                    ])
                ),
                ("items", .raw("[" + job.errorItems.joined(separator: ",") + "]")),
            ])
            return .respond(SandboxResponse(status: .ok, headers: headers, body: body.serialized))
        }
    }

    private func jobJSON(_ job: Job, now: Double, base: String, listing: TaskListing) -> String {
        let completed: Bool
        let completedAt: JSONValue
        switch configuration.jobCompletion {
        case .whenTasksDone:
            completed = true
            completedAt = .int(job.updatedAt)
        case .atClosing:
            completed = now >= Double(job.closingAt)
            completedAt = completed ? .int(job.closingAt) : .null
        }
        let tasks: ArraySlice<JobTask> = listing == .all ? job.tasks[...] : job.tasks.suffix(1)
        let link = base + "/jobs/" + job.id
        return JSONValue.obj([
            ("type", .string("job")),
            ("app_id", .string(appID)),
            ("id", .string(job.id)),
            ("name", .string("api_bulk_job")),
            ("state", .string(completed ? "completed" : "running")),
            ("created_at", .int(job.createdAt)),
            ("updated_at", .int(job.updatedAt)),
            ("completed_at", completedAt),
            ("closing_at", .int(job.closingAt)),
            ("links", .obj([("self", .string(link)), ("error", .string(link + "/error"))])),
            (
                "tasks",
                .array(
                    tasks.map { task in
                        .obj([
                            ("id", .string(task.id)),
                            ("item_count", .int(task.itemCount)),
                            ("state", .string("completed")),
                            ("created_at", .int(task.createdAt)),
                            ("started_at", .int(task.createdAt)),
                            ("completed_at", .int(task.createdAt)),
                        ])
                    })
            ),
        ]).serialized
    }

    private func baseURL(for headers: HTTPHeaders) -> String {
        if let host = headers.first(name: "Host"), !host.isEmpty,
            !host.contains(where: { $0 == "/" || $0 == " " || $0 == "\"" })
        {
            return "http://" + host
        }
        return fallbackBaseURL.withLockedValue { $0 }
    }

    // MARK: the sandbox's own endpoints

    private func sandboxStatsResponse(now: Double) -> SandboxResponse {
        let (stats, headers) = state.withLockedValue { state -> (SandboxStats, [(String, String)]) in
            let window = state.enterWindow(now: now)
            return (state.stats, state.rateHeaders(window: window, limit: limit))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = (try? encoder.encode(stats)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return SandboxResponse(status: .ok, headers: headers, body: body, delayed: false)
    }

    private func sandboxItemsResponse() -> SandboxResponse {
        let items = acceptedItems()
        var body = ""
        for item in items { body += item.recordLine }
        var response = SandboxResponse(status: .ok, headers: [], body: body, delayed: false)
        response.contentType = "application/x-ndjson; charset=utf-8"
        if !configuration.retainsAcceptedItems {
            response.status = .notFound
            response.contentType = "application/json; charset=utf-8"
            response.body = APIError(
                status: .notFound, code: "not_found",
                message: "This sandbox does not keep accepted items in memory; read its --record file"
            ).body(requestID: "req_sandbox")
        }
        return response
    }
}

// MARK: - state

private struct State {
    var stats = SandboxStats()
    var windowIndex = Int.min
    var windowUsed = 0
    var rng: SplitMix64
    var requestCounter = 0
    var jobCounter = 0
    var taskCounter = 0
    var jobs: [String: Job] = [:]
    var users: Set<String> = []
    var accepted: [AcceptedItem] = []
    var record: RecordFile?
    var recordFailures = 0
    /// Contacts, companies, attributes and events, shared by both APIs.
    var workspace: Workspace

    init(rng: SplitMix64, record: RecordFile?, workspace: Workspace) {
        self.rng = rng
        self.record = record
        self.workspace = workspace
    }

    /// Appends to the record file, logging only its first failure.
    mutating func writeRecord(_ text: String, logger: Logger) {
        guard let file = record, let error = file.append(text) else { return }
        recordFailures += 1
        if recordFailures == 1 {
            logger.error(
                "sandbox: cannot write the record file \(file.path): \(error); accepted items are no longer recorded there")
        }
    }

    /// Moves to the 10-second window `now` falls in, resetting the count when it changed.
    /// Only forward: a request that read the clock just before a concurrent one crossed into
    /// the next window counts in that newer window rather than resetting the count twice.
    mutating func enterWindow(now: Double) -> Int {
        let window = Int((now / Double(SandboxEngine.windowSeconds)).rounded(.down))
        guard window > windowIndex else { return windowIndex }
        windowIndex = window
        windowUsed = 0
        return window
    }

    func rateHeaders(window: Int, limit: Int) -> [(String, String)] {
        [
            ("X-RateLimit-Limit", String(limit)),
            ("X-RateLimit-Remaining", String(max(0, limit - windowUsed))),
            ("X-RateLimit-Reset", String((window + 1) * SandboxEngine.windowSeconds)),
        ]
    }
}

private struct Job {
    var id: String
    var createdAt: Int
    var updatedAt: Int
    var closingAt: Int
    var tasks: [JobTask] = []
    /// Serialized error-feed entries, in order.
    var errorItems: [String] = []
}

private struct JobTask {
    var id: String
    var itemCount: Int
    var createdAt: Int
}

private enum Route {
    case bulk(ItemKind)
    case job(String)
    case jobErrors(String)
    case stats
    case items
    case seed
    case state
    /// `GET /users?user_id=` and `GET /users/{id}`: the 1.x way to read a user back.
    case users(String?)
    case rest(RESTRoute)
    case methodNotAllowed(String)
    case notFound

    init(method: HTTPMethod, path: String) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let parts = Array(segments)
        func only(_ allowed: HTTPMethod, _ route: Route) -> Route {
            method == allowed ? route : .methodNotAllowed(allowed.rawValue)
        }
        switch parts.count {
        case 2 where parts[0] == "bulk" && parts[1] == "users":
            self = only(.POST, .bulk(.user))
        case 2 where parts[0] == "bulk" && parts[1] == "events":
            self = only(.POST, .bulk(.event))
        case 2 where parts[0] == "jobs" && !parts[1].isEmpty:
            self = only(.GET, .job(String(parts[1])))
        case 3 where parts[0] == "jobs" && !parts[1].isEmpty && parts[2] == "error":
            self = only(.GET, .jobErrors(String(parts[1])))
        case 2 where parts[0] == "sandbox" && parts[1] == "stats":
            self = only(.GET, .stats)
        case 2 where parts[0] == "sandbox" && parts[1] == "items":
            self = only(.GET, .items)
        case 1 where parts[0] == "users":
            self = only(.GET, .users(nil))
        case 2 where parts[0] == "users" && !parts[1].isEmpty:
            self = only(.GET, .users(String(parts[1]).removingPercentEncoding ?? String(parts[1])))
        case 2 where parts[0] == "sandbox" && parts[1] == "seed":
            self = only(.POST, .seed)
        case 2 where parts[0] == "sandbox" && parts[1] == "state":
            self = only(.GET, .state)
        default:
            switch RESTRoute.match(method: method.rawValue, segments: parts.map(String.init)) {
            case .route(let route)?: self = .rest(route)
            case .methodNotAllowed(let allowed)?: self = .methodNotAllowed(allowed)
            case nil: self = .notFound
            }
        }
    }
}

/// The fault dice: SplitMix64, small and the same on every platform, so a seed replays.
struct SplitMix64: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }
}

private func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for i in x.indices { difference |= x[i] ^ y[i] }
    return difference == 0
}
