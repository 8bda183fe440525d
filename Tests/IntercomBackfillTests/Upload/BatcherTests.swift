import XCTest

@testable import IntercomBackfill

final class BatcherTests: XCTestCase {
    func add(_ batcher: inout Batcher, _ kind: ItemKind, line: Int) {
        let data = Array("{\"n\":\(line)}".utf8)
        data.withUnsafeBytes {
            batcher.add(kind, data: $0, position: RecordPosition(input: 0, line: line, endOffset: Int64(line)))
        }
    }

    func test_batchesCloseAtBatchSize_inInputOrder() {
        var batcher = Batcher(batchSize: 2)
        for line in 1...5 { add(&batcher, .user, line: line) }
        batcher.flush()
        let batches = batcher.takeReady()
        XCTAssertEqual(batches.map(\.count), [2, 2, 1])
        XCTAssertEqual(batches.flatMap(\.positions).map(\.line), [1, 2, 3, 4, 5])
        XCTAssertEqual(
            String(decoding: batches[0].items, as: UTF8.self),
            "{\"method\":\"post\",\"data_type\":\"user\",\"data\":{\"n\":1}},{\"method\":\"post\",\"data_type\":\"user\",\"data\":{\"n\":2}}"
        )
    }

    func test_eventsBatchClosing_closesPendingUsersFirst() {
        var batcher = Batcher(batchSize: 2)
        add(&batcher, .event, line: 1)
        add(&batcher, .user, line: 2)
        add(&batcher, .event, line: 3)
        let batches = batcher.takeReady()
        XCTAssertEqual(batches.map(\.kind), [.user, .event], "the user must be sent before the events that follow it")
        XCTAssertLessThan(batches[0].sequence, batches[1].sequence)
    }

    func test_byteCap_closesBatchEarly() {
        var batcher = Batcher(batchSize: 100, maxBodyBytes: 400)
        for line in 1...10 { add(&batcher, .event, line: line) }
        batcher.flush()
        let batches = batcher.takeReady()
        XCTAssertGreaterThan(batches.count, 1)
        XCTAssertTrue(batches.allSatisfy { $0.items.count + Batcher.wrapperAllowance <= 400 })
        XCTAssertEqual(batches.map(\.count).reduce(0, +), 10)
    }

    func test_firstPendingPosition_isTheEarliestOpenItem() {
        var batcher = Batcher(batchSize: 10)
        XCTAssertNil(batcher.firstPendingPosition)
        add(&batcher, .event, line: 4)
        add(&batcher, .user, line: 7)
        XCTAssertEqual(batcher.firstPendingPosition?.line, 4)
    }
}
