import ArgumentParser
import Foundation
import IntercomBackfill
import IntercomSandbox
import Logging

/// `intercom-backfill [run] [INPUT ...]`: read, map and upload (or `--dry-run`) Segment-spec records.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Read Segment-spec NDJSON (gzip or plain), map it to Intercom bulk items, and upload them (or --dry-run).",
        discussion: """
            INPUT is a file (gzip is detected by its magic bytes, not its name), a folder (every file below it, \
            in byte order of the relative path; names starting with '.' are skipped), or '-' for stdin. \
            With no INPUT, stdin is read when it is not a terminal.

            Exit codes: 0 done, nothing rejected; 1 done, some records rejected or failed; 2 usage or \
            configuration error; 3 fatal error (damaged or unreadable input, authentication, disk), state kept; \
            130/143 stopped by SIGINT/SIGTERM, state kept.
            """
    )

    @Argument(help: ArgumentHelp("Files, folders, or '-' for stdin.", valueName: "INPUT"), completion: .file())
    var inputs: [String] = []

    @Flag(help: "Do not upload: write one JSON line per request that would be sent.")
    var dryRun = false

    @Option(
        help: ArgumentHelp("Where --dry-run writes its request lines ('-' is stdout).", valueName: "PATH"), completion: .file())
    var out: String = "-"

    @Option(help: ArgumentHelp("Folder for checkpoints, rejects.ndjson and the lock.", valueName: "DIR"), completion: .directory)
    var stateDir: String = ".intercom-backfill"

    @Option(help: ArgumentHelp("Write the JSON run report here.", valueName: "PATH"), completion: .file())
    var report: String?

    @Option(help: "Items per bulk request, 1 to 100.")
    var batchSize: Int = 100

    @Option(help: "Longest line accepted, in bytes; longer lines are rejected as line_too_long.")
    var maxLineBytes: Int = 8 << 20

    @Option(help: ArgumentHelp("Intercom API base URL (or INTERCOM_ENDPOINT); http:// only on loopback.", valueName: "URL"))
    var endpoint: String?

    @Option(
        help: ArgumentHelp(
            "Intercom region (default us): api.intercom.io, api.eu.intercom.io, api.au.intercom.io.", valueName: "REGION"))
    var region: IntercomRegion?

    @Option(
        help: ArgumentHelp(
            "Intercom API: auto (the default, or INTERCOM_API_VERSION: bulk, and REST when the workspace has no bulk API), 1.4 (bulk), or 2.N with N >= 13 (REST).",
            valueName: "VERSION"))
    var apiVersion: IntercomAPIVersion?

    @Option(
        help:
            "Batches in flight at most: bulk requests (default 4), or in REST mode batches whose calls run at once (default 64: how far ahead updates merge)."
    )
    var concurrency: Int?

    @Option(
        help: ArgumentHelp(
            "REST mode: calls in flight at most; the limit adapts between 1 and this from latency and 429s.", valueName: "N"))
    var maxInFlight: Int = 64

    @Option(
        help: ArgumentHelp(
            "Read the access token from this file (else INTERCOM_ACCESS_TOKEN, or INTERCOM_APP_ID and INTERCOM_API_KEY).",
            valueName: "PATH"), completion: .file())
    var tokenFile: String?

    @Flag(help: "Start the built-in Intercom sandbox on a free loopback port and upload there (no Intercom account needed).")
    var sandbox = false

    @Option(help: "Retries of a request that failed transiently (429, 408, 5xx, timeouts, dropped connections).")
    var maxRetries: Int = 8

    @Option(
        help: ArgumentHelp(
            "Seconds to wait at the end for Intercom to complete the run's jobs and to read their error feeds.",
            valueName: "SECONDS"))
    var jobWait: Double = 300

    @Option(
        help: ArgumentHelp(
            "Seconds a request may take in all: connecting, sending, and reading the whole answer.", valueName: "SECONDS"))
    var requestTimeout: Double = 60

    @Option(help: ArgumentHelp("Seconds to wait for a connection to Intercom.", valueName: "SECONDS"))
    var connectTimeout: Double = 10

    @Option(
        help: ArgumentHelp(
            "The longest single wait a server can ask for (a rate-limit reset, Retry-After); longer asks are cut to this.",
            valueName: "SECONDS"))
    var maxWait: Double = 900

    @Flag(help: "Forget the checkpoint and start the backfill over (re-sent records are de-duplicated by Intercom).")
    var restart = false

    @Option(
        help: ArgumentHelp(
            "Name stdin's stream so its checkpoint can resume when the same stream is piped again.", valueName: "NAME"))
    var streamName: String?

    @Flag(
        help:
            "Keep reading the last input as it grows (like tail -F): survives rotation and copy-truncate, picks up new files in the folders given; stop with Ctrl-C or SIGTERM."
    )
    var follow = false

    @Flag(help: "No progress line on stderr.")
    var noProgress = false

    @Flag(help: "Only errors on stderr: no progress line and no summary.")
    var quiet = false

    @Option(help: ArgumentHelp("The least severe log messages shown on stderr.", valueName: "LEVEL"))
    var logLevel: LogLevelOption = .info

    @Option(
        help: ArgumentHelp(
            "Log lines as text, or as one JSON object a line (time, level, label, message, metadata).", valueName: "FORMAT"))
    var logFormat: LogFormat = .text

    func validate() throws {
        guard (1...100).contains(batchSize) else {
            throw ValidationError(
                "--batch-size must be between 1 and 100 (Intercom takes at most 100 items a request); got \(batchSize).")
        }
        guard maxLineBytes >= 1024 else { throw ValidationError("--max-line-bytes must be at least 1024; got \(maxLineBytes).") }
        if inputs.isEmpty, isatty(STDIN_FILENO) == 1 {
            throw ValidationError(
                "no INPUT given and stdin is a terminal: name files or folders, or pipe records in (use '-' for stdin).")
        }
        if let concurrency, !(1...64).contains(concurrency) {
            throw ValidationError("--concurrency must be between 1 and 64; got \(concurrency).")
        }
        guard (0...30).contains(maxRetries) else {
            throw ValidationError("--max-retries must be between 0 and 30; got \(maxRetries).")
        }
        guard jobWait >= 0, jobWait.isFinite else { throw ValidationError("--job-wait must be a number of seconds, 0 or more.") }
        for (name, value) in [
            ("--request-timeout", requestTimeout), ("--connect-timeout", connectTimeout), ("--max-wait", maxWait),
        ] {
            guard value.isFinite, value > 0, value <= 86_400 else {
                throw ValidationError("\(name) must be a number of seconds above 0 and at most 86400; got \(value).")
            }
        }
        if dryRun && (restart || streamName != nil) {
            throw ValidationError("--restart and --stream-name are about checkpoints, which a --dry-run does not use.")
        }
        if dryRun && sandbox { throw ValidationError("--dry-run and --sandbox do not go together: a dry run sends nothing.") }
        if sandbox && (endpoint != nil || region != nil) {
            throw ValidationError("--sandbox picks its own endpoint: drop --endpoint/--region.")
        }
        if endpoint != nil && region != nil { throw ValidationError("give --endpoint or --region, not both.") }
        _ = try requestedAPIVersion()
        guard (1...256).contains(maxInFlight) else {
            throw ValidationError("--max-in-flight must be between 1 and 256; got \(maxInFlight).")
        }
    }

    /// `--api-version`, else `INTERCOM_API_VERSION`, else `auto` (contract §8.1).
    private func requestedAPIVersion() throws -> IntercomAPIVersion {
        if let apiVersion { return apiVersion }
        guard let text = ProcessInfo.processInfo.environment["INTERCOM_API_VERSION"], !text.isEmpty else { return .auto }
        guard let version = IntercomAPIVersion(text) else {
            throw ValidationError("INTERCOM_API_VERSION must be auto, 1.4 or 2.N (N >= 13); got '\(text)'.")
        }
        return version
    }

    func run() async throws {
        // A file-size limit (ulimit -f) must fail the write with EFBIG, reported like a full
        // disk, rather than kill the process with SIGXFSZ and lose the summary.
        signal(SIGXFSZ, SIG_IGN)
        let logger = CommandSupport.makeLogger(level: quiet ? .error : logLevel.level, format: logFormat)
        let arguments = inputs.isEmpty ? ["-"] : inputs
        let files: [InputFile]
        do {
            files = try InputDiscovery.expand(arguments)
        } catch {
            CommandSupport.printError("\(error)")
            throw ExitCode(2)
        }

        let stop = StopSignal()
        let signals = SignalWatcher(stop: stop)
        defer { signals.cancel() }

        let options = pipelineOptions(arguments)
        let rejectsPath = (stateDir as NSString).appendingPathComponent("rejects.ndjson")

        let result: RunReport
        do {
            try createDirectories(stateDir)
            let lock = try StateLock(directory: stateDir)
            defer { withExtendedLifetime(lock) {} }
            let progress = ProgressLine(enabled: !noProgress && !quiet && logFormat == .text)
            let registry = InputRegistry(files)
            if dryRun {
                // A dry run neither reads nor writes checkpoints: it must not make a real run skip anything.
                let rejects = try RejectsWriter(path: rejectsPath, append: false)
                let destination: any Destination
                let restTransport: RESTDryRunTransport?
                if case .rest(let minor) = try requestedAPIVersion() {
                    // REST mode's plan: what a workspace that knows nobody would get, with a store in memory.
                    let transport = try RESTDryRunTransport(path: out)
                    var restOptions = RESTDestination.Options()
                    restOptions.sequential = true
                    restOptions.version = "2.\(minor)"
                    destination = RESTDestination(
                        transport: transport, store: try StateStore(path: ":memory:", workspace: "dry-run"), options: restOptions,
                        uploadOptions: UploadOptions(), rejects: rejects, sources: registry, stop: stop, tracker: nil,
                        logger: logger)
                    restTransport = transport
                } else {
                    destination = try DryRunWriter(path: out)
                    restTransport = nil
                }
                result = try await Backfill.run(
                    inputs: files, options: options, destination: destination, rejects: rejects,
                    resume: nil, registry: registry, stop: stop, progress: progress, logger: logger)
                try restTransport?.flush()
            } else {
                let store = CheckpointStore(directory: stateDir)
                if restart { store.remove() }
                let previous = try store.load { logger.warning("\($0)") }
                let rejects = try RejectsWriter(path: rejectsPath, append: previous != nil)
                result = try await upload(
                    files: files, options: options, rejects: rejects, progress: progress, stop: stop,
                    resume: ResumeState(store: store, previous: previous, rejects: rejects), registry: registry, logger: logger)
            }
        } catch let error as CommandError {
            CommandSupport.printError(error.message)
            throw ExitCode(error.exitCode)
        } catch let failure as PipelineFailure {
            // Stopped by a fatal error: still say what was done, in the report and the summary.
            CommandSupport.printError("\(failure.underlying)")
            writeReport(failure.report, rejectsPath: rejectsPath)
            try CommandSupport.exit(.fatal)
            return
        } catch {
            CommandSupport.printError("\(error)")
            try CommandSupport.exit(.fatal)
            return
        }
        guard writeReport(result, rejectsPath: rejectsPath) else {
            try CommandSupport.exit(.fatal)
            return
        }
        try CommandSupport.exit(ExitStatus(report: result, stoppedBy: stop.requestedBy))
    }

    private func pipelineOptions(_ arguments: [String]) -> PipelineOptions {
        var options = PipelineOptions()
        options.streamName = streamName
        options.follow = follow
        options.followFolders = arguments.filter { path in
            var isFolder: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
        }
        options.batchSize = batchSize
        options.concurrency = dryRun ? 1 : concurrency ?? 4
        options.maxLineBytes = maxLineBytes
        return options
    }

    /// The JSON report (when asked for) and the summary on stderr; false when the report cannot be written.
    @discardableResult
    private func writeReport(_ result: RunReport, rejectsPath: String) -> Bool {
        if !quiet { CommandSupport.printSummary(result.humanSummary(dryRun: dryRun, rejectsPath: rejectsPath)) }
        guard let report else { return true }
        do {
            try result.jsonData().write(to: URL(fileURLWithPath: report))
            return true
        } catch {
            CommandSupport.printError("cannot write the report to \(report): \(error.localizedDescription)")
            return false
        }
    }

    /// The real run: credentials and endpoint (or a private sandbox), one HTTP client for the
    /// whole run, always shut down.
    private func upload(
        files: [InputFile], options: PipelineOptions, rejects: RejectsWriter, progress: ProgressLine,
        stop: StopSignal, resume: ResumeState, registry: InputRegistry, logger: Logger
    ) async throws -> RunReport {
        var uploadOptions = UploadOptions()
        uploadOptions.maxRetries = maxRetries
        uploadOptions.jobWait = jobWait
        uploadOptions.maxWait = maxWait
        uploadOptions.apiVersion = try requestedAPIVersion()

        var sandboxServer: IntercomSandboxServer?
        let credentials: IntercomCredentials
        let target: IntercomEndpoint
        do {
            if sandbox {
                let token = "sandbox-" + UUID().uuidString
                var configuration = SandboxConfiguration(bearerToken: token)
                configuration.retainsAcceptedItems = false
                var sandboxLogger = logger
                sandboxLogger.logLevel = max(logger.logLevel, .warning)
                let server = try await IntercomSandboxServer.start(configuration, logger: sandboxLogger)
                sandboxServer = server
                logger.info("sandbox listening on \(server.baseURL)")
                credentials = .bearer(token)
                target = try IntercomEndpoint(url: server.baseURL)
            } else {
                credentials = try IntercomCredentials.resolve(
                    tokenFile: tokenFile, environment: ProcessInfo.processInfo.environment)
                if let url = endpoint ?? ProcessInfo.processInfo.environment["INTERCOM_ENDPOINT"] {
                    target = try IntercomEndpoint(url: url)
                } else {
                    target = IntercomEndpoint.region(region ?? .us)
                }
            }
        } catch let error as IntercomCredentials.Missing {
            throw CommandError(message: error.description, exitCode: 2)
        } catch let error as IntercomEndpoint.Invalid {
            throw CommandError(message: error.description, exitCode: 2)
        }
        logger.debug("uploading", metadata: ["endpoint": "\(target)", "credentials": "\(credentials)"])

        let result: RunReport
        do {
            result = try await IntercomClient.withHTTPClient(connectTimeout: connectTimeout, readTimeout: requestTimeout) {
                http in
                let client = IntercomClient(
                    http: http, endpoint: target, credentials: credentials, requestTimeout: requestTimeout)
                let destination = try destination(
                    client: client, uploadOptions: uploadOptions, rejects: rejects, registry: registry, stop: stop,
                    resume: resume, logger: logger)
                return try await Backfill.run(
                    inputs: files, options: options, destination: destination, rejects: rejects, resume: resume,
                    registry: registry, stop: stop, progress: progress, logger: logger)
            }
        } catch {
            try? await sandboxServer?.shutdown()
            throw error
        }
        if let sandboxServer {
            let stats = sandboxServer.stats()
            if !quiet {
                CommandSupport.printSummary(
                    "sandbox at \(sandboxServer.baseURL) accepted \(stats.itemsAccepted.users) users and \(stats.itemsAccepted.events) events (\(stats.duplicates) duplicate events ignored)"
                )
            }
            try? await sandboxServer.shutdown()
        }
        return result
    }
}

extension RunCommand {
    /// The bulk uploader, the REST destination, or (`auto`) the bulk uploader that falls back to
    /// REST mode (contract §8.1). A resumed `auto` run keeps the API its checkpoint names.
    private func destination(
        client: IntercomClient, uploadOptions: UploadOptions, rejects: RejectsWriter, registry: InputRegistry,
        stop: StopSignal, resume: ResumeState, logger: Logger
    ) throws -> any Destination {
        var requested = uploadOptions.apiVersion
        if requested == .auto, let remembered = resume.previous?.api, let version = IntercomAPIVersion(remembered) {
            logger.info("resuming with the API the checkpoint names: \(remembered)")
            requested = version
        }
        func bulk(_ version: IntercomAPIVersion) -> Uploader {
            var options = uploadOptions
            options.apiVersion = version
            return Uploader(
                client: client, options: options, rejects: rejects, sources: registry, stop: stop, tracker: resume.tracker,
                logger: logger)
        }
        @Sendable func rest(minor: Int) throws -> RESTDestination {
            let path = (stateDir as NSString).appendingPathComponent("rest-state.sqlite")
            let store = try StateStore(path: path, workspace: RESTDestination.workspaceIdentity(of: client))
            if store.wasReset { logger.notice("the REST state store \(path) was for another workspace: starting it afresh") }
            // What the workspace has stays known; the events are sent again (Intercom de-duplicates them).
            if restart { try store.forgetSentEvents() }
            var options = RESTDestination.Options()
            options.maxConcurrency = maxInFlight
            options.window = concurrency ?? 64
            options.version = "2.\(minor)"
            return RESTDestination(
                transport: client.speaking(options.version), store: store, options: options, uploadOptions: uploadOptions,
                rejects: rejects, sources: registry, stop: stop, tracker: resume.tracker, logger: logger)
        }
        switch requested {
        case .bulk:
            resume.tracker.setAPI(IntercomAPIVersion.bulk.description)
            return bulk(.bulk)
        case .rest(let minor):
            resume.tracker.setAPI("2.\(minor)")
            return try rest(minor: minor)
        case .auto:
            let tracker = resume.tracker
            return AutoAPIDestination(
                bulk: bulk(.auto), rest: { try rest(minor: IntercomAPIVersion.defaultRESTMinor) }, logger: logger,
                onFallback: { tracker.setAPI($0) })
        }
    }
}

/// An error the command reports with its own exit code.
struct CommandError: Error {
    var message: String
    var exitCode: Int32
}
