import ArgumentParser
import Dispatch
import Foundation
import IntercomBackfill
import Logging
import Synchronization

/// What every command shares: logging on stderr, error and summary output, exit codes.
enum CommandSupport {
    /// Bootstraps swift-log once for the process: text (swift-log's stream handler) or JSON lines, on stderr.
    static func makeLogger(level: Logger.Level, format: LogFormat = .text) -> Logger {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: ToolInfo.name)
        logger.logLevel = level
        if format == .json {
            // Errors and the summary must reach a log shipper whatever the level.
            var messages = Logger(label: ToolInfo.name)
            messages.logLevel = .trace
            jsonMessages.withLock { $0 = messages }
        }
        return logger
    }

    /// With `--log-format json`, errors and the summary are JSON log lines too, so every line on
    /// stderr is one JSON object.
    private static let jsonMessages = Mutex<Logger?>(nil)

    static func printError(_ message: String) {
        if let logger = jsonMessages.withLock({ $0 }) {
            logger.error("\(message)")
            return
        }
        writeToStandardError("intercom-backfill: error: \(message)\n")
    }

    static func printSummary(_ summary: String) {
        if let logger = jsonMessages.withLock({ $0 }) {
            logger.notice("\(summary)", metadata: ["kind": "summary"])
            return
        }
        writeToStandardError("intercom-backfill: \(summary)\n")
    }

    /// Plain write(2), failures ignored: FileHandle traps when stderr cannot be written (a full
    /// disk behind a redirect), and a message must never be what crashes the tool.
    static func writeToStandardError(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// Ends the command with `status` (ArgumentParser's way of setting the exit code).
    static func exit(_ status: ExitStatus) throws {
        if status != .clean { throw ExitCode(status.code) }
    }
}

/// Turns SIGINT/SIGTERM into a stop request; a second signal ends the process at once.
final class SignalWatcher: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    init(stop: StopSignal) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.isRequested { exit(128 + number) }
                stop.request(signal: number)
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
