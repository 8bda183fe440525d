import ArgumentParser
import IntercomBackfill

/// The root command: `run` is the default, so `intercom-backfill FILES...` works as written in cron jobs.
@main
struct IntercomBackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intercom-backfill",
        abstract: "Backfill Segment-spec clickstream archives (gzip or plain NDJSON) into Intercom.",
        version: ToolInfo.version,
        subcommands: [RunCommand.self, SandboxCommand.self, StatusCommand.self],
        defaultSubcommand: RunCommand.self
    )
}
