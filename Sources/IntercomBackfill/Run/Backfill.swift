import Foundation
import Logging

/// Settings of the read -> parse -> map -> batch -> deliver path.
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
    /// Batches delivered at once; also how many may be sent and not yet in a saved checkpoint.
    public var concurrency = 4
    /// Seconds between checkpoint writes when nobody waits for one.
    public var checkpointInterval = 1.0

    public init() {}
}

/// Checkpointing for a run: what an earlier run saved, and the tracker that saves this one's
/// (shared with the destination, which counts failed items per input there).
public struct ResumeState: Sendable {
    public var tracker: CheckpointTracker
    public var previous: CheckpointFile?

    /// `rejects` is made durable before every checkpoint that counts what was written to it.
    public init(store: CheckpointStore, previous: CheckpointFile?, rejects: RejectsWriter) {
        tracker = CheckpointTracker(store: store, resumingFrom: previous, rejects: rejects)
        self.previous = previous
    }
}

/// The objects a run shares between its stages, made once by `Backfill.run` and handed down.
struct RunContext: Sendable {
    let inputs: [InputFile]
    let options: PipelineOptions
    let rejects: RejectsWriter
    let registry: InputRegistry
    let stop: StopSignal
    let tracker: CheckpointTracker?
    let previous: CheckpointFile?
    let destination: any Destination
    let progress: ProgressLine?
    let logger: Logger
}

/// One backfill run, as one structured piece:
///
///     inputs -> bytes (plain or gzip) -> lines -> records -> items -> batches   (ReadingStage, own thread)
///       --bounded channel-->  deliveries, at most `concurrency` at once         (DeliveryStage, task group)
///       -> acknowledgements -> checkpoint (rejects made durable first)          (CheckpointTracker)
///       -> report
///
/// Every record ends in one bucket and is settled one way: its unit (a batch, or a mark alone for
/// skipped and rejected records) is acknowledged to the tracker. The scope owns what the stages
/// share and always ends them: on success, on a fatal error and on a signal.
public enum Backfill {
    /// Runs every input through `destination`. A damaged input is reported and the others still
    /// run; a fatal error (refused credentials, a full disk) throws a `PipelineFailure` that
    /// carries the true counts so far, so the report can still be written.
    public static func run(
        inputs: [InputFile], options: PipelineOptions, destination: any Destination, rejects: RejectsWriter,
        resume: ResumeState?, registry: InputRegistry, stop: StopSignal, progress: ProgressLine?,
        logger: Logger
    ) async throws -> RunReport {
        let started = MonotonicClock.now()
        let tracker = resume?.tracker
        if let tracker { stop.whenRequested { tracker.stopWaiting() } }
        let run = RunContext(
            inputs: inputs, options: options, rejects: rejects, registry: registry, stop: stop, tracker: tracker,
            previous: resume?.previous, destination: destination, progress: progress, logger: logger)
        let channel = BatchChannel(capacity: max(8, 2 * options.concurrency))
        let reading = ReadingStage(run: run, channel: channel)
        let reader = ReadingThread { reading.read() }

        var failure: (any Error)?
        do {
            try await DeliveryStage(run: run, channel: channel).run()
        } catch {
            failure = error
        }
        channel.cancel()
        let read = await reader.join()
        failure = failure ?? read.failure
        progress?.finish()

        var summary = await destination.summarySoFar()
        if failure == nil {
            do { summary = try await destination.finish() } catch { failure = error }
        }
        if let tracker {
            if !summary.unreadJobFeeds.isEmpty { tracker.pendingJobs(summary.unreadJobFeeds) }
            do { try tracker.saveIfChanged(now: SystemUploadClock().now()) } catch { failure = failure ?? error }
        } else {
            do { try rejects.flush() } catch { failure = failure ?? error }
        }
        let report = RunReport(read: read, summary: summary, elapsed: MonotonicClock.now() - started)
        if let failure { throw PipelineFailure(underlying: failure, report: report) }
        return report
    }
}

extension RunReport {
    /// The counts of the reading stage joined with what the destination did (and earlier runs).
    init(read: ReadingStage.Outcome, summary: SinkSummary, elapsed: Double) {
        self = read.report
        requests = summary.requests
        retries = summary.retries
        uploadedUsers = summary.uploadedUsers
        uploadedEvents = summary.uploadedEvents
        failed = summary.failed
        unmatchedJobItems = summary.unmatchedJobItems
        unreadJobFeeds = summary.unreadJobFeeds.map(\.id)
        warnings.merge(summary.warnings)
        api = summary.api
        rest = summary.rest
        elapsedSeconds = elapsed
        if read.resumed { add(earlier: read.earlier) }
    }
}

/// A run that had to stop (refused credentials, a full disk): the cause, and the true counts of
/// what had been done by then.
public struct PipelineFailure: Error, CustomStringConvertible {
    public var underlying: any Error
    public var report: RunReport
    public var description: String { "\(underlying)" }
}

/// The reading stage's thread: its reads block (files, pipes, `--follow` polling), so they stay
/// off Swift's cooperative pool. `join` suspends the caller, not a pool thread.
final class ReadingThread: @unchecked Sendable {
    private var outcome: ReadingStage.Outcome?
    private let done = NSCondition()
    private var thread: Thread?

    init(_ body: @escaping @Sendable () -> ReadingStage.Outcome) {
        let thread = Thread { [self] in
            let result = body()
            done.lock()
            outcome = result
            done.broadcast()
            done.unlock()
        }
        thread.name = "intercom-backfill reader"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    func join() async -> ReadingStage.Outcome {
        await withCheckedContinuation { continuation in
            // Waiting on a condition would block a pool thread: wait on a thread of our own instead.
            Thread.detachNewThread { [self] in
                done.lock()
                while outcome == nil { done.wait() }
                let result = outcome!
                done.unlock()
                continuation.resume(returning: result)
            }
        }
    }
}
