import ArgumentParser
import IntercomBackfill

@main
struct IntercomBackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intercom-backfill",
        abstract: "Backfill Segment-spec clickstream archives into Intercom.",
        version: ToolInfo.version
    )
}
