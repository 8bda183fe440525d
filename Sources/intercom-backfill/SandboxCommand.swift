import ArgumentParser
import Dispatch
import Foundation
import IntercomBackfill
import IntercomSandbox
import Logging

/// `intercom-backfill sandbox`: a local Intercom-compatible bulk API server, so a backfill (or any
/// script) can be tried end to end without touching a real workspace.
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local Intercom-compatible server (bulk API 1.x and REST API 2.x).",
        discussion: """
            Serves POST /bulk/users, POST /bulk/events, GET /jobs/{id} and GET /jobs/{id}/error \
            like Intercom's legacy bulk API under Intercom-Version 1.x, and the 2.x REST calls \
            (/contacts, /contacts/search, /companies, /data_attributes, /events) under 2.x, over \
            one workspace. A request without Intercom-Version gets --default-version. Its own \
            routes need no auth: GET /sandbox/stats (counters), GET /sandbox/items (accepted bulk \
            items as NDJSON, with --keep-items), GET /sandbox/state (the whole workspace as JSON) \
            and POST /sandbox/seed (preload contacts, companies, attributes; archive, merge).

            The first line on standard output is `listening on http://HOST:PORT`; logs go to \
            standard error. It runs until SIGINT (Ctrl-C) or SIGTERM, then stops cleanly.

            Auth: a Bearer token (--token or INTERCOM_SANDBOX_TOKEN; also taken as HTTP Basic \
            user name with an empty password) and/or an app id and API key for HTTP Basic \
            (INTERCOM_APP_ID and INTERCOM_API_KEY). With none of them set, any \
            non-empty Bearer token (or Basic pair) is accepted; a missing or malformed \
            Authorization header is always 401. Tokens are never logged.

            Example:
              intercom-backfill sandbox --port 8787 --token dev --rate-limit 50
              INTERCOM_ACCESS_TOKEN=dev intercom-backfill --endpoint http://127.0.0.1:8787 FILES...
            """
    )

    @Option(help: "Address to listen on. Keep it on loopback: the sandbox has no TLS.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks any free port (read it from the first output line).")
    var port = 0

    @Option(
        help: ArgumentHelp(
            "The only Bearer token accepted (a throwaway sandbox credential; default: $INTERCOM_SANDBOX_TOKEN). Without any credential set, any non-empty token is accepted.",
            valueName: "token"))
    var token: String?

    @Option(
        name: .customLong("rate-limit"),
        help: ArgumentHelp(
            "Requests allowed per 10-second window, then 429 until the window ends. Default: unlimited (headers report 100000).",
            valueName: "n"))
    var rateLimit: Int?

    @Option(
        name: .customLong("fail-rate"),
        help: ArgumentHelp(
            "Share of writes (POST /bulk/* and 2.x calls other than GET; 0 to 1) answered with a fault instead of being applied: 500, 503 or a dropped connection.",
            valueName: "p"))
    var failRate: Double = 0

    @Option(
        name: .customLong("latency-ms"),
        help: ArgumentHelp("Delay every Intercom API answer (bulk and 2.x) by this many milliseconds.", valueName: "ms"))
    var latencyMilliseconds = 0

    @Option(
        help: ArgumentHelp(
            "Write every accepted bulk item and every 2.x call that changed the workspace to this NDJSON file, one a line (truncated at start).",
            valueName: "path"))
    var record: String?

    @Option(
        help: ArgumentHelp("Seed for the fault dice: the same seed and the same requests meet the same faults.", valueName: "s"))
    var seed: UInt64 = 0

    @Option(
        name: .customLong("job-ttl"),
        help: ArgumentHelp("Seconds a job accepts appended items after its creation (Intercom: about 900).", valueName: "seconds")
    )
    var jobTTL = 900

    @Option(
        name: .customLong("job-completion"),
        help: ArgumentHelp(
            "When a job reports state \"completed\": when-tasks-done (right after each request) or at-closing (only after its closing_at).",
            valueName: "when"))
    var jobCompletion: SandboxConfiguration.JobCompletion = .whenTasksDone

    @Option(
        name: .customLong("search-lag"),
        help: ArgumentHelp(
            "Seconds a new contact stays out of POST /contacts/search, as Intercom's index lags (find_by_external_id and 409s see it at once).",
            valueName: "seconds"))
    var searchLag: Double = 0

    @Option(
        name: .customLong("default-version"),
        help: ArgumentHelp(
            "The workspace's API version, for requests without an Intercom-Version header (1.x: bulk API, 2.x: REST).",
            valueName: "version"))
    var defaultVersion = "2.14"

    @Flag(
        name: .customLong("no-bulk"),
        help: "No bulk API under any version (400 intercom_version_invalid), to test a client's fallback to 2.x.")
    var noBulk = false

    @Option(
        name: .customLong("bulk-cost"),
        help: ArgumentHelp(
            "What a bulk request costs in the rate-limit budget: request (one unit) or items (one unit an item).",
            valueName: "cost"))
    var bulkCost: SandboxConfiguration.BulkCost = .request

    @Flag(
        name: .customLong("keep-items"),
        help: "Also keep accepted items in memory and serve them at GET /sandbox/items (grows with the run; --record does not).")
    var keepItems = false

    @Flag(help: "Log every request (method, path, status) to standard error.")
    var verbose = false

    /// The server configuration from the options and the environment.
    func sandboxConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) -> SandboxConfiguration {
        func env(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        var configuration = SandboxConfiguration(
            host: host,
            port: port,
            bearerToken: token ?? env("INTERCOM_SANDBOX_TOKEN"),
            appID: env("INTERCOM_APP_ID"),
            apiKey: env("INTERCOM_API_KEY"),
            rateLimitPerWindow: rateLimit,
            failRate: failRate,
            latencyMilliseconds: latencyMilliseconds,
            seed: seed,
            recordPath: record,
            jobTTLSeconds: jobTTL,
            jobCompletion: jobCompletion,
            // A sandbox may serve a whole backfill: items go to the record file, not memory,
            // unless asked.
            retainsAcceptedItems: keepItems
        )
        configuration.searchLagSeconds = searchLag
        configuration.defaultVersion = defaultVersion
        configuration.bulkAvailable = !noBulk
        configuration.bulkCost = bulkCost
        return configuration
    }

    func validate() throws {
        do {
            try sandboxConfiguration().validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        // Take over SIGINT/SIGTERM before announcing the port, so a caller that signals as soon
        // as it reads the first line gets a clean shutdown.
        let stop = StopSignal()
        let signals = SignalWatcher(stop: stop)
        defer { signals.cancel() }
        var logger = Logger(label: "intercom-backfill.sandbox") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = verbose ? .debug : .info

        let server = try await IntercomSandboxServer.start(sandboxConfiguration(), logger: logger)
        // Unbuffered: scripts and tests wait for this line to learn the port.
        FileHandle.standardOutput.write(Data("listening on \(server.baseURL)\n".utf8))

        await stop.wait()
        logger.info("sandbox: \(stop.requestedBy == SIGINT ? "SIGINT" : "SIGTERM") received, shutting down")
        try await server.shutdown()
    }
}

extension SandboxConfiguration.JobCompletion: ExpressibleByArgument {}
extension SandboxConfiguration.BulkCost: ExpressibleByArgument {}
