import Logging

/// The delivery stage: takes units off the channel in order and delivers at most `concurrency`
/// batches at once, in a task group of the caller's scope (nothing outlives it). A batch holds
/// its window slot until its settlement is in a saved checkpoint, so what a crash makes us send
/// again stays within the window. Marks alone are settled as they arrive. The checkpoint saver
/// runs beside the deliveries in the same group.
struct DeliveryStage {
    let run: RunContext
    let channel: BatchChannel

    func run() async throws {
        let window = DeliveryWindow(capacity: run.options.concurrency)
        defer { run.tracker?.stopWaiting() }
        // Discarding: a finished delivery leaves nothing behind in the group, however long the run.
        try await withThrowingDiscardingTaskGroup { group in
            if let tracker = run.tracker {
                group.addTask { try await Self.saveCheckpoints(tracker, run: run, window: window, channel: channel) }
            }
            while let unit = await channel.next() {
                if unit.isMarkOnly {
                    run.tracker?.settled(unit)
                    continue
                }
                if let wanted = run.destination.windowCapacity { await window.resize(wanted) }
                guard await window.acquire(), !run.stop.isRequested else { break }
                await run.destination.register(unit)
                group.addTask { try await deliver(unit, window: window) }
            }
            if await window.isClosed { group.cancelAll() }
            // No new sends: stop holding slots for durability, let the saver end.
            run.tracker?.stopWaiting()
        }
    }

    private func deliver(_ unit: Batch, window: DeliveryWindow) async throws {
        do {
            switch try await run.destination.deliver(unit) {
            case .settled:
                run.tracker?.settled(unit)
                await run.tracker?.waitUntilDurable(unit.sequence)
            case .retryLater:
                run.tracker?.holdBack(unit)
            }
        } catch {
            await fail(window: window)
            throw error
        }
        await window.release()
        await run.destination.afterDelivery()
    }

    /// A fatal error: no new request leaves, the reader stops, the waits end.
    private func fail(window: DeliveryWindow) async {
        await window.close()
        channel.cancel()
        run.tracker?.stopWaiting()
    }

    /// Saves whenever a delivery waits for durability (grouping their fsyncs), else every
    /// `checkpointInterval`; a failed save (full disk) ends the run.
    private static func saveCheckpoints(
        _ tracker: CheckpointTracker, run: RunContext, window: DeliveryWindow,
        channel: BatchChannel
    ) async throws {
        let clock = SystemUploadClock()
        while await tracker.waitForSaveRequest(interval: run.options.checkpointInterval, clock: clock, stop: run.stop) {
            do {
                try tracker.saveIfChanged(now: clock.now())
            } catch {
                await window.close()
                channel.cancel()
                tracker.stopWaiting()
                throw error
            }
        }
    }
}

/// At most `capacity` batches out at once; closed on a fatal error, which wakes every waiter.
actor DeliveryWindow {
    private var capacity: Int
    private var used = 0
    private var waiters: [CheckedContinuation<Bool, Never>] = []
    private(set) var isClosed = false

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Takes a slot; false when the window was closed.
    func acquire() async -> Bool {
        if isClosed { return false }
        if used < capacity {
            used += 1
            return true
        }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// A destination that wants another width (REST mode, also after `auto` fell back to it).
    func resize(_ wanted: Int) {
        capacity = max(1, wanted)
        while used < capacity, !waiters.isEmpty {
            used += 1
            waiters.removeFirst().resume(returning: true)
        }
    }

    func release() {
        if isClosed { return }
        if waiters.isEmpty || used > capacity {
            used -= 1
        } else {
            // The slot passes straight to the next waiter.
            waiters.removeFirst().resume(returning: true)
        }
    }

    func close() {
        isClosed = true
        for waiter in waiters { waiter.resume(returning: false) }
        waiters.removeAll()
    }
}
