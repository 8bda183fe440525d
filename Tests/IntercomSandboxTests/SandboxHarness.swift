import AsyncHTTPClient
import Foundation
import IntercomSandbox
import Logging
import NIOCore
import NIOHTTP1
import XCTest

/// An answer from the sandbox, read in full.
struct Reply {
    var status: Int
    var headers: HTTPHeaders
    var body: Data

    /// The body as a JSON object (fails the test when it is not one).
    func object(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        return try XCTUnwrap(value as? [String: Any], "body is not a JSON object: \(text)", file: file, line: line)
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The first error of an `error.list` body.
    func firstError(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let object = try object(file: file, line: line)
        XCTAssertEqual(object["type"] as? String, "error.list", file: file, line: line)
        XCTAssertNotNil(object["request_id"] as? String, file: file, line: line)
        let errors = try XCTUnwrap(object["errors"] as? [[String: Any]], file: file, line: line)
        return try XCTUnwrap(errors.first, file: file, line: line)
    }

    func errorCode(file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        try firstError(file: file, line: line)["code"] as? String
    }
}

/// A running sandbox and an HTTP client pointed at it; `withSandbox` always shuts both down.
struct Harness {
    let server: IntercomSandboxServer
    let client: HTTPClient
    static let token = "sandbox-test-token"

    /// The headers a well-behaved client sends (contract §1).
    static var standardHeaders: [(String, String)] {
        [
            ("Authorization", "Bearer \(token)"),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("Intercom-Version", "1.4"),
        ]
    }

    /// Sends a request; `headers` replaces the standard headers when given.
    func send(
        _ method: HTTPMethod,
        _ path: String,
        body: String? = nil,
        headers: [(String, String)]? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: server.baseURL + path)
        request.method = method
        for (name, value) in headers ?? Self.standardHeaders {
            request.headers.add(name: name, value: value)
        }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer.readableBytesView))
    }

    func post(_ path: String, _ body: String, headers: [(String, String)]? = nil) async throws -> Reply {
        try await send(.POST, path, body: body, headers: headers)
    }

    func get(_ path: String, headers: [(String, String)]? = nil) async throws -> Reply {
        try await send(.GET, path, headers: headers)
    }

    /// Posts items (JSON texts) to /bulk/users or /bulk/events, optionally into a job.
    func bulk(_ type: String, _ items: [String], job: String? = nil, headers: [(String, String)]? = nil) async throws -> Reply {
        try await post("/bulk/\(type)s", bulkBody(type, items, job: job), headers: headers)
    }

    /// Posts items and returns the job id from a 202 answer.
    func bulkJob(_ type: String, _ items: [String], job: String? = nil, file: StaticString = #filePath, line: UInt = #line)
        async throws -> String
    {
        let reply = try await bulk(type, items, job: job)
        XCTAssertEqual(reply.status, 202, reply.text, file: file, line: line)
        return try XCTUnwrap(reply.object()["id"] as? String, file: file, line: line)
    }

    /// The `items` of a job's error feed.
    func errorItems(_ jobID: String, file: StaticString = #filePath, line: UInt = #line) async throws -> [[String: Any]] {
        let reply = try await get("/jobs/\(jobID)/error")
        XCTAssertEqual(reply.status, 200, reply.text, file: file, line: line)
        return try XCTUnwrap(reply.object()["items"] as? [[String: Any]], file: file, line: line)
    }
}

/// A bulk body with `data_type` matching the path.
func bulkBody(_ type: String, _ items: [String], job: String? = nil) -> String {
    let wrapped = items.map { #"{"method":"post","data_type":"\#(type)","data":\#($0)}"# }
    var body = #"{"items":["# + wrapped.joined(separator: ",") + "]"
    if let job { body += #","job":{"id":"\#(job)"}"# }
    return body + "}"
}

/// A user item's data with the given user id.
func user(_ id: String, extra: String = "") -> String {
    #"{"user_id":"\#(id)"\#(extra.isEmpty ? "" : "," + extra)}"#
}

/// An event item's data.
func event(_ user: String, _ name: String = "signed_up", at second: Int = 1_700_000_000, extra: String = "") -> String {
    #"{"user_id":"\#(user)","event_name":"\#(name)","created_at":\#(second)\#(extra.isEmpty ? "" : "," + extra)}"#
}

let quietLogger = Logger(label: "intercom-sandbox-tests") { _ in SwiftLogNoOpLogHandler() }

/// Starts a sandbox on a free loopback port with a known token (unless the configuration says
/// otherwise), runs `body`, and shuts everything down even when `body` throws.
func withSandbox(
    _ configure: (inout SandboxConfiguration) -> Void = { _ in },
    _ body: (Harness) async throws -> Void
) async throws {
    var configuration = SandboxConfiguration(bearerToken: Harness.token, threads: 1)
    configure(&configuration)
    let server = try await IntercomSandboxServer.start(configuration, logger: quietLogger)
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        try await body(Harness(server: server, client: client))
    } catch {
        try? await client.shutdown()
        try? await server.shutdown()
        throw error
    }
    try await client.shutdown()
    try await server.shutdown()
}

/// Parses JSON text into a Foundation value, for comparing echoed data with what was sent.
func jsonValue(_ text: String) -> NSObject? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as? NSObject
}

func sameJSON(_ a: Any?, _ b: String) -> Bool {
    guard let a = a as? NSObject, let b = jsonValue(b) else { return false }
    return a.isEqual(b)
}
