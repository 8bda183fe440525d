import ArgumentParser
import IntercomBackfill

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Read, map and upload (or --dry-run) records.")
    func run() async throws {}
}
