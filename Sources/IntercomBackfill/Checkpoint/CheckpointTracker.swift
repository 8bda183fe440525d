import Synchronization

/// Where one input's checkpoint may move once the unit carrying it, and every unit before it, is
/// settled: every record of the input up to `entry.line` is then accepted or written down.
public struct CheckpointMark: Sendable {
    public var input: Int
    public var entry: InputCheckpoint

    public init(input: Int, entry: InputCheckpoint) {
        self.input = input
        self.entry = entry
    }
}

/// Turns acknowledgements into checkpoints.
///
/// Units (batches, and marks alone) are numbered in the order the reader closed them, and each
/// can carry a mark. The checkpoint is the last mark of the longest run of settled units from the
/// start: a unit settled out of order waits for the ones before it. A save first makes the
/// rejects file durable (the checkpoint counts the records written there), then writes the
/// checkpoint atomically; `waitUntilDurable` lets the uploader hold a window slot until the
/// settlement of its batch is on disk, which is what bounds what a crash re-sends.
public final class CheckpointTracker: Sendable {
    private struct State {
        var file: CheckpointFile
        /// The lowest unit sequence not yet settled.
        var nextUnsettled = 0
        /// Units settled ahead of `nextUnsettled`, with their marks.
        var settledAhead: [Int: CheckpointMark?] = [:]
        /// The newest entry per input that the settled prefix established.
        var entries: [Int: InputCheckpoint] = [:]
        /// Failed items per input, folded into that input's counts at save time.
        var failed: [Int: [String: Int]] = [:]
        var dirty = false
        /// Every unit below this sequence is settled in the checkpoint on disk.
        var durableThrough = 0
        /// The unit whose mark was applied last, and the last one a completed save included.
        var appliedMark = -1
        var savedMark = -1
        /// The first unit given up for this run: the checkpoint stays before it.
        var heldBackFrom = Int.max
        var durabilityWaiters: [(sequence: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var saveWanted: CheckedContinuation<Void, Never>?
        var stopped = false
        var writeError: (any Error)?
    }

    private let state: Mutex<State>
    /// One save at a time: the saver loop and the final save share the files.
    private let saving = Mutex(())
    private let store: CheckpointStore
    /// Made durable before every checkpoint that counts what was written to it.
    private let rejects: RejectsWriter?

    public init(store: CheckpointStore, resumingFrom file: CheckpointFile?, rejects: RejectsWriter? = nil) {
        self.store = store
        self.rejects = rejects
        state = Mutex(State(file: file ?? CheckpointFile()))
    }

    // MARK: Acknowledgements

    /// A unit is settled: accepted by Intercom, written down, or (a mark alone) nothing to send.
    public func settled(_ unit: Batch) {
        state.withLock { state in
            guard unit.sequence >= state.nextUnsettled else { return }
            state.settledAhead[unit.sequence] = .some(unit.mark)
            while state.nextUnsettled < state.heldBackFrom, let mark = state.settledAhead.removeValue(forKey: state.nextUnsettled)
            {
                if let mark {
                    state.entries[mark.input] = mark.entry
                    state.dirty = true
                    state.appliedMark = state.nextUnsettled
                }
                state.nextUnsettled += 1
            }
            if state.dirty, !state.durabilityWaiters.isEmpty { Self.wantSave(&state) }
        }
        // Units without marks move nothing to save: the checkpoint on disk is already what they allow.
        let through: Int? = state.withLock { $0.appliedMark == $0.savedMark ? $0.nextUnsettled : nil }
        if let through { releaseDurable(through: through) }
    }

    /// A unit not delivered in this run (abandoned on a stop, retries spent): the checkpoint never
    /// passes it, so a rerun sends it again; the deliveries after it no longer wait for saves.
    public func holdBack(_ unit: Batch) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.heldBackFrom = min(state.heldBackFrom, unit.sequence)
            let (later, rest) = state.durabilityWaiters.partitioned { $0.sequence >= state.heldBackFrom }
            state.durabilityWaiters = rest
            return later.map(\.continuation)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// An item failed (request-level error or inside a job), for the per-input failed counts.
    public func failed(at position: RecordPosition, code: String) {
        state.withLock { state in
            state.failed[position.input, default: [:]][code, default: 0] += 1
            state.dirty = true
        }
    }

    /// Remembers the API the run speaks, written with the next save.
    public func setAPI(_ api: String) {
        state.withLock { state in
            guard state.file.api != api else { return }
            state.file.api = api
            state.dirty = true
        }
    }

    /// Jobs whose error feeds are still unread at the end of the run.
    public func pendingJobs(_ jobs: [PendingJob]) {
        state.withLock { state in
            state.file.pendingJobs = jobs
            state.dirty = true
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

    // MARK: Durability

    /// Returns once the settlement of unit `sequence` is in a saved checkpoint, or the run stops.
    public func waitUntilDurable(_ sequence: Int) async {
        await withCheckedContinuation { continuation in
            state.withLock { state in
                if state.stopped || sequence < state.durableThrough || sequence >= state.heldBackFrom {
                    continuation.resume()
                    return
                }
                state.durabilityWaiters.append((sequence, continuation))
                if state.dirty { Self.wantSave(&state) }
            }
        }
    }

    /// Waits until a save is wanted (someone waits for durability) or `interval` passed; false when stopped.
    func waitForSaveRequest(interval: Double, clock: any UploadClock, stop: StopSignal) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilSaveWanted() }
            group.addTask { _ = await stop.sleep(seconds: interval, clock: clock) }
            await group.next()
            group.cancelAll()
        }
        return state.withLock { !$0.stopped }
    }

    private func waitUntilSaveWanted() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                state.withLock { state in
                    if state.stopped || Task.isCancelled || (state.dirty && !state.durabilityWaiters.isEmpty) {
                        continuation.resume()
                    } else {
                        state.saveWanted = continuation
                    }
                }
            }
        } onCancel: {
            state.withLock { Self.wantSave(&$0) }
        }
    }

    /// No more waiting for durability: the run is ending (a stop, a fatal error, or the end).
    public func stopWaiting() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.stopped = true
            defer { state.durabilityWaiters.removeAll() }
            var all = state.durabilityWaiters.map(\.continuation)
            if let wanted = state.saveWanted { all.append(wanted) }
            state.saveWanted = nil
            return all
        }
        for waiter in waiters { waiter.resume() }
    }

    private static func wantSave(_ state: inout State) {
        state.saveWanted?.resume()
        state.saveWanted = nil
    }

    // MARK: Saving

    /// Writes the checkpoint when something changed, after making the rejects file durable.
    /// Throws on a write failure (full disk); the previous good checkpoint stays in place.
    public func saveIfChanged(now: Double) throws {
        try saving.withLock { _ in try saveLocked(now: now) }
    }

    private func saveLocked(now: Double) throws {
        let snapshot: (file: CheckpointFile, through: Int, mark: Int)? = state.withLock { state in
            guard state.dirty else { return nil }
            state.dirty = false
            for (input, var entry) in state.entries {
                for (code, n) in state.failed[input] ?? [:] { entry.counts.failed[code, default: 0] += n }
                state.file.upsert(entry)
                _ = input
            }
            state.file.updatedAt = now
            return (state.file, state.nextUnsettled, state.appliedMark)
        }
        guard let snapshot else { return }
        do {
            // What the checkpoint counts as written down must be on disk before the checkpoint is.
            try rejects?.sync()
            try store.save(snapshot.file)
        } catch {
            state.withLock {
                $0.writeError = error
                $0.dirty = true
            }
            throw error
        }
        state.withLock { $0.savedMark = max($0.savedMark, snapshot.mark) }
        releaseDurable(through: snapshot.through)
    }

    private func releaseDurable(through sequence: Int) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.durableThrough = max(state.durableThrough, sequence)
            let (done, waiting) = state.durabilityWaiters.partitioned { $0.sequence < state.durableThrough }
            state.durabilityWaiters = waiting
            return done.map(\.continuation)
        }
        for waiter in ready { waiter.resume() }
    }

    /// The first checkpoint write failure, which stops the run.
    public var writeError: (any Error)? { state.withLock { $0.writeError } }

    /// The entries as they stand (tests, the final report).
    public var entries: [Int: InputCheckpoint] { state.withLock { $0.entries } }
}

extension Array {
    /// The elements that match, and those that do not, each in order.
    func partitioned(_ matches: (Element) -> Bool) -> (matching: [Element], rest: [Element]) {
        var matching: [Element] = []
        var rest: [Element] = []
        for element in self {
            if matches(element) { matching.append(element) } else { rest.append(element) }
        }
        return (matching, rest)
    }
}
