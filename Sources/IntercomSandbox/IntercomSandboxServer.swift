import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A local server that answers like Intercom's legacy bulk API (Intercom-Version 1.4), so the
/// uploader, the CLI and users' own scripts can run a whole backfill without a real workspace.
///
/// Start it, point a client at `baseURL`, read back what it accepted with `acceptedItems()` and
/// `stats()`, and always `shutdown()` it.
public final class IntercomSandboxServer: Sendable {
    /// The port it listens on (the one picked when configured with 0).
    public let port: Int
    /// `http://HOST:PORT`, for clients' `--endpoint`.
    public let baseURL: String
    /// The configuration it runs with.
    public let configuration: SandboxConfiguration

    private let engine: SandboxEngine
    private let group: MultiThreadedEventLoopGroup
    private let channel: Channel
    private let logger: Logger
    private let isShutDown = NIOLockedValueBox(false)

    private init(
        configuration: SandboxConfiguration, engine: SandboxEngine, group: MultiThreadedEventLoopGroup, channel: Channel,
        port: Int, logger: Logger
    ) {
        self.configuration = configuration
        self.engine = engine
        self.group = group
        self.channel = channel
        self.port = port
        self.logger = logger
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        self.baseURL = "http://\(host):\(port)"
    }

    /// Binds and starts serving; returns once the port is open.
    ///
    /// Throws `SandboxError` for a bad configuration, an unwritable record file, or a port that
    /// cannot be bound.
    public static func start(_ configuration: SandboxConfiguration, logger: Logger) async throws -> IntercomSandboxServer {
        try configuration.validate()
        let record = try configuration.recordPath.map { path throws(SandboxError) in try RecordFile(path: path) }
        let engine = SandboxEngine(configuration: configuration, logger: logger, recordFile: record)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(SandboxHTTPHandler(engine: engine))
                }
            }

        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        } catch {
            try? await group.shutdownGracefully()
            record?.closeFile()
            throw SandboxError(
                .bindFailed,
                "cannot listen on \(configuration.host):\(configuration.port) (\(error)); choose another --port, or 0 for any free one"
            )
        }
        let port = channel.localAddress?.port ?? configuration.port
        let server = IntercomSandboxServer(
            configuration: configuration, engine: engine, group: group, channel: channel, port: port, logger: logger)
        engine.setBaseURL(server.baseURL)
        logger.info(
            "sandbox listening",
            metadata: [
                "url": "\(server.baseURL)",
                "auth":
                    "\(configuration.bearerToken == nil && configuration.appID == nil ? "any non-empty token" : "configured credentials only")",
                "rate_limit": "\(configuration.rateLimitPerWindow.map { "\($0) per 10 s" } ?? "none")",
                "fail_rate": "\(configuration.failRate)",
                "latency_ms": "\(configuration.latencyMilliseconds)",
                "job_ttl_s": "\(configuration.jobTTLSeconds)",
            ])
        return server
    }

    /// Counters since start (the same as `GET /sandbox/stats`).
    public func stats() -> SandboxStats {
        engine.stats()
    }

    /// Every item applied, in acceptance order (empty when `retainsAcceptedItems` is off).
    /// Duplicated events and failed items are not in here.
    public func acceptedItems() -> [AcceptedItem] {
        engine.acceptedItems()
    }

    /// Stops listening, closes open connections and the record file. Safe to call twice.
    public func shutdown() async throws {
        let first = isShutDown.withLockedValue { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {
            // Already closed: nothing to do.
        }
        try await group.shutdownGracefully()
        engine.closeRecordFile()
        logger.info("sandbox stopped", metadata: ["url": "\(baseURL)"])
    }
}
