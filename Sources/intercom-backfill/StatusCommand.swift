import ArgumentParser
import Foundation
import IntercomBackfill

/// `intercom-backfill status`: what the checkpoint says, per input, without touching anything.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how far each input got, what is left, and the jobs whose error feeds are unread."
    )

    @Option(help: ArgumentHelp("Folder for checkpoints, rejects.ndjson and the lock.", valueName: "DIR"), completion: .directory)
    var stateDir: String = ".intercom-backfill"

    func run() throws {
        let store = CheckpointStore(directory: stateDir)
        let file: CheckpointFile?
        do {
            file = try store.load { print("warning: \($0)") }
        } catch {
            CommandSupport.printError("\(error)")
            throw ExitCode(3)
        }
        guard let file else {
            print("no checkpoint in \(stateDir): no upload has run with this state folder yet")
            return
        }
        let updated = Date(timeIntervalSince1970: file.updatedAt)
        print("checkpoint \(store.path), written by \(file.tool) at \(ISO8601DateFormatter().string(from: updated))")
        if let api = file.api {
            print("  API: \(api) (\(api.hasPrefix("2.") ? "REST mode, state store rest-state.sqlite" : "the bulk API"))")
        }
        for entry in file.inputs {
            let name = entry.streamName.map { "stdin stream '\($0)'" } ?? entry.source
            let counts = entry.counts
            let state = entry.complete ? "complete" : "in progress"
            var line = "  \(name): \(state), \(entry.line) lines (\(entry.offset) bytes) done; "
            line += "\(counts.records) records: \(counts.mappedUsers) users, \(counts.mappedEvents) events mapped, "
            line +=
                "\(counts.skipped.values.reduce(0, +)) skipped, \(counts.rejected.values.reduce(0, +)) rejected, \(counts.failed.values.reduce(0, +)) failed"
            if !entry.complete, let size = entry.size, let path = Optional(entry.source), isPlain(path) {
                line += "; about \(max(0, size - entry.offset)) bytes left"
            } else if !entry.complete {
                line += "; the rest of the input is left"
            }
            print(line)
        }
        if file.pendingJobs.isEmpty {
            print("  no Intercom job error feeds left unread")
        } else {
            for job in file.pendingJobs { print("  job \(job.id) (\(job.kind)s): error feed not read yet") }
        }
    }

    /// Whether the file on disk is plain text (offsets then compare with its size).
    private func isPlain(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = handle.readData(ofLength: 2)
        return !(head.count == 2 && head[head.startIndex] == 0x1F && head[head.startIndex + 1] == 0x8B)
    }
}
