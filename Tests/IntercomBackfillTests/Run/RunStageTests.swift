import Foundation
import XCTest

@testable import IntercomBackfill

/// The pieces of the run's structure, without sockets: the marks batches carry, the bounded
/// hand-over between the reading thread and the deliveries, and the delivery window.
final class RunStageTests: XCTestCase {
    private func identify(_ n: Int) -> String { #"{"type":"identify","userId":"u\#(n)","timestamp":"2026-11-01T10:00:00Z"}"# }
    private func track(_ n: Int) -> String {
        #"{"type":"track","userId":"u\#(n)","event":"e","timestamp":"2026-11-01T10:00:00Z"}"#
    }
    private func page(_ n: Int) -> String { #"{"type":"page","userId":"u\#(n)"}"# }

    /// Routes `lines` and returns the closed batches in order (with the final flush).
    private func route(_ lines: [String], batchSize: Int) throws -> [Batch] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("router-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var router = RecordRouter(
            batchSize: batchSize, rejects: try RejectsWriter(path: folder.appendingPathComponent("r").path, append: false))
        router.leavesMarks = true
        var batches: [Batch] = []
        var splitter = LineSplitter()
        let bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        try bytes.withUnsafeBytes { raw in try splitter.consume(raw) { try router.route($0) } }
        batches += router.batcher.takeReady()
        router.flush()
        batches += router.batcher.takeReady()
        return batches
    }

    /// Whatever the mix of users, events and skipped records: everything mapped before a batch's
    /// point is in that batch or an earlier one, so a checkpoint at the point loses nothing.
    func test_everyBatchPoint_coversOnlyRecordsInItOrEarlierBatches() throws {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<40 {
            let count = Int.random(in: 1...300, using: &generator)
            let lines = (0..<count).map { n -> String in
                switch Int.random(in: 0..<10, using: &generator) {
                case 0..<3: return identify(n)
                case 3..<9: return track(n)
                default: return page(n)
                }
            }
            let batchSize = [1, 3, 7, 10][round % 4]
            let batches = try route(lines, batchSize: batchSize)
            var lineToSequence: [Int: Int] = [:]
            for batch in batches { for position in batch.positions { lineToSequence[position.line] = batch.sequence } }
            var lastPoint = 0
            for batch in batches {
                let point = try XCTUnwrap(batch.routedThrough, "batch \(batch.sequence) carries a point")
                XCTAssertGreaterThanOrEqual(point.line, lastPoint, "points only move forward")
                lastPoint = point.line
                for (line, sequence) in lineToSequence where line <= point.line {
                    XCTAssertLessThanOrEqual(
                        sequence, batch.sequence, "line \(line) is past the point of batch \(batch.sequence) (round \(round))")
                }
                XCTAssertEqual(
                    point.report.records, lines.prefix(point.line).count, "the point's counts are those of the lines before it")
            }
            // The last batch reaches its last record; skipped lines after it settle through a mark alone.
            let lastMapped = batches.flatMap(\.positions).map(\.line).max() ?? 0
            XCTAssertGreaterThanOrEqual(
                batches.last?.routedThrough?.line ?? 0, lastMapped, "the last batch reaches its last record")
        }
    }

    /// The bound rule: a users batch is never sent more than one batch past an older pending event.
    func test_batcher_aUsersBatchClosesOlderPendingEventsToo() throws {
        let lines = [track(0)] + (1...7).map(identify)
        let shape = try route(lines, batchSize: 3).map { "\($0.kind == .user ? "U" : "E")\($0.count)" }
        XCTAssertEqual(shape, ["U3", "E1", "U3", "U1"])
    }

    func test_channel_blocksTheReaderWhenFull_andCancelUnblocksIt() async throws {
        let channel = BatchChannel(capacity: 2)
        let sent = LockedCounter()
        let reader = Thread {
            for n in 0..<10 {
                guard channel.send(Batch(kind: .user, items: [], positions: [], sequence: n)) else { break }
                sent.increment()
            }
            channel.finish()
        }
        reader.start()
        let first = await channel.next()
        XCTAssertEqual(first?.sequence, 0, "units arrive in order")
        let second = await channel.next()
        XCTAssertEqual(second?.sequence, 1)
        channel.cancel()
        let afterCancel = await channel.next()
        XCTAssertNil(afterCancel, "nothing is handed out after a cancel")
        var waited = 0
        while !reader.isFinished, waited < 10_000 {
            usleep(1000)
            waited += 1
        }
        XCTAssertTrue(reader.isFinished, "a cancel ends the blocked reader")
        XCTAssertLessThan(sent.value, 10, "the reader was held back by the bound")
    }

    func test_channel_finishAfterTheLastUnit_endsTheConsumer() async {
        let channel = BatchChannel(capacity: 4)
        XCTAssertTrue(channel.send(Batch(kind: .event, items: [], positions: [], sequence: 0)))
        channel.finish()
        let unit = await channel.next()
        XCTAssertEqual(unit?.sequence, 0)
        let end = await channel.next()
        XCTAssertNil(end)
    }

    func test_window_holdsAtMostCapacity_andCloseWakesWaiters() async {
        let window = DeliveryWindow(capacity: 2)
        let first = await window.acquire()
        let second = await window.acquire()
        XCTAssertTrue(first && second)
        async let third = window.acquire()
        await window.close()
        let thirdAcquired = await third
        XCTAssertFalse(thirdAcquired, "a closed window lets nothing more out")
        let afterClose = await window.acquire()
        XCTAssertFalse(afterClose)
    }

    func test_stopSignal_endsASleepAtOnce_andWakesWaiters() async {
        let stop = StopSignal()
        async let waited: Void = stop.wait()
        stop.request(signal: SIGTERM)
        await waited
        let slept = await stop.sleep(seconds: 3600, clock: SystemUploadClock())
        XCTAssertFalse(slept, "a sleep after a stop returns at once, saying it was cut short")
        XCTAssertEqual(stop.requestedBy, SIGTERM)
    }
}

private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() {
        lock.lock()
        count += 1
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
