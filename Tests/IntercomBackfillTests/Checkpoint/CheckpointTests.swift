import XCTest

@testable import IntercomBackfill

final class CheckpointTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func entry(line: Int, complete: Bool = false) -> InputCheckpoint {
        InputCheckpoint(
            source: "a.gz", streamName: nil, headHash: "h", headLength: 10, size: 100, line: line,
            offset: Int64(line * 10), complete: complete, prefixHash: nil, counts: CheckpointCounts())
    }

    func test_store_roundTrips_andKeepsThePreviousVersion() throws {
        let store = CheckpointStore(directory: folder.path)
        XCTAssertNil(try store.load { _ in XCTFail("no warning on a first run") })
        var file = CheckpointFile()
        file.upsert(entry(line: 1))
        try store.save(file)
        file.upsert(entry(line: 2))
        try store.save(file)
        XCTAssertEqual(try store.load { _ in }?.inputs.first?.line, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("checkpoint.prev.json").path))
    }

    func test_store_detectsAnEditedFile_andFallsBack() throws {
        let store = CheckpointStore(directory: folder.path)
        var file = CheckpointFile()
        file.upsert(entry(line: 1))
        try store.save(file)
        file.upsert(entry(line: 2))
        try store.save(file)
        let path = folder.appendingPathComponent("checkpoint.json")
        let edited = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(of: "\"line\" : 2", with: "\"line\" : 9")
        try edited.write(to: path, atomically: true, encoding: .utf8)
        var warning = ""
        XCTAssertEqual(try store.load { warning = $0 }?.inputs.first?.line, 1)
        XCTAssertTrue(warning.contains("damaged"))
    }

    func test_tracker_advancesOnlyPastSettledBatches() throws {
        let store = CheckpointStore(directory: folder.path)
        let tracker = CheckpointTracker(store: store, resumingFrom: nil)
        let first = Batch(
            kind: .user, items: [], positions: [RecordPosition(input: 0, line: 1, endOffset: 10)], sequence: 0,
            mark: CheckpointMark(input: 0, entry: entry(line: 2)))
        let second = Batch(
            kind: .event, items: [], positions: [RecordPosition(input: 0, line: 3, endOffset: 30)], sequence: 1,
            mark: CheckpointMark(input: 0, entry: entry(line: 4)))
        XCTAssertNil(tracker.entries[0], "nothing settled yet")
        tracker.settled(second)
        XCTAssertNil(tracker.entries[0], "line 1 is still in flight")
        tracker.settled(first)
        XCTAssertEqual(tracker.entries[0]?.line, 4)
    }

    func test_tracker_aMarkAloneWaitsForTheBatchesBeforeIt() {
        let tracker = CheckpointTracker(store: CheckpointStore(directory: folder.path), resumingFrom: nil)
        let batch = Batch(kind: .user, items: [], positions: [RecordPosition(input: 0, line: 2, endOffset: 20)], sequence: 0)
        let markAlone = Batch(
            kind: .user, items: [], positions: [], sequence: 1, mark: CheckpointMark(input: 0, entry: entry(line: 9)))
        tracker.settled(markAlone)
        XCTAssertNil(tracker.entries[0], "the record on line 2 is not settled yet")
        tracker.settled(batch)
        XCTAssertEqual(tracker.entries[0]?.line, 9)
    }

    func test_tracker_saveMakesTheRejectsDurableFirst() throws {
        let rejectsPath = folder.appendingPathComponent("rejects.ndjson").path
        let rejects = try RejectsWriter(path: rejectsPath, append: false)
        let tracker = CheckpointTracker(store: CheckpointStore(directory: folder.path), resumingFrom: nil, rejects: rejects)
        try rejects.write(source: "a", line: 1, reason: "invalid_json", detail: "", record: "{")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: rejectsPath)).count, 0, "the reject waits in the buffer")
        tracker.settled(
            Batch(kind: .user, items: [], positions: [], sequence: 0, mark: CheckpointMark(input: 0, entry: entry(line: 1))))
        try tracker.saveIfChanged(now: 1)
        XCTAssertGreaterThan(
            try Data(contentsOf: URL(fileURLWithPath: rejectsPath)).count, 0, "the checkpoint counts it: it is on disk first")
    }

    func test_stableHash_isStableAndSensitive() {
        let a = Array("hello world".utf8).withUnsafeBytes { StableHash.hex(of: $0) }
        let b = Array("hello world".utf8).withUnsafeBytes { StableHash.hex(of: $0) }
        let c = Array("hello worle".utf8).withUnsafeBytes { StableHash.hex(of: $0) }
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.count, 16)
    }
}
