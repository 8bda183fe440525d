import ArgumentParser
import IntercomSandbox

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sandbox", abstract: "Run a local Intercom-compatible bulk API server.")
    func run() async throws {}
}
