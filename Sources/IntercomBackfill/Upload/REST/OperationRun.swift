import Synchronization

/// One operation on its way through its calls: the contact's, then its company steps in order,
/// then the steps it did not reach (closed in company order). A step whose predecessor, another
/// operation's step of the same company, has not ended parks the run until it has, with no task
/// waiting meanwhile: the window holds thousands of operations, many behind the same company,
/// and a waiting task keeps its frame and a stack slab of kilobytes.
///
/// Touched by one task at a time: the one advancing it, then, after a park, the one that
/// resumes it (handed over under the locks of the completion and of the mailbox).
final class OperationRun: @unchecked Sendable {
    enum Stage {
        /// Not started: later items of its key can still merge into the operation.
        case waiting
        case contact
        case company(contactID: String, next: Int)
        /// Ending: the steps from `next` on are closed in company order.
        case closing(next: Int)
    }

    let operation: RESTOperation
    var stage = Stage.waiting
    var work = RESTOperation.Work.invalid
    var itemCount = 0
    var tally = ContactWriter.Tally()
    var result: Result<OperationOutcome, any Error> = .success(.gaveUp("not run"))

    init(_ operation: RESTOperation) { self.operation = operation }

    var steps: [CompanyStep] {
        if case .contact(_, let steps, _) = work { return steps }
        return []
    }

    /// Its outcome is known: what is left is closing its steps.
    func finish(_ result: Result<OperationOutcome, any Error>) {
        self.result = result
        stage = .closing(next: 0)
    }
}

/// What advancing a run came to.
enum RunProgress {
    /// It waits for this step of another operation; advance it again once that has ended.
    case parked(on: Completion)
    /// Ended, with the error that ends the delivery, if any.
    case ended((any Error)?)
}

/// A first-in first-out queue with one consumer that, unlike `AsyncStream`, does not end when
/// the consumer is cancelled: cancelled or not, every operation posted must still run to its
/// end (giving up at once), or those that follow it would wait forever.
final class Mailbox<Element: Sendable>: Sendable {
    private struct State {
        var incoming: [Element] = []
        var outgoing: [Element] = []
        var consumer: CheckedContinuation<Element?, Never>?
        var finished = false
    }
    private let state = Mutex(State())

    func post(_ element: Element) {
        let consumer = state.withLock { state -> CheckedContinuation<Element?, Never>? in
            guard let consumer = state.consumer else {
                state.incoming.append(element)
                return nil
            }
            state.consumer = nil
            return consumer
        }
        consumer?.resume(returning: element)
    }

    /// No more elements: the consumer gets nil once it has taken those posted.
    func finish() {
        let consumer = state.withLock { state -> CheckedContinuation<Element?, Never>? in
            state.finished = true
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// The next element, waiting for one; nil once finished and empty.
    func next() async -> Element? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
            // `.some(nil)`: finished and empty; nil: nothing yet, the consumer waits.
            let taken = state.withLock { state -> Element?? in
                if state.outgoing.isEmpty, !state.incoming.isEmpty {
                    state.outgoing = state.incoming.reversed()
                    state.incoming.removeAll(keepingCapacity: true)
                }
                if let element = state.outgoing.popLast() { return .some(element) }
                if state.finished { return .some(nil) }
                state.consumer = continuation
                return nil
            }
            if let taken { continuation.resume(returning: taken) }
        }
    }
}
