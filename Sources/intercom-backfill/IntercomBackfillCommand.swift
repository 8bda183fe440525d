import ArgumentParser
import Foundation
import IntercomBackfill

/// The root command: `run` is the default, so `intercom-backfill FILES...` works as written in cron jobs.
@main
struct IntercomBackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intercom-backfill",
        abstract: "Backfill Segment-spec clickstream archives (gzip or plain NDJSON) into Intercom.",
        version: ToolInfo.versionDescription,
        subcommands: [RunCommand.self, SandboxCommand.self, StatusCommand.self],
        defaultSubcommand: RunCommand.self
    )

    /// Parses and runs like ArgumentParser does, except that usage errors exit 2 (the documented
    /// code scripts rely on) rather than ArgumentParser's 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                CommandSupport.writeToStandardError(fullMessage(for: error) + "\n")
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
