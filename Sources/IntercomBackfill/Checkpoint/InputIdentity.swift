#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An input's content fingerprint (README, "Resuming"): a hash of its first bytes plus its size, so a
/// renamed or moved archive is still recognised and a different file at the same path is not.
struct InputIdentity: Sendable {
    /// Enough bytes to tell archives apart; the same length is read whenever the file has it, so
    /// a file that grows keeps its identity once it is this long.
    static let headLength = 64 << 10

    var headHash: String
    var headLength: Int
    var size: Int64?
    /// The first bytes themselves, to recognise a checkpoint entry made when the file was shorter.
    var head: [UInt8] = []

    static func read(_ input: InputFile) throws -> InputIdentity {
        guard let path = input.path else { return InputIdentity(headHash: "", headLength: 0, size: nil) }
        let fd = InputDiscovery.openForReading(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code: InputError.Code = errno == ENOENT ? .notFound : errno == EACCES ? .permissionDenied : .unreadable
            throw InputError(
                code: code, source: input.displayPath, message: "cannot open the file",
                cause: SystemCallError(systemCall: "open", errno: errno))
        }
        defer { close(fd) }
        var info = stat()
        let size: Int64? = fstat(fd, &info) == 0 ? Int64(info.st_size) : nil
        var buffer = [UInt8](repeating: 0, count: headLength)
        var filled = 0
        while filled < headLength {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, headLength - filled, off_t(filled)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            filled += n
        }
        let hash = buffer.withUnsafeBytes { StableHash.hex(of: UnsafeRawBufferPointer(rebasing: $0[0..<filled])) }
        return InputIdentity(headHash: hash, headLength: filled, size: size, head: Array(buffer[0..<filled]))
    }

    /// The checkpoint entry for this content: same first `headLength` bytes. An entry made while
    /// the file was shorter than `headLength` (a small file that then grew) still matches.
    func entry(in file: CheckpointFile) -> InputCheckpoint? {
        if let exact = file.entry(headHash: headHash, headLength: headLength, streamName: nil) { return exact }
        return file.inputs.last { entry in
            entry.streamName == nil && entry.headLength < headLength && entry.headLength > 0
                && head.withUnsafeBytes { StableHash.hex(of: UnsafeRawBufferPointer(rebasing: $0[0..<entry.headLength])) }
                    == entry.headHash
        }
    }
}

extension CheckpointCounts {
    /// The routing counts of a report (uploads are derived from these and `failed`).
    init(_ report: RunReport, warnings: ReasonCounts<MappingWarning>) {
        self.init()
        records = report.records
        mappedUsers = report.mappedUsers
        mappedEvents = report.mappedEvents
        skipped = report.skipped.byCode
        rejected = report.rejected.byCode
        self.warnings = warnings.byCode
    }
}

extension RunReport {
    /// Adds what earlier runs did for the inputs named, so the report covers the whole backfill.
    /// Earlier mapped items that did not fail were accepted: that is what let the checkpoint pass them.
    mutating func add(earlier: CheckpointCounts) {
        resumedRecords = earlier.records
        records += earlier.records
        mappedUsers += earlier.mappedUsers
        mappedEvents += earlier.mappedEvents
        for (code, n) in earlier.skipped { if let r = SkipReason(rawValue: code) { skipped.add(r, n) } }
        for (code, n) in earlier.rejected { if let r = RejectReason(rawValue: code) { rejected.add(r, n) } }
        for (code, n) in earlier.warnings { if let w = MappingWarning(rawValue: code) { warnings.add(w, n) } }
        for (code, n) in earlier.failed { failed[code, default: 0] += n }
        let earlierFailed = earlier.failed.values.reduce(0, +)
        // Failed items are not told apart by kind in the checkpoint: take them from events first.
        let failedEvents = min(earlierFailed, earlier.mappedEvents)
        uploadedEvents += earlier.mappedEvents - failedEvents
        uploadedUsers += earlier.mappedUsers - min(earlierFailed - failedEvents, earlier.mappedUsers)
    }
}
