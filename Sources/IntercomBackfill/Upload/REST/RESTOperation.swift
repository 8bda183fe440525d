import Synchronization

/// Something others wait for: an operation or a company step that has ended.
final class Completion: Sendable {
    private let state = Mutex<(done: Bool, actions: [@Sendable () -> Void])>((false, []))

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            whenDone { continuation.resume() }
        }
    }

    /// Runs `action` once this has fired (at once if it has).
    func whenDone(_ action: @escaping @Sendable () -> Void) {
        let ready = state.withLock { state -> Bool in
            if state.done { return true }
            state.actions.append(action)
            return false
        }
        if ready { action() }
    }

    var isDone: Bool { state.withLock { $0.done } }

    func fire() {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            state.done = true
            defer { state.actions.removeAll() }
            return state.actions
        }
        for action in actions { action() }
    }
}

/// How an operation ended, for every item it carries.
enum OperationOutcome: Sendable, Equatable {
    /// Applied; `unchanged` when the state store showed there was nothing to write (no call).
    case applied(unchanged: Bool)
    /// Intercom did not take it: the items fail with this code (written to the rejects file).
    case failed(code: String, message: String)
    /// Not done in this run (retries spent, a stop): the checkpoint stays before its items.
    case gaveUp(String)
}

/// Thrown inside an operation when a call it needs could not be made in this run.
struct RESTGaveUp: Error {
    var reason: String
}

/// Thrown inside an operation when Intercom refused one of its calls for good.
struct RESTRefused: Error {
    var code: String
    var message: String
}

/// The calls of one contact key's item (with the later items merged into it while it waited),
/// or of one event. It runs after `predecessor`, the earlier user item of the same key, so a
/// user's items apply in input order and an event finds its contact.
final class RESTOperation: Sendable {
    enum Work: Sendable {
        /// `parts`: once later items are merged in, every item's own change in input order (empty
        /// before), so a merged call Intercom refuses can be made again item by item.
        case contact(ContactChange, companySteps: [CompanyStep], parts: [ContactChange])
        case event(EventChange)
        case invalid
    }

    private struct State {
        var work: Work
        var itemCount = 1
        var started = false
        /// An event of the same key was registered after it (see `absorb`).
        var followedByEvent = false
        var outcome: OperationOutcome?
        /// Items (by their place among those it carries) that failed on their own after the
        /// merged call was refused; the others end with `outcome`.
        var failedParts: [Int: OperationOutcome] = [:]
        /// Writes of its company fields that later steps make for it.
        var promises: [CompanyWritePromise] = []
        var appliedLater: AppliedItems?
    }

    let key: String
    let predecessor: Completion?
    /// A user item also waits for the events of its key that came before it (one key keeps its
    /// input order, §8.3a): else a later identify could create the user an earlier event
    /// should not have found.
    let earlierEvents: [Completion]
    let finished = Completion()
    private let state: Mutex<State>

    init(key: String, work: Work, predecessor: Completion?, earlierEvents: [Completion] = []) {
        self.key = key
        self.predecessor = predecessor
        self.earlierEvents = earlierEvents
        state = Mutex(State(work: work))
    }

    /// Merges a later user item of the same key if this one has not started; the later item's
    /// place among the items it carries (nil: not merged). Past an event of the key registered in
    /// between only when `contactExists` (asked only then) says Intercom has the contact: the
    /// event, which waits for this operation, then finds the contact whatever the earlier item
    /// does, as in input order; else a later item could create the contact, or fix the field
    /// that fails the earlier one, before an event that should not have found it (§8.3a).
    /// Operations run one after another (the dry run) also need the later item's company changes
    /// to wait for nothing but this operation's own: an operation then depends only on what was
    /// registered before it. Run in parallel, an operation waiting for another's company step
    /// gives its slot up meanwhile, so nothing can wait in a circle either.
    func absorb(
        _ later: ContactChange, steps: [CompanyStep], allowForeignDependencies: Bool, contactExists: () -> Bool
    ) -> Int? {
        state.withLock { state -> Int? in
            guard !state.started, case .contact(var change, let companySteps, var parts) = state.work else { return nil }
            let dependsOnOthers = steps.contains { step in
                guard let predecessor = step.predecessor else { return false }
                return !companySteps.contains { $0.finished === predecessor }
            }
            if dependsOnOthers && !allowForeignDependencies { return nil }
            if state.followedByEvent && !contactExists() { return nil }
            // Let go of the arrays first, so they grow in place instead of being copied each merge.
            state.work = .invalid
            if parts.isEmpty { parts = [change] }
            parts.append(later)
            change.absorb(later)
            state.work = .contact(change, companySteps: companySteps + steps, parts: parts)
            state.itemCount += 1
            return state.itemCount - 1
        }
    }

    func noteFollowingEvent() { state.withLock { $0.followedByEvent = true } }

    /// Runs `action` once every operation this one follows has ended (at once if they have).
    func whenTurnComes(_ action: @escaping @Sendable () -> Void) {
        let followed = [predecessor].compactMap { $0 } + earlierEvents
        guard !followed.isEmpty else { return action() }
        let left = Countdown(followed.count)
        for completion in followed {
            completion.whenDone { if left.tick() { action() } }
        }
    }

    /// Takes the work to do: from now on nothing merges into it.
    func start() -> (Work, items: Int) {
        state.withLock { state in
            state.started = true
            return (state.work, state.itemCount)
        }
    }

    func end(
        _ outcome: OperationOutcome, failedParts: [Int: OperationOutcome], promises: [CompanyWritePromise],
        appliedLater: AppliedItems?
    ) {
        state.withLock {
            $0.outcome = outcome
            $0.failedParts = failedParts
            $0.promises = promises
            $0.appliedLater = appliedLater
        }
        finished.fire()
    }

    /// Items to note as applied once its promises are kept (taken once).
    func takeAppliedLater() -> AppliedItems? {
        state.withLock { state in
            defer { state.appliedLater = nil }
            return state.appliedLater
        }
    }

    /// How its item at `part` (0: its own, then those merged in) ended, once the company writes
    /// made for it ended too.
    func settled(part: Int = 0) async -> OperationOutcome {
        await finished.wait()
        let (outcome, promises) = state.withLock { ($0.failedParts[part] ?? $0.outcome ?? .gaveUp("not run"), $0.promises) }
        guard case .applied = outcome else { return outcome }
        for promise in promises {
            await promise.done.wait()
            if let written = promise.outcome, written != .applied(unchanged: false), written != .applied(unchanged: true) {
                return written
            }
        }
        return outcome
    }
}

/// One company change of a user item, in the order of every item that names the same company:
/// company fields are later-wins in input order too, whatever key their items belong to.
///
/// A step whose company Intercom already has, and that has a later upsert of the same company
/// waiting behind it, hands its fields forward instead of writing them (the later values win
/// field by field): the company is written once for a run of changes, and the join, which needs
/// only the company's id, goes at once.
final class CompanyStep: Sendable {
    let companyID: String
    let removes: Bool
    let predecessor: Completion?
    let finished = Completion()
    private struct Handover {
        var successor: CompanyStep?
        var carried: CarriedCompanyChange?
        /// Its operation is past it: nothing handed to it now would be written.
        var closed = false
    }
    private let handover = Mutex(Handover())

    init(companyID: String, removes: Bool, predecessor: Completion?) {
        self.companyID = companyID
        self.removes = removes
        self.predecessor = predecessor
    }

    func follow(with successor: CompanyStep) { handover.withLock { $0.successor = successor } }

    /// The next upsert of this company, if one is registered (it waits for this step, so it has not run).
    var nextUpsert: CompanyStep? {
        handover.withLock { $0.successor }.flatMap { $0.removes ? nil : $0 }
    }

    /// Takes the fields an earlier step handed forward.
    func takeCarried() -> CarriedCompanyChange? {
        handover.withLock { state in
            defer { state.carried = nil }
            return state.carried
        }
    }

    /// Takes what was handed forward and takes no more: its operation is done with it (it may
    /// have skipped it without waiting for the step before, which can still hand fields on).
    func close() -> CarriedCompanyChange? {
        handover.withLock { state in
            state.closed = true
            defer { state.carried = nil }
            return state.carried
        }
    }

    /// Hands `change` to this step; false when its operation is past it (then the giver writes it).
    func carry(_ change: CarriedCompanyChange) -> Bool {
        handover.withLock { state in
            guard !state.closed else { return false }
            state.carried = change
            return true
        }
    }

    /// Drops the link forward once done, so a long chain of steps is not kept alive by its head.
    func release() { handover.withLock { $0.successor = nil } }
}

/// Company fields handed forward, with the promises of the items they came from: those items
/// settle only once a call that carries their fields was acknowledged.
struct CarriedCompanyChange: Sendable {
    var change: CompanyChange
    var promises: [CompanyWritePromise]
    /// Contacts whose membership waits for the company to exist, each with its item's promise.
    var joins: [(contactID: String, promise: CompanyWritePromise)]
}

/// A company write a later step makes for an earlier item: how it ended, once it has.
final class CompanyWritePromise: Sendable {
    let done = Completion()
    private let result = Mutex<OperationOutcome?>(nil)

    func resolve(_ outcome: OperationOutcome) {
        let first = result.withLock { result -> Bool in
            guard result == nil else { return false }
            result = outcome
            return true
        }
        if first { done.fire() }
    }

    var outcome: OperationOutcome? { result.withLock { $0 } }
}

/// Counts down from `count`; `tick` says when it reached zero (once).
final class Countdown: Sendable {
    private let left: Mutex<Int>
    init(_ count: Int) { left = Mutex(count) }
    func tick() -> Bool {
        left.withLock {
            $0 -= 1
            return $0 == 0
        }
    }
}
