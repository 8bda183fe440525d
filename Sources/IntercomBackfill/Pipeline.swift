import Logging

/// Settings of the read -> parse -> map -> batch path.
public struct PipelineOptions: Sendable {
    public var batchSize = 100
    public var maxLineBytes = 8 << 20
    /// How much decompressed input is read at a time.
    public var chunkSize = 256 << 10
    /// Names stdin's checkpoint (`--stream-name`); without it stdin is not checkpointed.
    public var streamName: String?
    /// `--follow`: keep reading the last input as it grows (like `tail -F`), survive rotation,
    /// and pick up new files in `followFolders`.
    public var follow = false
    public var followFolders: [String] = []
    public var followPollInterval = 0.2
    /// Seconds between checkpoint writes when nothing else asks for one.
    public var checkpointInterval = 1.0
    /// A checkpoint is also written as soon as this many batches were settled since the last one
    /// (set to the upload concurrency): what a crash re-sends stays a few batches.
    public var checkpointBacklog = 4

    public init() {}
}

/// Checkpointing for a run: where acknowledgements are tracked and what an earlier run saved.
public struct ResumeState: Sendable {
    public var tracker: CheckpointTracker
    public var previous: CheckpointFile?

    public init(tracker: CheckpointTracker, previous: CheckpointFile?) {
        self.tracker = tracker
        self.previous = previous
    }
}

/// The whole flow in one place:
/// inputs -> byte source (plain or gzip) -> lines -> records -> Intercom items -> batches -> sink,
/// with rejects written as they happen, every record counted in exactly one bucket, and (when
/// `resume` is given) checkpoints that let a rerun continue where this one stopped.
public final class Pipeline {
    public let inputs: [InputFile]
    public let options: PipelineOptions
    private let sink: any BatchSink
    private let rejects: RejectsWriter
    private let progress: ProgressLine?
    private let stop: StopSignal
    private let resume: ResumeState?
    private let registry: InputRegistry
    private let logger: Logger

    public init(inputs: [InputFile], options: PipelineOptions, sink: any BatchSink, rejects: RejectsWriter,
                progress: ProgressLine?, stop: StopSignal = StopSignal(), resume: ResumeState? = nil,
                registry: InputRegistry? = nil, logger: Logger) {
        self.inputs = inputs
        self.registry = registry ?? InputRegistry(inputs)
        self.options = options
        self.sink = sink
        self.rejects = rejects
        self.progress = progress
        self.stop = stop
        self.resume = resume
        self.logger = logger
    }

    /// Runs every input in order. A damaged input is reported and the others still run; an
    /// output failure (full disk) or a fatal sink error (authentication) ends the run by throwing
    /// a `PipelineFailure` that carries the counts so far, so the report can still be written.
    public func run() async throws -> RunReport {
        let started = MonotonicClock.now()
        var router = RecordRouter(batchSize: options.batchSize, rejects: rejects)
        do {
            return try await run(&router, started: started)
        } catch {
            progress?.finish()
            try? rejects.flush()
            var report = router.report
            report.warnings = router.mapper.warnings
            report.elapsedSeconds = MonotonicClock.now() - started
            throw PipelineFailure(underlying: error, report: report)
        }
    }

    private func run(_ router: inout RecordRouter, started: Double) async throws -> RunReport {
        router.leavesMarks = resume != nil
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: options.chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        let totalBytes: Int64? = inputs.contains { $0.size == nil } ? nil : inputs.reduce(0) { $0 + ($1.size ?? 0) }
        var bytesBefore: Int64 = 0
        var earlier = CheckpointCounts()

        let saver = resume.map { resume in
            Task { [interval = options.checkpointInterval] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                    try? resume.tracker.saveIfChanged(now: SystemUploadClock().now())
                }
            }
        }
        defer { saver?.cancel() }

        var queue = inputs
        let follower = options.follow ? Follower(folders: options.followFolders, known: inputs, interval: options.followPollInterval) : nil
        var index = 0
        while true {
            if index == queue.count, let follower, !follower.folders.isEmpty, !stop.isRequested {
                // Followed folders: with every file read, wait for the next one to appear.
                router.batcher.flush()
                try await drain(&router)
                if try await follower.waitForNewFiles(stop: stop) {
                    queue += follower.takeDiscovered(registry: registry)
                }
            }
            guard index < queue.count else { break }
            defer { index += 1 }
            if stop.isRequested { break }
            let input = queue[index]
            router.currentInput = index
            router.currentSource = input.displayPath
            var reader = InputRun(index: index, input: input, streamName: input.isStandardInput ? options.streamName : nil)
            do {
                if try prepare(&reader, earlier: &earlier) { continue }
                if let follower, input.path != nil, let identity = try? reader.identity ?? InputIdentity.read(input) {
                    // A rotated file's old generation, renamed into a followed folder, is not read twice.
                    guard follower.firstSight(of: identity, input: input) else { continue }
                }
                let opened = try InputOpener.open(input)
                // gzip: inflate on the second core while this one parses and maps.
                let source: any ByteSource = opened is GzipByteSource ? ReadAheadByteSource(wrapping: opened) : opened
                reader.source = source
                let isLast = index == queue.count - 1
                let next = try await read(&reader, chunk: chunk, router: &router, follower: isLast ? follower : nil) { read, records in
                    self.progress?.update(bytesRead: bytesBefore + read, totalBytes: totalBytes, records: records, extra: self.sink.statusLine)
                }
                if let follower {
                    if let next {
                        // The next generation of a rotated or truncated file, read from its start.
                        _ = registry.append(next)
                        queue.append(next)
                    }
                    queue += follower.takeDiscovered(registry: registry)
                }
            } catch let error as InputError {
                logger.error("\(error.description)")
                router.report.inputErrors.append(error.description)
                try await drain(&router)
            }
            bytesBefore += reader.source?.rawBytesRead ?? input.size ?? 0
        }
        router.batcher.flush()
        try await drain(&router)
        resume?.tracker.flushed()
        let summary = try await sink.finish()
        try rejects.flush()
        progress?.finish()
        saver?.cancel()
        if let resume {
            // The last marks settle with the final batches: write what they established.
            try resume.tracker.saveIfChanged(now: SystemUploadClock().now())
        }

        var report = router.report
        report.warnings = router.mapper.warnings
        report.requests = summary.requests
        report.retries = summary.retries
        report.uploadedUsers = summary.uploadedUsers
        report.uploadedEvents = summary.uploadedEvents
        report.failed = summary.failed
        report.elapsedSeconds = MonotonicClock.now() - started
        if resume?.previous != nil {
            report.add(earlier: earlier)
        }
        return report
    }

    /// Looks the input up in the previous checkpoint. Returns true when it needs no work (it was
    /// complete and has not grown); otherwise sets where reading starts.
    private func prepare(_ reader: inout InputRun, earlier: inout CheckpointCounts) throws -> Bool {
        guard let resume else { return false }
        if reader.input.isStandardInput {
            guard let name = reader.streamName else {
                logger.notice("stdin is read without --stream-name: it is not checkpointed, a rerun reads it from the start")
                reader.checkpointed = false
                return false
            }
            reader.identity = InputIdentity(headHash: "", headLength: 0, size: nil)
            reader.resumeEntry = resume.previous?.entry(headHash: "", headLength: 0, streamName: name)
        } else {
            let identity = try InputIdentity.read(reader.input)
            reader.identity = identity
            reader.resumeEntry = resume.previous.flatMap { identity.entry(in: $0) }
        }
        guard let entry = reader.resumeEntry else { return false }
        // Keep one entry per content: marks carry the identity the entry was made with.
        reader.identity?.headHash = entry.headHash
        reader.identity?.headLength = entry.headLength
        earlier.add(entry.counts)
        if entry.complete, entry.size == reader.identity?.size {
            logger.info("already done in an earlier run", metadata: ["source": "\(reader.input.displayPath)", "records": "\(entry.counts.records)"])
            resume.tracker.carryOver(input: reader.index, entry: entry)
            return true
        }
        reader.base = entry.counts
        logger.info("resuming", metadata: ["source": "\(reader.input.displayPath)", "line": "\(entry.line)", "offset": "\(entry.offset)"])
        return false
    }

    /// Reads one input to its end (or to a stop request), routing each line and leaving marks.
    /// When followed, the end of a plain file is waited out; returns the input to follow next
    /// when the file was rotated or truncated.
    private func read(_ reader: inout InputRun, chunk: UnsafeMutableRawBufferPointer, router: inout RecordRouter,
                      follower: Follower?, progress: (_ rawBytesRead: Int64, _ records: Int) -> Void) async throws -> InputFile? {
        let followed = follower != nil && reader.input.path != nil && reader.source is FileByteSource
        let openedFile = followed ? FileState(path: reader.input.path!) : nil
        var finishing = false
        var finishedBy: Follower.Change?
        let source = reader.source!
        router.marks.removeAll()
        var splitter = LineSplitter(maxLineBytes: options.maxLineBytes)
        let countsAtStart = CheckpointCounts(router.report, warnings: router.mapper.warnings)
        if let entry = reader.resumeEntry {
            splitter = LineSplitter(resumingAfterLine: entry.line, offset: entry.offset, maxLineBytes: options.maxLineBytes)
            try skipAcknowledged(entry, reader: &reader, chunk: chunk, splitter: &splitter, router: &router)
        }
        while !stop.isRequested {
            if let error = resume?.tracker.writeError { throw error }
            let n = try source.read(into: chunk)
            if n == 0, followed, !finishing, let follower {
                // Records must not wait for a full batch while the file is quiet.
                router.batcher.flush()
                try await drain(&router, reader: reader, countsAtStart: countsAtStart)
                leaveMark(reader, line: splitter.linesDelivered, offset: splitter.bytesConsumed, report: router.report,
                          warnings: router.mapper.warnings, firstPending: router.batcher.firstPendingPosition,
                          countsAtStart: countsAtStart, complete: false)
                progress(source.rawBytesRead, router.report.records)
                let change = try await follower.waitForChange(of: openedFile!, read: source.rawBytesRead, stop: stop)
                if change == .grew { continue }
                if change == .stopped { return nil }
                if change == .rotated {
                    // What the writer put in the old file before it moved on is read first.
                    finishing = true
                    finishedBy = change
                    continue
                }
                finishedBy = change
            }
            if n == 0, followed, let change = finishedBy {
                // The file is finished: its last line, even without a newline, is complete now.
                try splitter.finish { try router.route($0) }
                try await drain(&router, reader: reader, countsAtStart: countsAtStart)
                leaveMark(reader, line: splitter.linesDelivered, offset: splitter.bytesConsumed, report: router.report,
                          warnings: router.mapper.warnings, firstPending: router.batcher.firstPendingPosition,
                          countsAtStart: countsAtStart, complete: true, size: source.rawBytesRead)
                logger.info("followed file \(change)", metadata: ["source": "\(reader.input.displayPath)"])
                return change == .superseded ? nil : reader.input
            }
            if n == 0 {
                try splitter.finish { try router.route($0) }
                try await drain(&router, reader: reader, countsAtStart: countsAtStart)
                leaveMark(reader, line: splitter.linesDelivered, offset: splitter.bytesConsumed, report: router.report,
                          warnings: router.mapper.warnings, firstPending: router.batcher.firstPendingPosition,
                          countsAtStart: countsAtStart, complete: true)
                break
            }
            reader.remember(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
            try splitter.consume(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) { try router.route($0) }
            try await drain(&router, reader: reader, countsAtStart: countsAtStart)
            leaveMark(reader, line: splitter.linesDelivered, offset: splitter.bytesConsumed, report: router.report,
                      warnings: router.mapper.warnings, firstPending: router.batcher.firstPendingPosition,
                      countsAtStart: countsAtStart, complete: false)
            progress(source.rawBytesRead, router.report.records)
        }
        return nil
    }

    /// Skips the part an earlier run had acknowledged: inflated, but neither parsed nor mapped.
    /// For stdin it first checks that the stream is the one the checkpoint describes.
    private func skipAcknowledged(_ entry: InputCheckpoint, reader: inout InputRun, chunk: UnsafeMutableRawBufferPointer,
                                  splitter: inout LineSplitter, router: inout RecordRouter) throws {
        let source = reader.source!
        var left = entry.offset
        var newlines = 0
        while left > 0 {
            let n = try source.read(into: chunk)
            guard n > 0 else {
                throw InputError(code: .changedSinceCheckpoint, source: reader.input.displayPath,
                                 message: "the input is shorter than the checkpoint says (\(entry.offset) bytes were acknowledged): it changed since the last run")
            }
            let taken = Int(min(Int64(n), left))
            let skipped = UnsafeRawBufferPointer(rebasing: chunk[0..<taken])
            reader.remember(skipped)
            if reader.streamName != nil { newlines += skipped.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }
            left -= Int64(taken)
            if left == 0, let expected = entry.prefixHash {
                guard reader.prefixHash(upTo: entry.offset) == expected, newlines == entry.line else {
                    throw InputError(code: .changedSinceCheckpoint, source: reader.input.displayPath,
                                     message: "stdin is not the stream the checkpoint named '\(reader.streamName ?? "")' describes (its first bytes or line count differ); pipe the same stream or use another --stream-name")
                }
            }
            if taken < n {
                reader.remember(UnsafeRawBufferPointer(rebasing: chunk[taken..<n]))
                try splitter.consume(UnsafeRawBufferPointer(rebasing: chunk[taken..<n])) { try router.route($0) }
            }
        }
    }

    /// Records how far the input is done once everything up to `line` is settled, with its counts.
    private func leaveMark(_ reader: InputRun, line: Int, offset: Int64, report: RunReport, warnings: ReasonCounts<MappingWarning>,
                           firstPending: RecordPosition?, countsAtStart: CheckpointCounts, complete: Bool, size: Int64? = nil) {
        guard let resume, reader.checkpointed, let identity = reader.identity else { return }
        var counts = reader.base
        counts.add(CheckpointCounts(report, warnings: warnings).subtracting(countsAtStart))
        let entry = InputCheckpoint(
            source: reader.input.displayPath, streamName: reader.streamName,
            headHash: identity.headHash, headLength: identity.headLength, size: size ?? identity.size,
            line: line, offset: offset, complete: complete,
            prefixHash: reader.streamName == nil ? nil : reader.prefixHash(upTo: offset),
            counts: counts)
        resume.tracker.mark(input: reader.index, entry: entry, firstPending: firstPending)
    }

    /// Hands closed batches to the sink. With checkpoints: the batches are registered as
    /// unsettled before the marks that follow them, and a save happens when enough batches
    /// have settled since the last one.
    private func drain(_ router: inout RecordRouter, reader: InputRun? = nil, countsAtStart: CheckpointCounts = CheckpointCounts()) async throws {
        guard router.batcher.hasReady else { return }
        let ready = router.batcher.takeReady()
        if let resume {
            for batch in ready { resume.tracker.sent(batch) }
            if let reader {
                for mark in router.marks {
                    leaveMark(reader, line: mark.line, offset: mark.offset, report: mark.report, warnings: mark.warnings,
                              firstPending: mark.firstPending, countsAtStart: countsAtStart, complete: false)
                }
            }
            router.marks.removeAll(keepingCapacity: true)
        }
        for batch in ready {
            try await sink.send(batch)
            if let resume {
                try resume.tracker.saveIfSettledBacklog(atLeast: options.checkpointBacklog, now: SystemUploadClock().now())
            }
        }
    }
}

/// A run that had to stop (refused credentials, a full disk): the cause, and the counts of what
/// had been routed by then.
public struct PipelineFailure: Error, CustomStringConvertible {
    public var underlying: any Error
    public var report: RunReport
    public var description: String { "\(underlying)" }
}

/// What the pipeline knows about the input it is reading.
struct InputRun {
    let index: Int
    let input: InputFile
    let streamName: String?
    var source: (any ByteSource)?
    var identity: InputIdentity?
    var resumeEntry: InputCheckpoint?
    var base = CheckpointCounts()
    var checkpointed = true
    /// stdin: the stream's first bytes, for the prefix check of a later resume.
    private var head: [UInt8] = []

    static let headBytes = 64 << 10

    init(index: Int, input: InputFile, streamName: String?) {
        self.index = index
        self.input = input
        self.streamName = streamName
    }

    mutating func remember(_ bytes: UnsafeRawBufferPointer) {
        guard streamName != nil, head.count < Self.headBytes else { return }
        head.append(contentsOf: bytes.prefix(Self.headBytes - head.count))
    }

    func prefixHash(upTo offset: Int64) -> String {
        head.withUnsafeBytes { StableHash.hex(of: UnsafeRawBufferPointer(rebasing: $0[0..<Int(min(offset, Int64(head.count)))])) }
    }
}

/// Puts each line in its bucket: mapped into a batch, skipped (counted), or rejected (counted
/// and written down). Kept a value type so the per-line path touches no class or lock.
struct RecordRouter {
    /// Where a batch closed: a place the checkpoint may later move to.
    struct Mark {
        var line: Int
        var offset: Int64
        var report: RunReport
        var warnings: ReasonCounts<MappingWarning>
        var firstPending: RecordPosition?
    }

    var mapper = RecordMapper()
    var leavesMarks = false
    var marks: [Mark] = []
    var batcher: Batcher
    var report = RunReport()
    let rejects: RejectsWriter
    var currentInput = 0
    var currentSource = ""

    init(batchSize: Int, rejects: RejectsWriter) {
        batcher = Batcher(batchSize: batchSize)
        self.rejects = rejects
    }

    @inline(__always)
    mutating func route(_ line: LineSlice) throws {
        if line.isTooLong {
            report.records += 1
            report.rejected.add(.lineTooLong)
            try rejects.write(source: currentSource, line: line.number, reason: RejectReason.lineTooLong.rawValue,
                              detail: "the line is \(line.length) bytes, longer than --max-line-bytes; its first \(line.bytes.count) bytes are kept here",
                              record: utf8Prefix(line.bytes))
            return
        }
        if isBlank(line.bytes) { return }
        report.records += 1
        switch mapper.map(line.bytes) {
        case .mapped(let kind):
            if kind == .user { report.mappedUsers += 1 } else { report.mappedEvents += 1 }
            let position = RecordPosition(input: currentInput, line: line.number, endOffset: line.endOffset)
            let closedBefore = batcher.readyCount
            mapper.data.withUnsafeBytes { batcher.add(kind, data: $0, position: position) }
            if leavesMarks, batcher.readyCount > closedBefore {
                marks.append(Mark(line: line.number, offset: line.endOffset, report: report, warnings: mapper.warnings,
                                  firstPending: batcher.firstPendingPosition))
            }
        case .skipped(let reason):
            report.skipped.add(reason)
        case .rejected(let reason, let detail):
            report.rejected.add(reason)
            try rejects.write(source: currentSource, line: line.number, reason: reason.rawValue, detail: detail, record: line.bytes)
        }
    }

    /// Lines holding only white space are not records (contract §2).
    @inline(__always)
    func isBlank(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for b in bytes where !isSpace(b) { return false }
        return true
    }

    /// A kept prefix cut back to a whole UTF-8 character, so it is still text when the line was.
    func utf8Prefix(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = bytes.count
        var back = 0
        while end > 0, back < 3, bytes[end - 1] & 0xC0 == 0x80 { end -= 1; back += 1 }
        if end > 0, bytes[end - 1] >= 0xC0 {
            let lead = bytes[end - 1]
            let needed = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
            if back + 1 < needed { end -= 1 } else { end += back }
        } else {
            end += back
        }
        return UnsafeRawBufferPointer(rebasing: bytes[0..<end])
    }
}
