/// A job the run used, with what is needed to read its error feed: which input line each item
/// came from, keyed by the item's identity (the feed echoes the item's data, not our positions).
struct JobRecord: Sendable {
    let id: String
    let kind: ItemKind
    var createdAt: Double
    var items = 0
    /// Requests sent or about to be sent with this job's id: its feed is read once none is left.
    var requestsInFlight = 0
    /// Item identity hash -> where it came from; repeats (a user identified twice in one job) in
    /// `morePositions`. Compact, since a job can hold thousands of items.
    var positions: [UInt64: RecordPosition] = [:]
    var morePositions: [UInt64: [RecordPosition]] = [:]

    mutating func remember(_ fingerprint: UInt64, at position: RecordPosition) {
        if positions[fingerprint] == nil {
            positions[fingerprint] = position
        } else {
            morePositions[fingerprint, default: []].append(position)
        }
    }

    mutating func take(_ fingerprint: UInt64) -> RecordPosition? {
        if var more = morePositions[fingerprint], !more.isEmpty {
            let position = more.removeFirst()
            morePositions[fingerprint] = more.isEmpty ? nil : more
            return position
        }
        return positions.removeValue(forKey: fingerprint)
    }
}

/// The uploader's shared state, owned by one actor: the users-before-events barrier, open jobs,
/// and the counts of the report.
actor UploadState {
    private var pendingUserBatches = Set<Int>()
    private var userWaiters: [(sequence: Int, continuation: CheckedContinuation<Void, Never>)] = []

    private var openJob: [ItemKind: String] = [:]
    private var creatingJob = Set<ItemKind>()
    private var jobWaiters: [ItemKind: [CheckedContinuation<Void, Never>]] = [:]
    private var jobs: [String: JobRecord] = [:]
    private var jobOrder: [String] = []
    /// Jobs that take no more appends: their error feeds can be read while the run goes on.
    private var retired: [String] = []

    private(set) var summary = SinkSummary()

    /// No batch was accepted or written down yet: a refusal now is about the API, not the items.
    var nothingAcceptedYet: Bool {
        summary.uploadedUsers == 0 && summary.uploadedEvents == 0 && summary.failed.isEmpty && jobs.isEmpty
    }
    private(set) var fatal: UploadFatalError?

    // MARK: Users before the events that follow them

    func userBatchStarted(_ sequence: Int) { pendingUserBatches.insert(sequence) }

    func userBatchSettled(_ sequence: Int) {
        pendingUserBatches.remove(sequence)
        let lowest = pendingUserBatches.min() ?? .max
        var still: [(Int, CheckedContinuation<Void, Never>)] = []
        for waiter in userWaiters {
            if waiter.sequence <= lowest { waiter.continuation.resume() } else { still.append(waiter) }
        }
        userWaiters = still
    }

    /// Returns once every users batch closed before `sequence` is settled (accepted or written down).
    func waitForUsers(before sequence: Int) async {
        guard let lowest = pendingUserBatches.min(), lowest < sequence else { return }
        await withCheckedContinuation { userWaiters.append((sequence, $0)) }
    }

    // MARK: Jobs

    /// The job a request should append to, or nil when this request is to create one. While one
    /// request creates a job, the others of its kind wait for it rather than open jobs of their own.
    func jobForRequest(_ kind: ItemKind, now: Double, rotation: Double, maxItems: Int) async -> String? {
        while true {
            if let id = openJob[kind], let job = jobs[id] {
                if now - job.createdAt < rotation, job.items < maxItems {
                    jobs[id]!.requestsInFlight += 1
                    return id
                }
                openJob[kind] = nil
                retired.append(id)
            }
            if !creatingJob.contains(kind) {
                creatingJob.insert(kind)
                return nil
            }
            await withCheckedContinuation { jobWaiters[kind, default: []].append($0) }
        }
    }

    func jobCreated(_ kind: ItemKind, id: String, at time: Double) {
        if jobs[id] == nil {
            jobs[id] = JobRecord(id: id, kind: kind, createdAt: time)
            jobOrder.append(id)
        }
        openJob[kind] = id
        jobCreationEnded(kind)
    }

    func jobCreationEnded(_ kind: ItemKind) {
        creatingJob.remove(kind)
        for waiter in jobWaiters[kind] ?? [] { waiter.resume() }
        jobWaiters[kind] = nil
    }

    func jobDead(_ kind: ItemKind, id: String) {
        if openJob[kind] == id {
            openJob[kind] = nil
            retired.append(id)
        }
    }

    /// A request that named `id` has its answer.
    func requestDone(job id: String) {
        jobs[id]?.requestsInFlight -= 1
    }

    func requestsInFlight(job id: String) -> Int { jobs[id]?.requestsInFlight ?? 0 }

    /// Retired jobs no request still names: their feeds can be read now (each handed out once).
    func takeRetiredAndIdle() -> [JobRecord] {
        let idle = retired.filter { (jobs[$0]?.requestsInFlight ?? 0) == 0 }
        retired.removeAll { idle.contains($0) }
        return idle.compactMap { jobs[$0] }
    }

    /// The feed was read (or given up): what we kept to trace its items is no longer needed.
    func dropJob(_ id: String) {
        jobs[id] = nil
        jobOrder.removeAll { $0 == id }
    }

    func allJobs() -> [JobRecord] { jobOrder.compactMap { jobs[$0] } }

    func unreadJob(_ job: JobRecord) {
        summary.unreadJobFeeds.append(PendingJob(id: job.id, kind: job.kind.dataType))
    }

    func unmatchedJobItems(_ n: Int) { summary.unmatchedJobItems += n }

    func takePosition(job id: String, fingerprint: UInt64) -> RecordPosition? {
        jobs[id]?.take(fingerprint)
    }

    // MARK: Outcomes

    /// Only a job is acceptance, so an accepted batch always has one.
    func accepted(_ batch: Batch, jobID: String, fingerprints: [UInt64]) {
        if batch.kind == .user { summary.uploadedUsers += batch.count } else { summary.uploadedEvents += batch.count }
        if jobs[jobID] == nil {
            jobs[jobID] = JobRecord(id: jobID, kind: batch.kind, createdAt: 0)
            jobOrder.append(jobID)
        }
        jobs[jobID]!.items += batch.count
        for (index, fingerprint) in fingerprints.enumerated() where index < batch.positions.count {
            jobs[jobID]!.remember(fingerprint, at: batch.positions[index])
        }
    }

    func failed(_ batch: Batch, code: String) {
        summary.failed[code, default: 0] += batch.count
    }

    func failedInJob(kind: ItemKind, code: String) {
        summary.failed[code, default: 0] += 1
        if kind == .user { summary.uploadedUsers -= 1 } else { summary.uploadedEvents -= 1 }
    }

    func setFatal(_ error: UploadFatalError) { if fatal == nil { fatal = error } }
    func countRequest() { summary.requests += 1 }
    func countRetry() { summary.retries += 1 }
}
