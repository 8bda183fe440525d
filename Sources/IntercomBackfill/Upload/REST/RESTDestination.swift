import Foundation
import Logging
import Synchronization

/// REST mode (contract §8): batches of mapped items become 2.x calls, parallel across users and
/// in input order within one user. Registering a batch (in batch order, so in input order)
/// links each item to the earlier user item of its key and each company change to the earlier
/// change of that company; an update that would wait behind an unstarted update of the same
/// contact is merged into it. Delivering a batch runs its operations and settles the batch once
/// every call its items led to (merged ones too) was acknowledged or written down.
public final class RESTDestination: Destination {
    public struct Options: Sendable {
        /// The most calls in flight; the adaptive limit moves between 1 and this.
        public var maxConcurrency = 64
        /// Run a batch's operations one after another (the dry run: its lines in a stable order).
        public var sequential = false
        /// Batches registered and delivering at once: how far ahead updates of one contact or
        /// company can merge. A kill re-sends at most `(window + 1) × batch size` events (the
        /// contact and company writes of re-read items are found in the state store and skipped).
        public var window = 64
        /// The 2.x version spoken, for the report ("2.14").
        public var version = "2.\(IntercomAPIVersion.defaultRESTMinor)"

        public init() {}
    }

    private struct Registry {
        /// The last user item registered per contact key, while it runs or waits.
        var lastUserOperation: [String: RESTOperation] = [:]
        /// Events registered per key since its last user item, while they run or wait.
        var eventsSinceUser: [String: [RESTOperation]] = [:]
        /// The last step registered per company_id, while it runs or waits.
        var lastCompanyStep: [String: CompanyStep] = [:]
        /// Per registered batch not yet delivered: the operation of each item and the item's
        /// place among those it carries (merged items point at the operation that carries them),
        /// and the operations it runs itself.
        var batches: [Int: (items: [(operation: RESTOperation, part: Int)], own: [RESTOperation])] = [:]
    }

    private struct Figures {
        var summary = SinkSummary()
        var unchanged = 0
        var merged = 0
        var companiesNamed = 0
        var emailOnlyEvents = 0
        var eventsAlreadySent = 0
    }

    let options: Options
    let caller: RESTCaller
    let store: StateStore
    let catalog: AttributeCatalog
    let writer: ContactWriter
    let rejects: RejectsWriter
    let sources: InputRegistry
    let tracker: CheckpointTracker?
    let logger: Logger
    private let registry = Mutex(Registry())
    private let figures = Mutex(Figures())
    private let planning = Mutex(ReasonCounts<MappingWarning>())

    public init(
        transport: any RESTTransport, store: StateStore, options: Options, uploadOptions: UploadOptions, rejects: RejectsWriter,
        sources: InputRegistry, clock: any UploadClock = SystemUploadClock(), stop: StopSignal, tracker: CheckpointTracker?,
        logger: Logger
    ) {
        self.options = options
        self.caller = RESTCaller(
            transport: transport, options: uploadOptions, maxConcurrency: options.sequential ? 1 : options.maxConcurrency,
            clock: clock, stop: stop, logger: logger)
        self.store = store
        self.catalog = AttributeCatalog(caller: caller, store: store, logger: logger)
        self.writer = ContactWriter(caller: caller, store: store, catalog: catalog)
        self.rejects = rejects
        self.sources = sources
        self.tracker = tracker
        self.logger = logger
    }

    /// One batch at a time in the dry run (its lines in input order), else the merging window.
    public var windowCapacity: Int? { options.sequential ? nil : options.window }

    // MARK: Destination

    public func register(_ batch: Batch) async {
        // A failed listing is not fatal here; a refused token ends the run at its first delivery.
        do { try await catalog.load() } catch { logger.debug("listing the data attributes ended: \(error)") }
        var items: [(operation: RESTOperation, part: Int)] = []
        var own: [RESTOperation] = []
        for item in RESTItemReader.items(of: batch) {
            switch item {
            case .contact(var change)?:
                var warnings = ReasonCounts<MappingWarning>()
                await catalog.plan(&change, warnings: &warnings)
                planning.withLock { $0.merge(warnings) }
                let (operation, part) = registerContact(change)
                items.append((operation, part))
                if part == 0 { own.append(operation) }
            case .event(let event)?:
                let operation = registerEvent(event)
                items.append((operation, 0))
                own.append(operation)
            case nil:
                let operation = RESTOperation(key: "", work: .invalid, predecessor: nil)
                items.append((operation, 0))
                own.append(operation)
            }
        }
        registry.withLock { $0.batches[batch.sequence] = (items, own) }
    }

    /// The operation that carries `change`, and its place there (0: an operation of its own).
    private func registerContact(_ change: ContactChange) -> (RESTOperation, part: Int) {
        figures.withLock { $0.companiesNamed += change.companies.count }
        return registry.withLock { registry in
            let steps = change.companies.map { company -> CompanyStep in
                let previous = registry.lastCompanyStep[company.companyID]
                let step = CompanyStep(companyID: company.companyID, removes: company.remove, predecessor: previous?.finished)
                previous?.follow(with: step)
                registry.lastCompanyStep[company.companyID] = step
                return step
            }
            let key = change.key
            if let last = registry.lastUserOperation[key],
                let part = last.absorb(
                    change, steps: steps, allowForeignDependencies: !options.sequential,
                    contactExists: { [store] in ((try? store.contactID(forKey: key)) ?? nil) != nil })
            {
                figures.withLock { $0.merged += 1 }
                return (last, part)
            }
            let operation = RESTOperation(
                key: key, work: .contact(change, companySteps: steps, parts: []),
                predecessor: registry.lastUserOperation[key]?.finished,
                earlierEvents: (registry.eventsSinceUser.removeValue(forKey: key) ?? []).map(\.finished))
            registry.lastUserOperation[key] = operation
            return (operation, 0)
        }
    }

    private func registerEvent(_ event: EventChange) -> RESTOperation {
        if event.emailOnly { figures.withLock { $0.emailOnlyEvents += 1 } }
        return registry.withLock { registry in
            let last = registry.lastUserOperation[event.key]
            last?.noteFollowingEvent()
            let operation = RESTOperation(key: event.key, work: .event(event), predecessor: last?.finished)
            registry.eventsSinceUser[event.key, default: []].append(operation)
            return operation
        }
    }

    public func deliver(_ batch: Batch) async throws -> Delivery {
        guard let (items, own) = registry.withLock({ $0.batches.removeValue(forKey: batch.sequence) }) else {
            return .retryLater
        }
        if options.sequential {
            for operation in own {
                await waitForTurn(operation)
                let run = OperationRun(operation)
                advancing: while true {
                    switch await advance(run) {
                    case .parked(let predecessor):
                        await predecessor.wait()
                    case .ended(let error):
                        if let error { throw error }
                        break advancing
                    }
                }
            }
        } else {
            try await runInParallel(own)
        }
        // Items merged into another batch's operation are settled when it is; items whose
        // company fields a later step writes, when it has.
        var outcomes: [OperationOutcome] = []
        outcomes.reserveCapacity(items.count)
        for (operation, part) in items {
            let outcome = await operation.settled(part: part)
            // A note the store cannot take costs a re-run some calls, never a record: not fatal.
            if case .applied = outcome, let applied = operation.takeAppliedLater() { try? writer.note(applied) }
            outcomes.append(outcome)
        }
        return try settle(batch, outcomes: outcomes)
    }

    /// Runs operations as their turns come, each holding an operation slot while it makes calls.
    /// A task runs only then: a run that waits for another operation's company step gives its
    /// slot up and ends its task, and comes back through the mailbox once that step has ended.
    private func runInParallel(_ operations: [RESTOperation]) async throws {
        // A batch whose items all merged into earlier operations runs none: no end would ever
        // finish the mailbox below.
        guard !operations.isEmpty else { return }
        let mailbox = Mailbox<OperationRun>()
        let left = Countdown(operations.count)
        for operation in operations {
            operation.whenTurnComes { mailbox.post(OperationRun(operation)) }
        }
        // Cancelled (another delivery hit a fatal error), every run still goes to its end, giving
        // up at once, in order, so nothing waits forever behind it.
        try await withThrowingDiscardingTaskGroup { group in
            while let run = await mailbox.next() {
                await caller.concurrency.enterOperation()
                group.addTask {
                    let progress = await self.advance(run)
                    await self.caller.concurrency.leaveOperation()
                    switch progress {
                    case .parked(let predecessor):
                        predecessor.whenDone { mailbox.post(run) }
                    case .ended(let error):
                        if left.tick() { mailbox.finish() }
                        if let error { throw error }
                    }
                }
            }
        }
    }

    /// Until the operations registered before it that it follows have ended.
    private func waitForTurn(_ operation: RESTOperation) async {
        await operation.predecessor?.wait()
        for event in operation.earlierEvents { await event.wait() }
    }

    /// Takes `run` as far as it goes without waiting for another operation. It always ends the
    /// operation and its company steps in the end, even when a call throws, so nothing waits
    /// forever behind it.
    private func advance(_ run: OperationRun) async -> RunProgress {
        while true {
            switch run.stage {
            case .waiting:
                (run.work, run.itemCount) = run.operation.start()
                run.stage = .contact
            case .contact:
                do {
                    switch run.work {
                    case .contact(let change, _, let parts):
                        switch try await writer.applyContact(change, parts: parts, tally: &run.tally) {
                        case .ended(let outcome): run.finish(.success(outcome))
                        case .written(let contactID): run.stage = .company(contactID: contactID, next: 0)
                        }
                    case .event(let event):
                        run.finish(.success(try await writer.send(event, tally: &run.tally)))
                    case .invalid:
                        run.finish(.success(.failed(code: "invalid_item", message: "the mapped item could not be read back")))
                    }
                } catch {
                    run.finish(.failure(error))
                }
            case .company(let contactID, let next):
                guard case .contact(let change, let steps, let parts) = run.work else { preconditionFailure("not a contact") }
                do {
                    // One step a company change (`absorb` appends both); the closing stage ends any left.
                    guard next < steps.count, next < change.companies.count else {
                        run.finish(
                            .success(try writer.finishContact(change, parts: parts, contactID: contactID, tally: &run.tally)))
                        continue
                    }
                    let step = steps[next]
                    if let predecessor = step.predecessor, !predecessor.isDone { return .parked(on: predecessor) }
                    let outcome = try await writer.applyCompany(
                        at: next, of: change, parts: parts, step: step, contactID: contactID, tally: &run.tally)
                    if let outcome {
                        run.finish(.success(outcome))
                    } else {
                        run.stage = .company(contactID: contactID, next: next + 1)
                    }
                } catch {
                    run.finish(.failure(error))
                }
            case .closing(let next):
                let steps = run.steps
                guard next < steps.count else { return .ended(end(run)) }
                // A step the item never reached (it failed, or was applied before) still ends in
                // company order: after the step before it, so what that one hands on, or writes,
                // is not overtaken by a later item's fields.
                let step = steps[next]
                if let predecessor = step.predecessor, !predecessor.isDone { return .parked(on: predecessor) }
                if let carried = step.close() { await writer.flush(carried, step: step, tally: &run.tally) }
                // At once, not at the end: a later company's earlier step may wait for this one.
                step.finished.fire()
                run.stage = .closing(next: next + 1)
            }
        }
    }

    /// Ends a run's operation with its outcome and counts it; the error that ends the delivery, if any.
    private func end(_ run: OperationRun) -> (any Error)? {
        let outcome = (try? run.result.get()) ?? .gaveUp("the run is stopping")
        let tally = run.tally
        end(
            run.operation, work: run.work, outcome: outcome, failedParts: tally.failedParts, promises: tally.promises,
            appliedLater: tally.appliedLater)
        figures.withLock { figures in
            figures.summary.warnings.merge(tally.warnings)
            if case .applied(unchanged: true) = outcome { figures.unchanged += run.itemCount }
            if tally.eventAlreadySent { figures.eventsAlreadySent += 1 }
        }
        if case .failure(let error) = run.result { return error }
        return nil
    }

    /// Ends an operation and its company steps, and forgets them as the last of their key or company.
    private func end(
        _ operation: RESTOperation, work: RESTOperation.Work, outcome: OperationOutcome,
        failedParts: [Int: OperationOutcome], promises: [CompanyWritePromise], appliedLater: AppliedItems?
    ) {
        let steps: [CompanyStep]
        if case .contact(_, let companySteps, _) = work { steps = companySteps } else { steps = [] }
        for step in steps {
            step.finished.fire()
            step.release()
        }
        operation.end(outcome, failedParts: failedParts, promises: promises, appliedLater: appliedLater)
        registry.withLock { registry in
            if registry.lastUserOperation[operation.key] === operation { registry.lastUserOperation[operation.key] = nil }
            if case .event = work, var events = registry.eventsSinceUser[operation.key] {
                events.removeAll { $0 === operation }
                registry.eventsSinceUser[operation.key] = events.isEmpty ? nil : events
            }
            for step in steps where registry.lastCompanyStep[step.companyID] === step {
                registry.lastCompanyStep[step.companyID] = nil
            }
        }
    }

    /// Counts the batch's items and writes down the failed ones; `.retryLater` when any was not
    /// done in this run (written as `upload_failed`, as the bulk uploader does, and sent again next run).
    private func settle(_ batch: Batch, outcomes: [OperationOutcome]) throws -> Delivery {
        var delivery = Delivery.settled
        var uploaded = 0
        var failed: [String: Int] = [:]
        var writeError: (any Error)?
        // Stopping, or cancelled because another delivery hit a fatal error: what was not done
        // is neither sent nor failed, and the next run sends it.
        let stopping = caller.stop.isRequested || Task.isCancelled
        // Every position is counted, one bucket each, whether or not its item could be read back.
        var records = [[UInt8]](repeating: [], count: batch.count)
        ItemScanner.forEachItemData(batch.items) { index, data in
            if index < records.count { records[index] = Array(data) }
        }
        for (index, position) in batch.positions.enumerated() where writeError == nil {
            let data = records[index]
            let code: String
            let detail: String
            switch index < outcomes.count ? outcomes[index] : .failed(code: "invalid_item", message: "no operation") {
            case .applied:
                uploaded += 1
                continue
            case .failed(let failedCode, let message):
                (code, detail) = (failedCode, message)
            case .gaveUp(let why):
                delivery = .retryLater
                // Stopping: neither sent nor failed; the next run sends it.
                if stopping { continue }
                (code, detail) = ("upload_failed", why)
            }
            do {
                try data.withUnsafeBytes { record in
                    try rejects.write(
                        source: sources.name(of: position.input), line: position.line, reason: code, detail: detail,
                        record: record)
                }
                tracker?.failed(at: position, code: code)
                failed[code, default: 0] += 1
            } catch {
                writeError = error
            }
        }
        if let writeError {
            throw UploadFatalError(kind: .output, status: 0, code: "rejects_unwritable", message: "\(writeError)")
        }
        figures.withLock { figures in
            if batch.kind == .user {
                figures.summary.uploadedUsers += uploaded
            } else {
                figures.summary.uploadedEvents += uploaded
            }
            for (code, n) in failed { figures.summary.failed[code, default: 0] += n }
        }
        return delivery
    }

    public func finish() async throws -> SinkSummary {
        await summarySoFar()
    }

    public func summarySoFar() async -> SinkSummary {
        let counts = caller.counts.withLock { $0 }
        let peak = await caller.concurrency.peak
        let planned = planning.withLock { $0 }
        return figures.withLock { figures in
            var summary = figures.summary
            summary.warnings.merge(planned)
            summary.requests = counts.total
            summary.retries = counts.retries
            summary.api = options.version
            summary.rest = RESTFigures(
                version: options.version, calls: counts.byEndpoint, unchanged: figures.unchanged, merged: figures.merged,
                rateLimited: counts.rateLimited, concurrencyPeak: peak, companiesNamed: figures.companiesNamed,
                emailOnlyEvents: figures.emailOnlyEvents, eventsAlreadySent: figures.eventsAlreadySent)
            return summary
        }
    }

    public var statusLine: String {
        let counts = caller.counts.withLock { $0 }
        let (unchanged, merged) = figures.withLock { ($0.unchanged, $0.merged) }
        return "\(counts.total) REST calls, \(unchanged) unchanged, \(merged) merged"
    }
}

/// What a REST run did beyond the bulk counts (contract §8.4, the report's `api` and `calls`).
public struct RESTFigures: Sendable, Equatable {
    public var version: String
    public var calls: [String: Int]
    public var unchanged: Int
    public var merged: Int
    public var rateLimited: Int
    public var concurrencyPeak: Int
    public var companiesNamed: Int
    public var emailOnlyEvents: Int
    /// Events not sent because the same one (byte for byte) was acknowledged before: a repeat in
    /// the input, or one re-read after a kill. Part of `unchanged`.
    public var eventsAlreadySent: Int
}

extension RESTDestination {
    /// Which workspace a state store belongs to: a hash of the endpoint and the credentials
    /// (never the token itself), so what one workspace taught is never used against another.
    public static func workspaceIdentity(of client: IntercomClient) -> String {
        var hasher = StableHash()
        var text = client.endpoint.baseURL + "\u{0}" + client.credentials.authorizationHeader
        text.withUTF8 { hasher.update(UnsafeRawBufferPointer($0)) }
        return hasher.hex
    }
}
