import Foundation
import XCTest

@testable import IntercomBackfill

/// Maps one record line and returns the outcome and the item's `data` as text.
func mapRecord(_ line: String, mapper: inout RecordMapper) -> (MapOutcome, String) {
    var copy = line
    let outcome = copy.withUTF8 { mapper.map(UnsafeRawBufferPointer($0)) }
    if case .mapped = outcome { return (outcome, String(decoding: mapper.data, as: UTF8.self)) }
    return (outcome, "")
}

func mapRecord(_ line: String) -> (MapOutcome, String) {
    var mapper = RecordMapper()
    return mapRecord(line, mapper: &mapper)
}

/// Maps a record that must become an item, and returns its `data` text.
func mappedData(_ line: String, file: StaticString = #filePath, lineNumber: UInt = #line) -> String {
    let (outcome, data) = mapRecord(line)
    guard case .mapped = outcome else {
        XCTFail("expected an item, got \(outcome)", file: file, line: lineNumber)
        return ""
    }
    return data
}

/// The outcome's bucket for assertions: "user", "event", "skipped:<code>", "rejected:<code>".
func bucket(_ line: String) -> String {
    switch mapRecord(line).0 {
    case .mapped(let kind): return kind.dataType
    case .skipped(let reason): return "skipped:\(reason.rawValue)"
    case .rejected(let reason, _): return "rejected:\(reason.rawValue)"
    }
}

/// Parses the data text with Foundation (tests only) for field-by-field checks.
func object(_ data: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
}
