import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A scriptable HTTP/1.1 server on `127.0.0.1` (free port) that answers like a misconfigured
/// proxy, a gateway or an overloaded API. Blocking sockets, one thread per connection, so an
/// answer can be trickled, streamed without end, or never given, exactly as a test scripts it.
///
/// Every request is recorded (method, target, headers, body, arrival order). The default answers
/// are those of a well-behaved bulk API (`defaultAnswer`): a test overrides only what it breaks.
final class MisbehavingServer: @unchecked Sendable {
    /// One request as it arrived.
    struct Request: Sendable {
        /// 1-based arrival order over the whole server.
        var index: Int
        var method: String
        /// The request target exactly as sent (path and query, still percent-encoded).
        var target: String
        var headers: [(name: String, value: String)]
        var body: Data
        var connection: Int

        var path: String {
            target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        }
        var isBulk: Bool { method == "POST" && (path == "/bulk/users" || path == "/bulk/events") }
        var isUsers: Bool { path == "/bulk/users" }

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// The `items` of a bulk request body.
        var items: [[String: Any]] {
            let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
            return object?["items"] as? [[String: Any]] ?? []
        }

        /// The `job.id` a bulk request appends to, if any.
        var namedJob: String? {
            let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
            return (object?["job"] as? [String: Any])?["id"] as? String
        }
    }

    /// What the server does with one request.
    enum Answer: Sendable {
        /// A complete answer; `Content-Length` is added unless given (and never for 204/304).
        case respond(status: Int, headers: [(String, String)] = [], body: Data = Data())
        /// Reads the whole request, then closes without a byte of answer.
        case dropAfterBody
        /// Reads the request and never answers (until the client goes or the server stops).
        case never
        /// Sends the head (with `Content-Length` of `body`), then the body one byte every `interval` seconds.
        case trickle(status: Int, headers: [(String, String)], body: Data, interval: Double)
        /// Sends a head announcing `totalBytes` (`Content-Length`), then `chunk` repeated until
        /// `totalBytes` are sent or the client goes away.
        case stream(status: Int, headers: [(String, String)], totalBytes: Int, chunk: Data)
        /// Sends the head (with `Content-Length` of `body`) and the first half of `body`, then
        /// nothing more until the client goes away.
        case stallHalfway(status: Int, headers: [(String, String)], body: Data)

        static func json(_ status: Int, _ text: String, headers: [(String, String)] = []) -> Answer {
            .respond(status: status, headers: [("Content-Type", "application/json")] + headers, body: Data(text.utf8))
        }
    }

    typealias Behaviour = @Sendable (Request, MisbehavingServer) -> Answer

    /// Items a well-behaved answer took, by kind, canonical JSON of their `data`.
    struct AcceptedItems {
        var users: [String] = []
        var events: [String] = []
        var total: Int { users.count + events.count }
        var distinctUsers: Int { Set(users).count }
        var distinctEvents: Int { Set(events).count }
    }

    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }
    let appID = "adv0app1"

    private let listener: Int32
    private let behaviour: Behaviour
    private let dropsBeforeBody: (@Sendable (Request) -> Bool)?
    private let state = LockedBox(State())

    private struct State {
        var requests: [Request] = []
        /// For each answered request: how many requests had arrived when its answer was written.
        var arrivedWhenAnswered: [Int: Int] = [:]
        var accepted = AcceptedItems()
        /// Job id -> data type, for jobs the default answer created.
        var jobs: [String: String] = [:]
        var jobOrder: [String] = []
        /// Job id -> the `data` of every item the default answer took into it.
        var jobItems: [String: [[String: Any]]] = [:]
        var nextJob = 1
        var nextConnection = 1
        var connections: [Int: Int32] = [:]
        var threads = 0
        var stopping = false
    }

    /// Starts listening on a free loopback port; `behaviour` answers every request (call
    /// `server.defaultAnswer(request)` for the well-behaved answer).
    /// `dropsBeforeBody`: requests (seen by their head alone, body empty) whose connection is
    /// closed before the body is read.
    init(
        dropsBeforeBody: (@Sendable (Request) -> Bool)? = nil,
        _ behaviour: @escaping Behaviour = { request, server in server.defaultAnswer(request) }
    ) throws {
        self.behaviour = behaviour
        self.dropsBeforeBody = dropsBeforeBody
        signal(SIGPIPE, SIG_IGN)
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        state.withLock { $0.threads += 1 }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    // MARK: What the tests read

    var requests: [Request] { state.withLock { $0.requests } }
    var bulkRequests: [Request] { requests.filter(\.isBulk) }
    var accepted: AcceptedItems { state.withLock { $0.accepted } }
    var requestCount: Int { state.withLock { $0.requests.count } }

    /// The jobs the default answer created, in order.
    var jobIDs: [String] { state.withLock { $0.jobOrder } }
    /// `users` or `events` job: "user" / "event".
    func dataType(ofJob id: String) -> String? { state.withLock { $0.jobs[id] } }
    /// The `data` of every item the default answer took into job `id`.
    func items(ofJob id: String) -> [[String: Any]] { state.withLock { $0.jobItems[id] ?? [] } }

    /// How many requests had arrived when the answer to request `index` was written (nil: not answered).
    func arrivedWhenAnswered(_ index: Int) -> Int? { state.withLock { $0.arrivedWhenAnswered[index] } }

    // MARK: The well-behaved answers

    /// A bulk API that works: `POST /bulk/*` takes the items into a job (a new one, or the one
    /// named) and answers the job object; `GET /jobs/{id}` says completed; the error feed is empty.
    func defaultAnswer(_ request: Request) -> Answer {
        let path = request.path
        if request.isBulk {
            let kind = request.isUsers ? "user" : "event"
            let items = request.items
            let id: String = state.withLock { state in
                if let named = request.namedJob, state.jobs[named] != nil { return named }
                let id = "job_adv\(state.nextJob)"
                state.nextJob += 1
                state.jobs[id] = kind
                state.jobOrder.append(id)
                return id
            }
            state.withLock { $0.jobItems[id, default: []] += items.compactMap { $0["data"] as? [String: Any] } }
            recordAccepted(items, kind: kind)
            return .json(200, jobJSON(id: id, state: "running"))
        }
        if request.method == "GET", path.hasPrefix("/jobs/") {
            let rest = path.dropFirst("/jobs/".count)
            if rest.hasSuffix("/error") {
                let id = String(rest.dropLast("/error".count))
                return .json(200, errorFeedJSON(jobID: id, items: [], next: nil))
            }
            return .json(200, jobJSON(id: String(rest), state: "completed"))
        }
        return .json(404, #"{"type":"error.list","request_id":"adv","errors":[{"code":"not_found","message":"no such route"}]}"#)
    }

    /// Records `items` as taken by the server (what a valid job answer means).
    func recordAccepted(_ items: [[String: Any]], kind: String) {
        let texts = items.map { canonicalJSON($0["data"] ?? NSNull()) }
        state.withLock { state in
            if kind == "user" { state.accepted.users += texts } else { state.accepted.events += texts }
        }
    }

    func jobJSON(id: String, state: String) -> String {
        let now = Int(Date().timeIntervalSince1970)
        let idJSON = canonicalJSON(id)
        let link = canonicalJSON("\(baseURL)/jobs/\(id)")
        let errorLink = canonicalJSON("\(baseURL)/jobs/\(id)/error")
        let completedAt = state == "completed" ? "\(now)" : "null"
        return """
            {"type":"job","app_id":"\(appID)","id":\(idJSON),"name":"api_bulk_job","state":"\(state)",\
            "created_at":\(now),"updated_at":\(now),"completed_at":\(completedAt),"closing_at":\(now + 900),\
            "links":{"self":\(link),"error":\(errorLink)},\
            "tasks":[{"id":"task_1","item_count":1,"state":"\(state)","created_at":\(now),"started_at":\(now),"completed_at":\(completedAt)}]}
            """
    }

    /// `{"type":"job.error",...,"pages":{...,"next":...},"items":[...]}`
    func errorFeedJSON(jobID: String, items: [[String: Any]], next: String?) -> String {
        let itemsJSON = items.map { canonicalJSON($0) }.joined(separator: ",")
        let nextJSON = next.map { canonicalJSON($0) } ?? "null"
        return """
            {"type":"job.error","app_id":"\(appID)","job_id":\(canonicalJSON(jobID)),\
            "pages":{"type":"pages","next":\(nextJSON),"page":1,"per_page":\(items.count),"total_pages":1},"items":[\(itemsJSON)]}
            """
    }

    /// A failed item as an error feed lists it.
    static func failedItem(
        dataType: String, data: [String: Any], code: String = "parameter_invalid", message: String = "refused by the test server"
    ) -> [String: Any] {
        [
            "id": "task_1_\(UUID().uuidString.prefix(8))", "method": "post", "data_type": dataType, "data": data,
            "error": ["code": code, "message": message],
        ]
    }

    // MARK: Passing through

    /// The answer another server on loopback (`port`, such as a sandbox) gives to `request`, to
    /// pass on as this server's own: a faulty server that is a good one except where a test
    /// breaks it. The request goes as it came (its `Host` too, so links point back here) on a
    /// connection of its own; a connection closed without an answer is passed on as one.
    func relay(_ request: Request, toPort port: Int) -> Answer {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return .dropAfterBody }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return .dropAfterBody }
        let skipped: Set<String> = ["connection", "content-length", "transfer-encoding", "keep-alive"]
        var head = "\(request.method) \(request.target) HTTP/1.1\r\n"
        for (name, value) in request.headers where !skipped.contains(name.lowercased()) { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(request.body.count)\r\nConnection: close\r\n\r\n"
        guard send(fd, Data(head.utf8) + request.body) else { return .dropAfterBody }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            answer.append(contentsOf: chunk[0..<n])
        }
        guard let end = answer.indices.dropLast(3).first(where: { answer[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10]) })
        else { return .dropAfterBody }
        let lines = String(decoding: answer[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = (lines.first ?? "").split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return .dropAfterBody }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            if skipped.contains(name.lowercased()) { continue }
            headers.append((name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return .respond(status: status, headers: headers, body: Data(answer[(end + 4)...]))
    }

    // MARK: Shutdown

    /// Stops accepting, closes every connection (unblocking any trickle or stream) and waits for
    /// every thread to end.
    func shutdown() {
        let fds: [Int32] = state.withLock { state in
            state.stopping = true
            return Array(state.connections.values)
        }
        for fd in fds { _ = closeBothWays(fd, Int32(SHUT_RDWR)) }
        _ = closeBothWays(listener, Int32(SHUT_RDWR))
        let end = Date().addingTimeInterval(10)
        while state.withLock({ $0.threads }) > 0, Date() < end {
            let again: [Int32] = state.withLock { Array($0.connections.values) }
            for fd in again { _ = closeBothWays(fd, Int32(SHUT_RDWR)) }
            usleep(2_000)
        }
        close(listener)
    }

    private func closeBothWays(_ fd: Int32, _ how: Int32) -> Int32 {
        #if canImport(Glibc)
        return Glibc.shutdown(fd, how)
        #else
        return Darwin.shutdown(fd, how)
        #endif
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    // MARK: Sockets

    private func acceptLoop() {
        defer { state.withLock { $0.threads -= 1 } }
        while !stopping {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 100)
            if ready <= 0 { continue }
            let fd = accept(listener, nil, nil)
            if fd < 0 { if stopping { return } else { continue } }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let id: Int? = state.withLock { state in
                if state.stopping { return nil }
                let id = state.nextConnection
                state.nextConnection += 1
                state.connections[id] = fd
                state.threads += 1
                return id
            }
            guard let id else {
                close(fd)
                return
            }
            Thread.detachNewThread { [self] in
                serve(fd, connection: id)
                state.withLock { state in
                    state.connections[id] = nil
                    state.threads -= 1
                }
                close(fd)
            }
        }
    }

    /// Bytes read but not yet consumed, per connection.
    private final class Reader {
        let fd: Int32
        var buffer: [UInt8] = []
        let stopping: () -> Bool
        init(fd: Int32, stopping: @escaping () -> Bool) {
            self.fd = fd
            self.stopping = stopping
        }

        /// Reads more bytes (false: the peer closed, or the server stops).
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                if stopping() { return false }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, 100)
                if ready == 0 { continue }
                if ready < 0 { return false }
                let n = recv(fd, &chunk, chunk.count, 0)
                if n <= 0 { return false }
                buffer.append(contentsOf: chunk[0..<n])
                return true
            }
        }

        func readHead() -> [UInt8]? {
            while true {
                if let end = find([13, 10, 13, 10]) {
                    let head = Array(buffer[0..<end])
                    buffer.removeFirst(end + 4)
                    return head
                }
                if buffer.count > 1 << 20 { return nil }
                guard fill() else { return nil }
            }
        }

        func readExactly(_ count: Int) -> [UInt8]? {
            while buffer.count < count { guard fill() else { return nil } }
            let bytes = Array(buffer[0..<count])
            buffer.removeFirst(count)
            return bytes
        }

        func readLine() -> [UInt8]? {
            while true {
                if let end = find([13, 10]) {
                    let line = Array(buffer[0..<end])
                    buffer.removeFirst(end + 2)
                    return line
                }
                guard fill() else { return nil }
            }
        }

        func readChunked() -> [UInt8]? {
            var body: [UInt8] = []
            while true {
                guard let line = readLine() else { return nil }
                let sizeText = String(decoding: line, as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                if size == 0 {
                    while let trailer = readLine(), !trailer.isEmpty {}
                    return body
                }
                guard let bytes = readExactly(size), readLine() != nil else { return nil }
                body += bytes
            }
        }

        private func find(_ needle: [UInt8]) -> Int? {
            guard buffer.count >= needle.count else { return nil }
            var i = 0
            while i + needle.count <= buffer.count {
                if buffer[i] == needle[0], Array(buffer[i..<(i + needle.count)]) == needle { return i }
                i += 1
            }
            return nil
        }
    }

    private func serve(_ fd: Int32, connection: Int) {
        let reader = Reader(fd: fd) { [weak self] in self?.stopping ?? true }
        while true {
            guard let head = reader.readHead() else { return }
            let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
            let parts = (lines.first ?? "").split(separator: " ")
            guard parts.count >= 2 else { return }
            var headers: [(name: String, value: String)] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
            var request = Request(
                index: 0, method: String(parts[0]), target: String(parts[1]), headers: headers, body: Data(),
                connection: connection)
            // A drop before the body is decided on the head alone.
            if let dropsBeforeBody, dropsBeforeBody(request) {
                state.withLock { state in
                    request.index = state.requests.count + 1
                    state.requests.append(request)
                }
                return
            }
            let body: [UInt8]?
            if header("transfer-encoding")?.lowercased().contains("chunked") == true {
                body = reader.readChunked()
            } else {
                body = reader.readExactly(Int(header("content-length") ?? "0") ?? 0)
            }
            guard let body else { return }
            request.body = Data(body)
            state.withLock { state in
                request.index = state.requests.count + 1
                state.requests.append(request)
            }
            let answer = behaviour(request, self)
            let keepAlive = header("connection")?.lowercased() != "close"
            switch answer {
            case .dropAfterBody:
                return
            case .never:
                while reader.fill() {}
                return
            case .respond(let status, let extra, let bytes):
                var head = statusLine(status)
                let names = Set(extra.map { $0.0.lowercased() })
                if !names.contains("content-length"), status != 204, status != 304 {
                    head += "Content-Length: \(bytes.count)\r\n"
                }
                for (name, value) in extra { head += "\(name): \(value)\r\n" }
                head += "\r\n"
                guard send(fd, Data(head.utf8) + (status == 204 || status == 304 ? Data() : bytes)) else { return }
                answered(request.index)
                if !keepAlive || names.contains("connection") { return }
            case .trickle(let status, let extra, let bytes, let interval):
                var head = statusLine(status) + "Content-Length: \(bytes.count)\r\n"
                for (name, value) in extra { head += "\(name): \(value)\r\n" }
                head += "\r\n"
                guard send(fd, Data(head.utf8)) else { return }
                for byte in bytes {
                    let end = Date().addingTimeInterval(interval)
                    while Date() < end {
                        if stopping { return }
                        usleep(10_000)
                    }
                    guard send(fd, Data([byte])) else { return }
                }
                answered(request.index)
            case .stallHalfway(let status, let extra, let bytes):
                var head = statusLine(status) + "Content-Length: \(bytes.count)\r\n"
                for (name, value) in extra { head += "\(name): \(value)\r\n" }
                head += "\r\n"
                guard send(fd, Data(head.utf8) + bytes.prefix(bytes.count / 2)) else { return }
                while reader.fill() {}
                return
            case .stream(let status, let extra, let total, let chunk):
                var head = statusLine(status) + "Content-Length: \(total)\r\n"
                for (name, value) in extra { head += "\(name): \(value)\r\n" }
                head += "\r\n"
                guard send(fd, Data(head.utf8)) else { return }
                var sent = 0
                while sent < total {
                    let piece = chunk.prefix(total - sent)
                    guard send(fd, piece) else { return }
                    sent += piece.count
                }
                answered(request.index)
            }
        }
    }

    private func answered(_ index: Int) {
        state.withLock { state in
            let arrived = state.requests.count
            state.arrivedWhenAnswered[index] = arrived
        }
    }

    private func statusLine(_ status: Int) -> String {
        let reasons = [
            200: "OK", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
            308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
        ]
        return "HTTP/1.1 \(status) \(reasons[status] ?? "Status")\r\n"
    }

    /// Writes all of `data` (false: the peer went away or the server stops).
    private func send(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                if stopping { return false }
                #if canImport(Glibc)
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                #else
                let n = Darwin.send(fd, raw.baseAddress! + offset, raw.count - offset, 0)
                #endif
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }
}

/// Runs `body` with a misbehaving server, always shut down afterwards.
func withMisbehavingServer<T>(
    dropsBeforeBody: (@Sendable (MisbehavingServer.Request) -> Bool)? = nil,
    _ behaviour: @escaping MisbehavingServer.Behaviour = { request, server in server.defaultAnswer(request) },
    _ body: (MisbehavingServer) async throws -> T
) async throws -> T {
    let server = try MisbehavingServer(dropsBeforeBody: dropsBeforeBody, behaviour)
    defer { server.shutdown() }
    return try await body(server)
}
