import Foundation

/// The counts of the run report that a checkpoint keeps per input, so a resumed run can report
/// the whole backfill (contract §7).
public struct CheckpointCounts: Codable, Sendable, Equatable {
    public var records = 0
    public var mappedUsers = 0
    public var mappedEvents = 0
    public var skipped: [String: Int] = [:]
    public var rejected: [String: Int] = [:]
    public var warnings: [String: Int] = [:]
    public var failed: [String: Int] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case records, skipped, rejected, warnings, failed
        case mappedUsers = "mapped_users"
        case mappedEvents = "mapped_events"
    }

    public mutating func add(_ other: CheckpointCounts) {
        records += other.records
        mappedUsers += other.mappedUsers
        mappedEvents += other.mappedEvents
        for (k, v) in other.skipped { skipped[k, default: 0] += v }
        for (k, v) in other.rejected { rejected[k, default: 0] += v }
        for (k, v) in other.warnings { warnings[k, default: 0] += v }
        for (k, v) in other.failed { failed[k, default: 0] += v }
    }

    /// `self - earlier` for the routing counts (failed is kept as given).
    func subtracting(_ earlier: CheckpointCounts) -> CheckpointCounts {
        var result = self
        result.records -= earlier.records
        result.mappedUsers -= earlier.mappedUsers
        result.mappedEvents -= earlier.mappedEvents
        for (k, v) in earlier.skipped { result.skipped[k, default: 0] -= v }
        for (k, v) in earlier.rejected { result.rejected[k, default: 0] -= v }
        for (k, v) in earlier.warnings { result.warnings[k, default: 0] -= v }
        result.skipped = result.skipped.filter { $0.value != 0 }
        result.rejected = result.rejected.filter { $0.value != 0 }
        result.warnings = result.warnings.filter { $0.value != 0 }
        return result
    }
}

/// How far one input got: every record up to `line` (ending at uncompressed `offset`) has been
/// accepted by Intercom or written down (the contiguous low-water mark of acknowledgements).
public struct InputCheckpoint: Codable, Sendable, Equatable {
    /// The path as given, for people (`status`); inputs are matched by content, not by path.
    public var source: String
    /// `--stream-name` for stdin.
    public var streamName: String?
    /// Fingerprint: a hash of the first `headLength` raw bytes of the file.
    public var headHash: String
    public var headLength: Int
    /// Raw size when last seen, to tell a finished file from one that grew.
    public var size: Int64?
    public var line: Int
    public var offset: Int64
    public var complete: Bool
    /// stdin only: a hash of the first bytes of the skipped prefix, checked before skipping.
    public var prefixHash: String?
    public var counts: CheckpointCounts

    enum CodingKeys: String, CodingKey {
        case source, size, line, offset, complete, counts
        case streamName = "stream_name"
        case headHash = "head_hash"
        case headLength = "head_length"
        case prefixHash = "prefix_hash"
    }
}

/// An Intercom job whose error feed has not been read yet.
public struct PendingJob: Codable, Sendable, Equatable {
    public var id: String
    public var kind: String
}

/// `<state-dir>/checkpoint.json`: versioned, checksummed, written atomically.
public struct CheckpointFile: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var version = CheckpointFile.currentVersion
    public var tool = ToolInfo.userAgent
    public var updatedAt: Double = 0
    public var inputs: [InputCheckpoint] = []
    public var pendingJobs: [PendingJob] = []
    /// The API the backfill speaks ("1.4", "2.14"): a resumed `auto` run keeps it (contract §8.1).
    public var api: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case version, tool, inputs, api
        case updatedAt = "updated_at"
        case pendingJobs = "pending_jobs"
    }

    /// The entry for an input whose first bytes hash as given (or the stdin stream of that name).
    public func entry(headHash: String, headLength: Int, streamName: String?) -> InputCheckpoint? {
        if let streamName { return inputs.last { $0.streamName == streamName } }
        return inputs.last { $0.streamName == nil && $0.headHash == headHash && $0.headLength == headLength }
    }

    public mutating func upsert(_ entry: InputCheckpoint) {
        if let index = inputs.firstIndex(where: {
            $0.streamName == entry.streamName
                && (entry.streamName != nil || ($0.headHash == entry.headHash && $0.headLength == entry.headLength))
        }) {
            inputs[index] = entry
        } else {
            inputs.append(entry)
        }
    }
}

/// Why the state could not be read or written.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Reads and writes the checkpoint. A write goes to a temporary file, is fsynced, the current
/// file becomes the previous one, the new one takes its name, and the folder is fsynced: at any
/// crash point one complete, checksummed version survives.
public struct CheckpointStore: Sendable {
    public let directory: String
    public var path: String { directory + "/checkpoint.json" }
    var previousPath: String { directory + "/checkpoint.prev.json" }
    var temporaryPath: String { directory + "/checkpoint.json.tmp" }

    public init(directory: String) {
        self.directory = directory
    }

    /// The saved state: nil on a first run. A damaged current file falls back to the previous
    /// good one (with a warning through `warn`); when both are damaged it throws rather than
    /// silently starting from zero.
    public func load(warn: (String) -> Void) throws -> CheckpointFile? {
        let fm = FileManager.default
        let current = fm.fileExists(atPath: path) ? Result { try decode(path) } : nil
        if case .success(let file)? = current { return file }
        let previous = fm.fileExists(atPath: previousPath) ? Result { try decode(previousPath) } : nil
        switch (current, previous) {
        case (nil, nil):
            return nil
        case (_, .success(let file)?):
            warn(
                "the checkpoint \(path) is \(current == nil ? "missing" : "damaged"); using the previous good one (\(previousPath)): a few more records may be sent again, which Intercom de-duplicates"
            )
            return file
        case (.failure(let error)?, _):
            throw CheckpointError(
                description:
                    "the checkpoint \(path) is damaged (\(error)) and there is no good previous copy. Nothing was changed. Run with --restart to start the backfill over (Intercom de-duplicates re-sent records), or restore the file."
            )
        case (nil, .failure(let error)?):
            throw CheckpointError(
                description:
                    "the checkpoint is missing and its previous copy \(previousPath) is damaged (\(error)). Run with --restart to start the backfill over."
            )
        default:
            return nil
        }
    }

    private func decode(_ file: String) throws -> CheckpointFile {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let newline = data.firstIndex(of: UInt8(ascii: "\n")) else {
            throw CheckpointError(description: "no checksum line")
        }
        let header = String(decoding: data[..<newline], as: UTF8.self)
        let body = data[(newline + 1)...]
        let expected = body.withUnsafeBytes { StableHash.hex(of: $0) }
        guard header == "checksum " + expected else {
            throw CheckpointError(description: "checksum mismatch: the file was cut short or changed")
        }
        let file = try JSONDecoder().decode(CheckpointFile.self, from: Data(body))
        guard file.version == CheckpointFile.currentVersion else {
            throw CheckpointError(
                description: "version \(file.version) is not the version \(CheckpointFile.currentVersion) this tool writes")
        }
        return file
    }

    /// Writes `file` crash-safely. Throws `OutputError` (full disk, permissions) and leaves the
    /// last good checkpoint in place.
    public func save(_ file: CheckpointFile) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let body = try encoder.encode(file)
        let checksum = body.withUnsafeBytes { StableHash.hex(of: $0) }
        var data = Data("checksum \(checksum)\n".utf8)
        data.append(body)
        let writer = try BufferedFileWriter(path: temporaryPath)
        try data.withUnsafeBytes { try writer.write($0) }
        try writer.sync()
        if rename(path, previousPath) != 0, errno != ENOENT {
            throw OutputError(path: previousPath, operation: "rename the checkpoint to", errno: errno)
        }
        guard rename(temporaryPath, path) == 0 else {
            throw OutputError(path: path, operation: "rename the new checkpoint to", errno: errno)
        }
        let folder = open(directory, O_RDONLY | O_DIRECTORY)
        if folder >= 0 {
            _ = fsync(folder)
            _ = close(folder)
        }
    }

    /// Forgets the saved state (`--restart`).
    public func remove() {
        for file in [path, previousPath, temporaryPath] { unlink(file) }
    }
}
