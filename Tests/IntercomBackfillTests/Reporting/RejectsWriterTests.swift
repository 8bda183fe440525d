import Foundation
import XCTest

@testable import IntercomBackfill

final class RejectsWriterTests: XCTestCase {
    func test_rejectLine_hasSourceLineReasonDetailRecord_andBase64ForNonUTF8() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rejects-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try RejectsWriter(path: path, append: false)
        try writer.write(source: "a.gz", line: 7, reason: "invalid_json", detail: "bad \"x\"", record: "{\"é\":1")
        let bytes: [UInt8] = [0x7B, 0xFF, 0x7D]
        try bytes.withUnsafeBytes { try writer.write(source: "b", line: 1, reason: "invalid_json", detail: "", record: $0) }
        try writer.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual(first["source"] as? String, "a.gz")
        XCTAssertEqual(first["line"] as? Int, 7)
        XCTAssertEqual(first["reason"] as? String, "invalid_json")
        XCTAssertEqual(first["detail"] as? String, "bad \"x\"")
        XCTAssertEqual(first["record"] as? String, "{\"é\":1")
        let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        XCTAssertNil(second["record"])
        XCTAssertEqual(Data(base64Encoded: second["record_base64"] as! String), Data(bytes))
    }

    func test_report_addsUpAndSerialisesContractKeys() throws {
        var report = RunReport()
        report.records = 5
        report.mappedUsers = 1
        report.mappedEvents = 2
        report.skipped.add(.anonymous)
        report.rejected.add(.invalidJSON)
        XCTAssertTrue(report.addsUp)
        let object = try JSONSerialization.jsonObject(with: report.jsonData()) as! [String: Any]
        for key in [
            "records", "mapped", "skipped", "rejected", "warnings", "uploaded", "failed", "requests", "retries",
            "elapsed_seconds",
        ] {
            XCTAssertNotNil(object[key], key)
        }
        report.records = 6
        XCTAssertFalse(report.addsUp)
    }
}
