// Fuzz target: RecordMapper on any line.
//
// Checks: it never traps; every line ends in exactly one bucket, and the bucket agrees with the
// early decisions of contract §2 as worked out here; a mapper reused from line to line gives the
// same outcome and bytes as a fresh one; every mapped item is JSON the sandbox's parser reads
// and, wrapped as the Batcher wraps it, the sandbox's ItemValidator accepts.
@testable import IntercomBackfill
@testable import IntercomSandbox

/// Reused across inputs, as the pipeline reuses one per worker: state left over from earlier
/// lines must not change the result.
private var reused = RecordMapper()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMapper(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeRawBufferPointer(start: data, count: size)
    let outcome = reused.map(line)
    let itemBytes = Array(reused.itemBytes)
    var fresh = RecordMapper()
    let freshOutcome = fresh.map(line)
    check(outcome == freshOutcome, "a reused mapper gave \(outcome), a fresh one \(freshOutcome)", line)

    var parser = JSONParser()
    let parses = (try? parser.parse(line)) != nil
    switch outcome {
    case .rejected(.invalidJSON, _):
        check(!parses, "rejected invalid_json, but the line parses", line)
        return 0
    case .rejected(.lineTooLong, _):
        check(false, "line_too_long is the line splitter's reason, not the mapper's", line)
    default:
        check(parses, "the line does not parse, but the outcome is \(outcome)", line)
    }
    let rootIsObject = parser.withNodes { $0[0].kind == .object }
    check(rootIsObject == (outcome != .rejected(.notAnObject, detail: detail(outcome))), "not_an_object disagrees", line)

    guard case .mapped(let kind) = outcome else { return 0 }
    check(itemBytes == Array(fresh.itemBytes), "a reused mapper wrote other bytes than a fresh one", line)

    // The item as the Batcher sends it, read by the sandbox's own parser.
    let dataType = kind == .user ? "user" : "event"
    let wrapped = Array("{\"method\":\"post\",\"data_type\":\"\(dataType)\",\"data\":".utf8) + itemBytes + [UInt8(ascii: "}")]
    let item: JSONValue
    do {
        item = try JSONReader.parse(wrapped)
    } catch {
        check(false, "the mapped item is not JSON (\(error)): \(String(decoding: itemBytes, as: UTF8.self))", line)
        return 0
    }
    guard let object = item.objectValue else {
        check(false, "the mapped item is not an object", line)
        return 0
    }
    // Our own parser must read our output too (the REST stage and the rejects file re-read it).
    var again = JSONParser()
    check((try? itemBytes.withUnsafeBytes { try again.parse($0) }) != nil, "our parser rejects the mapped item", line)

    switch ItemValidator.validate(object, as: kind == .user ? .user : .event) {
    case .success:
        break
    case .failure(let failure):
        // The one deliberate difference: contract §2 takes any non-empty string as the email; Intercom
        // (and the sandbox) reports a malformed one per item, in the job's error feed.
        let malformedEmail =
            failure.message.hasPrefix("email ") && failure.message.contains("is not an email address")
            && object["data"]?.objectValue?["email"]?.stringValue.map { !ItemValidator.looksLikeEmail($0) } == true
        check(
            malformedEmail,
            "the sandbox rejects the mapped item: \(failure.message); item \(String(decoding: itemBytes, as: UTF8.self))", line)
    }
    return 0
}

private func detail(_ outcome: MapOutcome) -> String {
    if case .rejected(_, let detail) = outcome { return detail }
    return ""
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String, _ line: UnsafeRawBufferPointer) {
    guard !condition else { return }
    let shown = String(decoding: line.prefix(400), as: UTF8.self).debugDescription
    fatalError("mapper: \(message()); line \(shown)")
}
