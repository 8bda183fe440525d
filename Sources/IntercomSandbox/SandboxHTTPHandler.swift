import NIOCore
import NIOHTTP1

/// One per connection, on its event loop: aggregates a request (up to the body limit), asks the
/// engine, and writes the answer, after the configured latency if any, without blocking the loop.
final class SandboxHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let engine: SandboxEngine
    private let maxBodyBytes: Int
    private let latency: TimeAmount?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false

    init(engine: SandboxEngine) {
        self.engine = engine
        self.maxBodyBytes = engine.configuration.maxBodyBytes
        let milliseconds = engine.configuration.latencyMilliseconds
        self.latency = milliseconds > 0 ? .milliseconds(Int64(milliseconds)) : nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            bodyTooLarge = false
            // curl asks before sending bodies over 1 KiB; answer at once instead of making it wait.
            if head.version.major == 1, head.version.minor >= 1,
                head.headers["Expect"].contains(where: { $0.lowercased() == "100-continue" })
            {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(let chunk):
            guard !bodyTooLarge else { return }
            if body.count + chunk.readableBytes > maxBodyBytes {
                // Keep reading (and discarding) to the end, then answer 413 on a healthy connection.
                bodyTooLarge = true
                body = []
            } else {
                body.append(contentsOf: chunk.readableBytesView)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = SandboxRequest(
                method: head.method, uri: head.uri, headers: head.headers, body: body, bodyTooLarge: bodyTooLarge)
            body = []
            let outcome = engine.handle(request)
            let keepAlive = head.isKeepAlive
            let version = head.version
            let delayed: Bool
            switch outcome {
            case .respond(let response): delayed = response.delayed
            case .dropConnection: delayed = true
            }
            if let latency, delayed {
                context.eventLoop.assumeIsolated().scheduleTask(in: latency) {
                    self.emit(outcome, keepAlive: keepAlive, version: version, context: context)
                }
            } else {
                emit(outcome, keepAlive: keepAlive, version: version, context: context)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func emit(_ outcome: SandboxOutcome, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        switch outcome {
        case .dropConnection:
            context.close(promise: nil)
        case .respond(let response):
            var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
            buffer.writeString(response.body)
            var headers = HTTPHeaders()
            headers.reserveCapacity(response.headers.count + 3)
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: String(buffer.readableBytes))
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status.nio, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}

extension HTTPStatus {
    /// NIO's status of this code: a standard code gets its named case, so its reason phrase.
    var nio: HTTPResponseStatus { HTTPResponseStatus(statusCode: code) }
}
