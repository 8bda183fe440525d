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

    /// The first error of an `error.list` body, leniently: unknown fields are ignored.
    public var firstError: (code: String, message: String)? {
        guard let object = jsonObject, let errors = object["errors"] as? [[String: Any]], let first = errors.first else { return nil }
        return ((first["code"] as? String) ?? "unknown_error", (first["message"] as? String) ?? "")
    }

    /// The body as a JSON object (answers are a few hundred bytes, once per request: Foundation is fine).
    public var jsonObject: [String: Any]? {
        guard body.readableBytes > 0 else { return nil }
        let data = Data(body.readableBytesView)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// Seconds the server asks us to wait (`Retry-After`), when given as a number.
    public var retryAfter: Double? { headers.first(name: "Retry-After").flatMap(Double.init) }
}

/// The HTTP side of the Intercom bulk API: headers, auth and timeouts in one place.
/// Secrets live only in the `Authorization` header, never in a URL or a log line.
public final class IntercomClient: Sendable {
    public let endpoint: IntercomEndpoint
    let http: HTTPClient
    let credentials: IntercomCredentials
    let requestTimeout: TimeAmount

    public init(http: HTTPClient, endpoint: IntercomEndpoint, credentials: IntercomCredentials, requestTimeout: TimeAmount = .seconds(60)) {
        self.http = http
        self.endpoint = endpoint
        self.credentials = credentials
        self.requestTimeout = requestTimeout
    }

    /// Runs `body` with an HTTP client that is always shut down afterwards (async-http-client's
    /// scoped style): keep-alive pooling, TLS verification on, bounded connect time.
    public static func withHTTPClient<Result>(_ body: (HTTPClient) async throws -> Result) async throws -> Result {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        configuration.decompression = .disabled
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
        var request = HTTPClientRequest(url: endpoint.baseURL + path)
        request.method = .POST
        addHeaders(&request.headers)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body)
        return try await execute(request)
    }

    public func get(_ path: String) async throws -> IntercomResponse {
        var request = HTTPClientRequest(url: endpoint.baseURL + path)
        request.method = .GET
        addHeaders(&request.headers)
        return try await execute(request)
    }

    private func addHeaders(_ headers: inout HTTPHeaders) {
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Intercom-Version", value: "1.4")
        headers.add(name: "User-Agent", value: ToolInfo.userAgent)
        headers.add(name: "Authorization", value: credentials.authorizationHeader)
    }

    private func execute(_ request: HTTPClientRequest) async throws -> IntercomResponse {
        let response = try await http.execute(request, timeout: requestTimeout)
        let body = try await response.body.collect(upTo: 16 << 20)
        return IntercomResponse(status: Int(response.status.code), headers: response.headers, body: body)
    }
}
