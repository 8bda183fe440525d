import Synchronization

/// Told when a batch is settled: accepted by Intercom, or its items written to the rejects file.
/// Batches abandoned on a stop are never settled, so a resumed run sends them again.
public protocol SettlementObserver: Sendable {
    func settled(_ batch: Batch)
    /// An item failed (request-level error or inside a job), for the per-input failed counts.
    func failed(at position: RecordPosition?, code: String)
    /// Jobs whose error feeds are still unread at the end of the run.
    func pendingJobs(_ jobs: [PendingJob])
}

/// Turns acknowledgements into checkpoints (issue 6).
///
/// The pipeline leaves a *mark* after each chunk: how far it has read in the input (a line
/// boundary) and the input's counts so far. A mark becomes the checkpoint once no record at or
/// before it is unsettled, i.e. once every batch holding such a record is settled. Marks sit on
/// chunk boundaries, so a resume re-sends at most the records in flight plus one chunk: a small,
/// bounded number, and harmless with Intercom (upserts; events de-duplicated).
public final class CheckpointTracker: SettlementObserver, Sendable {
    struct Mark {
        var input: Int
        var entry: InputCheckpoint
    }

    private struct State {
        var file: CheckpointFile
        var unsettled: [Int: RecordPosition] = [:]
        var pendingFirst: RecordPosition?
        var marks: [Mark] = []
        /// Failed items per input, folded into that input's counts at save time.
        var failed: [Int: [String: Int]] = [:]
        var entries: [Int: InputCheckpoint] = [:]
        var dirty = false
        /// Batches settled since the last save: bounds what a crash makes us send again.
        var settledSinceSave = 0
        var writeError: (any Error)?
    }

    private let state: Mutex<State>
    /// One save at a time (the periodic saver and the pipeline's backlog saves share the files).
    private let saving = Mutex(())
    private let store: CheckpointStore

    public init(store: CheckpointStore, resumingFrom file: CheckpointFile?) {
        self.store = store
        state = Mutex(State(file: file ?? CheckpointFile()))
    }

    // MARK: From the pipeline

    /// A batch was handed to the sink: its records are unsettled until `settled`.
    public func sent(_ batch: Batch) {
        guard let first = batch.positions.first else { return }
        state.withLock { $0.unsettled[batch.sequence] = first }
    }

    /// After a chunk: the input's position and counts, and the earliest record still in the batcher.
    public func mark(input: Int, entry: InputCheckpoint, firstPending: RecordPosition?) {
        state.withLock { state in
            state.pendingFirst = firstPending
            state.marks.append(Mark(input: input, entry: entry))
            Self.advance(&state)
        }
    }

    /// The batcher was flushed: no record waits outside the sink any more.
    public func flushed() {
        state.withLock { state in
            state.pendingFirst = nil
            Self.advance(&state)
        }
    }

    /// An input that needs no work this run (complete earlier), kept in the new checkpoint as it was.
    public func carryOver(input: Int, entry: InputCheckpoint) {
        state.withLock { state in
            state.entries[input] = entry
            state.file.upsert(entry)
            state.dirty = true
        }
    }

    // MARK: SettlementObserver (upload tasks)

    public func settled(_ batch: Batch) {
        state.withLock { state in
            state.unsettled[batch.sequence] = nil
            state.settledSinceSave += 1
            Self.advance(&state)
        }
    }

    public func failed(at position: RecordPosition?, code: String) {
        guard let position else { return }
        state.withLock { state in
            state.failed[position.input, default: [:]][code, default: 0] += 1
            state.dirty = true
        }
    }

    public func pendingJobs(_ jobs: [PendingJob]) {
        state.withLock { state in
            state.file.pendingJobs = jobs
            state.dirty = true
        }
    }

    /// Moves the checkpoint past every mark that no unsettled record precedes.
    private static func advance(_ state: inout State) {
        var lowest = state.pendingFirst
        for position in state.unsettled.values where lowest == nil || (position.input, position.line) < (lowest!.input, lowest!.line) {
            lowest = position
        }
        var taken = 0
        for mark in state.marks {
            if let lowest, (mark.input, mark.entry.line) >= (lowest.input, lowest.line) { break }
            state.entries[mark.input] = mark.entry
            taken += 1
        }
        guard taken > 0 else { return }
        state.marks.removeFirst(taken)
        state.dirty = true
    }

    // MARK: Saving

    /// Writes the checkpoint when something changed. Throws on a write failure (full disk), and
    /// the previous good checkpoint stays in place.
    public func saveIfChanged(now: Double) throws {
        try saving.withLock { _ in try saveLocked(now: now) }
    }

    /// Saves when at least `limit` batches were settled since the last save, so the records a
    /// crash would make us send again stay bounded (about `limit` + in-flight batches).
    public func saveIfSettledBacklog(atLeast limit: Int, now: Double) throws {
        guard state.withLock({ $0.settledSinceSave >= limit }) else { return }
        try saveIfChanged(now: now)
    }

    private func saveLocked(now: Double) throws {
        let snapshot: CheckpointFile? = state.withLock { state in
            state.settledSinceSave = 0
            guard state.dirty else { return nil }
            state.dirty = false
            for (input, var entry) in state.entries {
                for (code, n) in state.failed[input] ?? [:] { entry.counts.failed[code, default: 0] += n }
                state.file.upsert(entry)
                _ = input
            }
            state.file.updatedAt = now
            return state.file
        }
        guard let snapshot else { return }
        do {
            try store.save(snapshot)
        } catch {
            state.withLock { $0.writeError = error; $0.dirty = true }
            throw error
        }
    }

    /// The first checkpoint write failure, which stops the run.
    public var writeError: (any Error)? { state.withLock { $0.writeError } }

    /// The entries as they stand (tests, the final report).
    public var entries: [Int: InputCheckpoint] { state.withLock { $0.entries } }
}
