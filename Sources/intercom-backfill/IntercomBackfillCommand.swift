import ArgumentParser
import CMalloc
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
        // One malloc arena, before the threads start: by default glibc gives each thread that
        // meets a busy arena its own (up to 8 a core), and what each one frees stays in it. A
        // REST run of 200,000 users peaked at 73 MB RSS with the default, 58 MB with one, for a
        // heap of 24 MB; the throughput benchmark did not change (bench/README.md).
        _ = cmalloc_limit_arenas(1)
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["--help"] || arguments == ["-h"] || arguments == ["help"] {
            // The root's help names only the subcommands; most users call the default one, so
            // its options (with their values and defaults) follow.
            print(helpMessage())
            print("\nThe default subcommand, run (intercom-backfill run --help):\n")
            print(helpMessage(for: RunCommand.self))
            return
        }
        if let shell = CompletionScript.requestedShell(arguments) {
            print(CompletionScript.script(for: shell), terminator: "")
            return
        }
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
