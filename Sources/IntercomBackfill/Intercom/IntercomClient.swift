import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One answer from Intercom: status, headers and the (small) body.
public struct IntercomResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    public var isSuccess: Bool { (200..<300).contains(status) }
    public var isRedirect: Bool { (300..<400).contains(status) }

    /// The first error of an `error.list` body, leniently: unknown fields are ignored.
    public var firstError: (code: String, message: String)? {
        guard let object = jsonObject, let errors = object["errors"] as? [[String: Any]], let first = errors.first else {
            return nil
        }
        return ((first["code"] as? String) ?? "unknown_error", (first["message"] as? String) ?? "")
    }

    /// The body as a JSON object (answers are small and come once per request: Foundation is fine).
    public var jsonObject: [String: Any]? {
        guard body.readableBytes > 0 else { return nil }
        let data = Data(body.readableBytesView)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// The start of the body as text, for messages about answers we did not understand.
    public var bodyExcerpt: String {
        let text = String(decoding: body.readableBytesView.prefix(120), as: UTF8.self)
        return text.replacingOccurrences(of: "\n", with: " ")
    }
}

/// A request that did not complete within `--request-timeout` (connecting, sending and reading
/// the whole answer), or whose answer was larger than we read.
public struct RequestFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// The HTTP side of the Intercom API: headers, auth, deadlines and answer size in one place.
/// Secrets live only in the `Authorization` header, never in a URL or a log line. Redirects are
/// never followed: a POST of personal data goes to the configured origin or nowhere.
public final class IntercomClient: Sendable {
    /// Answers are job objects, error lists and feed pages: small. A larger one is not read whole.
    public static let maxAnswerBytes = 1 << 20

    public let endpoint: IntercomEndpoint
    let http: HTTPClient
    let credentials: IntercomCredentials
    let requestTimeout: Double
    let apiVersion: String

    public init(
        http: HTTPClient, endpoint: IntercomEndpoint, credentials: IntercomCredentials, requestTimeout: Double = 60,
        apiVersion: String = "1.4"
    ) {
        self.http = http
        self.endpoint = endpoint
        self.credentials = credentials
        self.requestTimeout = requestTimeout
        self.apiVersion = apiVersion
    }

    /// Runs `body` with an HTTP client that is always shut down afterwards (async-http-client's
    /// scoped style): keep-alive pooling, TLS verification on, bounded connect time, no redirects.
    public static func withHTTPClient<Result>(
        connectTimeout: Double = 10, readTimeout: Double = 60,
        _ body: (HTTPClient) async throws -> Result
    ) async throws -> Result {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(
            connect: .milliseconds(Int64(connectTimeout * 1000)), read: .milliseconds(Int64(readTimeout * 1000)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result: Result
        do {
            result = try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return result
    }

    public func post(_ path: String, body: ByteBuffer) async throws -> IntercomResponse {
        try await request(.POST, path, body: body)
    }

    public func get(_ path: String) async throws -> IntercomResponse {
        try await request(.GET, path)
    }

    /// One call of any method; a body is sent as JSON.
    public func request(_ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil) async throws -> IntercomResponse {
        var request = HTTPClientRequest(url: endpoint.baseURL + path)
        request.method = method
        addHeaders(&request.headers)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        return try await execute(request)
    }

    /// The same connection pool and credentials, speaking another API version (REST mode).
    public func speaking(_ version: String) -> IntercomClient {
        IntercomClient(
            http: http, endpoint: endpoint, credentials: credentials, requestTimeout: requestTimeout, apiVersion: version)
    }

    /// `value` as one path segment: a server-supplied id can never change the path it goes into.
    public static func pathSegment(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    private func addHeaders(_ headers: inout HTTPHeaders) {
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Intercom-Version", value: apiVersion)
        headers.add(name: "User-Agent", value: ToolInfo.userAgent)
        headers.add(name: "Authorization", value: credentials.authorizationHeader)
    }

    /// The whole exchange under one deadline: async-http-client's covers the head only, so a body
    /// trickled a byte at a time is raced against the deadline too.
    private func execute(_ request: HTTPClientRequest) async throws -> IntercomResponse {
        let timeout = requestTimeout
        let http = self.http
        return try await withThrowingTaskGroup(of: IntercomResponse.self) { group in
            group.addTask {
                let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
                let body: ByteBuffer
                do {
                    body = try await response.body.collect(upTo: Self.maxAnswerBytes)
                } catch is NIOTooManyBytesError {
                    throw RequestFailure(
                        description:
                            "the answer (HTTP \(response.status.code)) is larger than \(Self.maxAnswerBytes >> 20) MiB: not an Intercom answer"
                    )
                }
                return IntercomResponse(status: Int(response.status.code), headers: response.headers, body: body)
            }
            group.addTask {
                // Real time, whatever clock the waits use: this is the network's deadline.
                try await SystemUploadClock().sleep(seconds: timeout)
                throw RequestFailure(description: "no complete answer within --request-timeout \(timeout) s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}
