import Logging

/// The reading stage, on a thread of its own (its reads block): every input in order, through the
/// byte source and the line splitter, each line routed to its bucket, closed batches handed to
/// the channel with the checkpoint marks they establish.
final class ReadingStage: @unchecked Sendable {
    struct Outcome {
        var report = RunReport()
        /// The counts earlier runs had kept for the inputs named (a resume reports the whole backfill).
        var earlier = CheckpointCounts()
        var resumed = false
        /// An output failure (the rejects file cannot be written) that ends the run.
        var failure: (any Error)?
    }

    /// The consumer cancelled the channel: stop quietly, the run is ending.
    private struct Cancelled: Error {}

    private let run: RunContext
    private let channel: BatchChannel
    private var router: RecordRouter
    private var earlier = CheckpointCounts()
    private let chunk: UnsafeMutableRawBufferPointer
    private var bytesBefore: Int64 = 0
    /// Inputs read to their end whose last records still wait in open batches.
    private var completions: [(mark: CheckpointMark, after: PendingCloses)] = []
    private let totalBytes: Int64?
    /// A destination without network I/O, written to from this thread (no checkpoint to keep).
    private let direct: (any SynchronousDestination)?

    init(run: RunContext, channel: BatchChannel) {
        self.run = run
        self.channel = channel
        router = RecordRouter(batchSize: run.options.batchSize, rejects: run.rejects)
        router.leavesMarks = run.tracker != nil
        direct = run.tracker == nil ? run.destination as? any SynchronousDestination : nil
        chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: run.options.chunkSize, alignment: 16)
        totalBytes = run.inputs.contains { $0.size == nil } ? nil : run.inputs.reduce(0) { $0 + ($1.size ?? 0) }
    }

    deinit { chunk.deallocate() }

    /// Reads everything (or until a stop or a cancellation), then closes the channel.
    func read() -> Outcome {
        defer { channel.finish() }
        var outcome = Outcome()
        do {
            try readAll()
        } catch is Cancelled {
        } catch {
            outcome.failure = error
        }
        outcome.report = router.report
        outcome.report.warnings = router.mapper.warnings
        outcome.earlier = earlier
        outcome.resumed = run.previous != nil
        return outcome
    }

    private func readAll() throws {
        var queue = run.inputs
        let follower =
            run.options.follow
            ? Follower(folders: run.options.followFolders, known: run.inputs, interval: run.options.followPollInterval) : nil
        var index = 0
        while !run.stop.isRequested {
            if index == queue.count, let follower, !follower.folders.isEmpty {
                // Followed folders: with every file read, wait for the next one to appear.
                if follower.waitForNewFiles(stop: run.stop) { queue += follower.takeDiscovered(registry: run.registry) }
                continue
            }
            guard index < queue.count else { break }
            let input = queue[index]
            let isLast = index == queue.count - 1
            let next = try readInput(input, index: index, follower: isLast ? follower : nil)
            if let follower {
                if let next {
                    // The next generation of a rotated or truncated file, read from its start.
                    _ = run.registry.append(next)
                    queue.append(next)
                }
                queue += follower.takeDiscovered(registry: run.registry)
            }
            index += 1
        }
        // The end: whatever waits in the batcher goes, and with it the last completions.
        router.flush()
        var last = InputRun(index: -1, input: .standardInput, streamName: nil)
        last.checkpointed = false
        try emit(&last)
    }

    /// Reads one input; a damaged one is reported and the run goes on with the next.
    private func readInput(_ input: InputFile, index: Int, follower: Follower?) throws -> InputFile? {
        router.start(input: index, source: input.displayPath)
        var reader = InputRun(index: index, input: input, streamName: input.isStandardInput ? run.options.streamName : nil)
        defer { bytesBefore += reader.source?.rawBytesRead ?? input.size ?? 0 }
        do {
            guard try prepare(&reader) == .read else { return nil }
            if let follower, input.path != nil, let identity = try? reader.identity ?? InputIdentity.read(input) {
                // A rotated file's old generation, renamed into a followed folder, is not read twice.
                guard follower.firstSight(of: identity, input: input) else { return nil }
            }
            let opened = try InputOpener.open(input)
            // gzip: inflate on the second core while this one parses and maps.
            reader.source = opened is GzipByteSource ? ReadAheadByteSource(wrapping: opened) : opened
            return try readLines(&reader, follower: follower)
        } catch let error as InputError {
            run.logger.error("\(error.description)")
            router.report.inputErrors.append(error.description)
            // Not the input the checkpoint describes: its entry stays as it was.
            if error.code == .changedSinceCheckpoint { reader.checkpointed = false }
            router.flush()
            try emit(&reader)
            return nil
        }
    }

    private enum Plan { case alreadyDone, read }

    /// Looks the input up in the previous checkpoint: done already (complete, unchanged), or read
    /// from where it stopped. A stdin stream is never taken as done unseen: its acknowledged part
    /// is read and compared first (`skipAcknowledged`).
    private func prepare(_ reader: inout InputRun) throws -> Plan {
        reader.countsAtStart = CheckpointCounts(router.report, warnings: router.mapper.warnings)
        guard run.tracker != nil else { return .read }
        if reader.input.isStandardInput {
            guard let name = reader.streamName else {
                run.logger.notice("stdin is read without --stream-name: it is not checkpointed, a rerun reads it from the start")
                reader.checkpointed = false
                return .read
            }
            reader.identity = InputIdentity(headHash: "", headLength: 0, size: nil)
            reader.resumeEntry = run.previous?.entry(headHash: "", headLength: 0, streamName: name)
        } else {
            let identity = try InputIdentity.read(reader.input)
            reader.identity = identity
            reader.resumeEntry = run.previous.flatMap { identity.entry(in: $0) }
        }
        guard let entry = reader.resumeEntry else { return .read }
        // Keep one entry per content: marks carry the identity the entry was made with.
        reader.identity?.headHash = entry.headHash
        reader.identity?.headLength = entry.headLength
        earlier.add(entry.counts)
        reader.base = entry.counts
        if entry.complete, !reader.input.isStandardInput, entry.size == reader.identity?.size {
            run.logger.info(
                "already done in an earlier run",
                metadata: ["source": "\(reader.input.displayPath)", "records": "\(entry.counts.records)"])
            run.tracker?.carryOver(input: reader.index, entry: entry)
            return .alreadyDone
        }
        run.logger.info(
            "resuming", metadata: ["source": "\(reader.input.displayPath)", "line": "\(entry.line)", "offset": "\(entry.offset)"])
        return .read
    }

    /// Reads the input's lines to its end (or a stop). A followed file's end is waited out; returns
    /// the input to follow next when the file was rotated or truncated.
    private func readLines(_ reader: inout InputRun, follower: Follower?) throws -> InputFile? {
        let source = reader.source!
        let followed = follower != nil && reader.input.path != nil && source is FileByteSource
        var splitter = LineSplitter(maxLineBytes: run.options.maxLineBytes)
        if let entry = reader.resumeEntry {
            splitter = LineSplitter(resumingAfterLine: entry.line, offset: entry.offset, maxLineBytes: run.options.maxLineBytes)
            router.start(input: reader.index, source: reader.input.displayPath, line: entry.line, offset: entry.offset)
            try skipAcknowledged(entry, reader: &reader, splitter: &splitter)
        }
        var follow = followed ? FollowedFile(path: reader.input.path!, follower: follower!) : nil
        while !run.stop.isRequested {
            let n = try source.read(into: chunk)
            if n == 0, follow != nil {
                switch try waitAtEnd(&reader, follow: &follow!, splitter: &splitter) {
                case .readMore: continue
                case .stopped: return nil
                case .finished(let next): return next
                }
            }
            if n == 0 {
                try splitter.finish { try router.route($0) }
                try complete(&reader)
                return nil
            }
            let bytes = UnsafeRawBufferPointer(rebasing: chunk[0..<n])
            reader.remember(bytes)
            try splitter.consume(bytes) { try router.route($0) }
            try emit(&reader)
            showProgress(source)
        }
        return nil
    }

    private struct FollowedFile {
        let opened: FileState
        let follower: Follower
        var finishedBy: Follower.Change?

        init(path: String, follower: Follower) {
            opened = FileState(path: path)
            self.follower = follower
        }
    }

    private enum EndOfFollowedFile {
        case readMore, stopped
        case finished(next: InputFile?)
    }

    /// At the end of a followed file: records do not wait for a full batch while it is quiet;
    /// then it grows (read on), is rotated (read what the writer left, then the new file), is
    /// truncated or superseded (finished), or a stop comes.
    private func waitAtEnd(_ reader: inout InputRun, follow: inout FollowedFile, splitter: inout LineSplitter) throws
        -> EndOfFollowedFile
    {
        let source = reader.source!
        if let change = follow.finishedBy {
            // The file is finished: its last line, even without a newline, is complete now.
            try splitter.finish { try router.route($0) }
            router.flush()
            try emit(&reader, complete: true, size: source.rawBytesRead)
            run.logger.info("followed file \(change)", metadata: ["source": "\(reader.input.displayPath)"])
            return .finished(next: change == .superseded ? nil : reader.input)
        }
        router.flush()
        try emit(&reader)
        showProgress(source)
        let change = follow.follower.waitForChange(of: follow.opened, read: source.rawBytesRead, stop: run.stop)
        switch change {
        case .grew: return .readMore
        case .stopped: return .stopped
        case .rotated, .truncated, .superseded:
            // A rotated file may still hold what the writer put there before it moved on: read it first.
            follow.finishedBy = change
            return .readMore
        }
    }

    /// Skips the part an earlier run had acknowledged: inflated, but neither parsed nor mapped.
    /// For stdin it first checks that the stream is the one the checkpoint describes.
    private func skipAcknowledged(_ entry: InputCheckpoint, reader: inout InputRun, splitter: inout LineSplitter) throws {
        let source = reader.source!
        var left = entry.offset
        var newlines = 0
        while left > 0 {
            let n = try source.read(into: chunk)
            guard n > 0 else {
                throw changedSinceCheckpoint(
                    reader, entry: entry, reason: "it ended before the \(entry.offset) bytes the checkpoint acknowledged")
            }
            let taken = Int(min(Int64(n), left))
            let skipped = UnsafeRawBufferPointer(rebasing: chunk[0..<taken])
            reader.remember(skipped)
            if reader.streamName != nil { newlines += skipped.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }
            left -= Int64(taken)
            if left == 0, let expected = entry.prefixHash {
                guard reader.prefixHash(upTo: entry.offset) == expected, newlines == entry.line else {
                    throw changedSinceCheckpoint(reader, entry: entry, reason: "its first bytes or its line count differ")
                }
            }
            if taken < n {
                let rest = UnsafeRawBufferPointer(rebasing: chunk[taken..<n])
                reader.remember(rest)
                try splitter.consume(rest) { try router.route($0) }
            }
        }
    }

    private func changedSinceCheckpoint(_ reader: InputRun, entry: InputCheckpoint, reason: String) -> InputError {
        if let name = reader.streamName {
            return InputError(
                code: .changedSinceCheckpoint, source: reader.input.displayPath,
                message:
                    "stdin is not the stream the checkpoint named '\(name)' describes (\(reason)): nothing of it was sent. Pipe that same stream again to continue it, give this one another --stream-name, or use --restart to forget the old one"
            )
        }
        return InputError(
            code: .changedSinceCheckpoint, source: reader.input.displayPath,
            message: "the input changed since the last run (\(reason)); use --restart to read it from the start")
    }

    /// The input is read to its end. Its last records may wait in open batches, which fill on with
    /// the next input's (batches span inputs): its completion is sent once those batches closed.
    private func complete(_ reader: inout InputRun) throws {
        try emit(&reader)
        guard run.tracker != nil, reader.checkpointed, let mark = reader.mark(router.currentPoint, complete: true) else { return }
        completions.append((mark, router.pendingCloses))
        try sendCompletions()
    }

    /// Completions of earlier inputs whose records are all in closed batches now, as marks alone.
    private func sendCompletions() throws {
        while let first = completions.first, router.hasClosed(first.after) {
            completions.removeFirst()
            let unit = Batch(kind: .user, items: [], positions: [], sequence: router.batcher.takeSequence(), mark: first.mark)
            guard channel.send(unit) else { throw Cancelled() }
        }
    }

    /// Hands the closed batches to the channel with their marks, then a mark alone when the
    /// settled point moved on without a batch (skipped and rejected records, the end of the input).
    private func emit(_ reader: inout InputRun, complete: Bool = false, size: Int64? = nil) throws {
        for var batch in router.batcher.takeReady() {
            if let direct {
                try direct.write(batch)
                continue
            }
            if let point = batch.routedThrough { batch.mark = reader.mark(point) }
            guard channel.send(batch) else { throw Cancelled() }
        }
        try sendCompletions()
        guard run.tracker != nil, reader.checkpointed else { return }
        let point = router.settledPoint
        guard complete || point.line > reader.markedLine else { return }
        let unit = Batch(
            kind: .user, items: [], positions: [], sequence: router.batcher.takeSequence(),
            mark: reader.mark(point, complete: complete, size: size))
        guard channel.send(unit) else { throw Cancelled() }
    }

    private func showProgress(_ source: any ByteSource) {
        run.progress?.update(
            bytesRead: bytesBefore + source.rawBytesRead, totalBytes: totalBytes,
            records: router.report.records, extra: run.destination.statusLine)
    }
}
