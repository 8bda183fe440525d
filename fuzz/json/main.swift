// Differential fuzz target: JSONParser + JSONView against Foundation's JSONSerialization.
//
// Both must accept the same inputs and yield equal values, except for the deliberate
// differences listed in fuzz/README.md, each excluded below by a check that matches only it.
import Foundation

@testable import IntercomBackfill

/// What JSONSerialization yields for `true`/`false` (a distinct NSNumber subclass), so a boolean
/// is told from the numbers 1 and 0.
private let booleanType: ObjectIdentifier = {
    let value = try! JSONSerialization.jsonObject(with: Data("true".utf8), options: [.fragmentsAllowed])
    return ObjectIdentifier(type(of: value as AnyObject))
}()

private var parser = JSONParser()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let reference = try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed])

    // Difference 1, encoding detection: Foundation skips a BOM and reads UTF-16/32 (guessed from
    // a BOM or from zero bytes among the first four). Our lines are UTF-8 with the BOM already
    // stripped by the line splitter, so such input must be rejected by us; nothing to compare.
    if startsWithBOMOrWideEncoding(input) {
        check(!accepts(input), "accepted input that starts with a BOM or a zero byte", input)
        return 0
    }

    // Difference 2, trailing commas: Foundation accepts `[1,]` and `{"a":1,}`; RFC 8259 and we do
    // not. Each comma that our parser stops at is removed and the rest compared as usual.
    var ours = input
    var outcome = parse(ours)
    for _ in 0..<size {
        guard reference != nil, case .failure(let error) = outcome, let comma = trailingComma(ours, error) else { break }
        ours.remove(at: comma)
        outcome = parse(ours)
    }

    switch (outcome, reference) {
    case (.success, nil):
        // Difference 3, lone UTF-16 surrogates (`"\ud800"`): Foundation rejects them; we keep the
        // record and decode each as U+FFFD (JSON.stringify in browsers can emit them).
        // Difference 4, numbers beyond Double's range (`1e400`): Foundation rejects them; we keep
        // every number as its source text (contract §6) and only computed values read it.
        let excused = ours.withUnsafeBytes { bytes in
            parser.withNodes { nodes in
                let view = JSONView(bytes: bytes, nodes: nodes)
                return hasLoneSurrogate(view) || hasNumberBeyondDouble(view)
            }
        }
        check(excused, "accepted, Foundation rejects", input)
    case (.failure(let error), .some):
        // Difference 5, depth: our limit is 256 levels (JSONParser.defaultMaxDepth), Foundation's 512.
        check(error.reason == .tooDeep, "rejected (\(error)), Foundation accepts", input)
    case (.success, .some(let value)):
        ours.withUnsafeBytes { bytes in
            parser.withNodes { nodes in
                let view = JSONView(bytes: bytes, nodes: nodes)
                check(nodes.count == Int(nodes[0].subtreeEnd), "the root's subtree does not cover the tape", input)
                if let difference = compare(view, JSONView.root, value, path: "$") {
                    check(false, "values differ at \(difference)", input)
                }
            }
        }
    case (.failure, nil):
        break
    }
    return 0
}

private func parse(_ bytes: [UInt8]) -> Result<Void, JSONSyntaxError> {
    bytes.withUnsafeBytes { raw in
        do throws(JSONSyntaxError) {
            try parser.parse(raw)
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}

private func accepts(_ bytes: [UInt8]) -> Bool {
    if case .success = parse(bytes) { return true }
    return false
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String, _ input: [UInt8]) {
    guard !condition else { return }
    let shown = String(decoding: input.prefix(300), as: UTF8.self).debugDescription
    fatalError("json: \(message()); input \(shown)")
}

/// Whether Foundation would read `input` as other than plain UTF-8 (its encoding detection).
private func startsWithBOMOrWideEncoding(_ input: [UInt8]) -> Bool {
    if input.starts(with: [0xEF, 0xBB, 0xBF]) || input.starts(with: [0xFE, 0xFF]) || input.starts(with: [0xFF, 0xFE]) {
        return true
    }
    return input.prefix(4).contains(0)
}

/// The offset of the comma that makes our parser stop at a closing bracket (`[1,]`), if that is why it stopped.
private func trailingComma(_ bytes: [UInt8], _ error: JSONSyntaxError) -> Int? {
    guard error.reason == .unexpectedCharacter, error.offset < bytes.count,
        bytes[error.offset] == UInt8(ascii: "]") || bytes[error.offset] == UInt8(ascii: "}")
    else { return nil }
    var k = error.offset - 1
    while k >= 0, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[k]) { k -= 1 }
    return k >= 0 && bytes[k] == UInt8(ascii: ",") ? k : nil
}

/// Whether a string holds a `\uD800`-`\uDFFF` escape that is not half of a well-formed pair.
/// Written here from the source bytes, independently of JSONView's decoder.
private func hasLoneSurrogate(_ view: JSONView) -> Bool {
    for i in 0..<view.nodes.count where view.kind(i) == .string && view.nodes[i].flag {
        let raw = Array(view.raw(i))
        var units: [UInt32?] = []  // \u escapes as code units; nil for anything else
        var k = 0
        while k < raw.count {
            if raw[k] == UInt8(ascii: "\\") {
                if raw[k + 1] == UInt8(ascii: "u") {
                    units.append(UInt32(String(decoding: raw[(k + 2)..<(k + 6)], as: UTF8.self), radix: 16))
                    k += 6
                } else {
                    units.append(nil)
                    k += 2
                }
            } else {
                units.append(nil)
                k += 1
            }
        }
        var j = 0
        while j < units.count {
            guard let unit = units[j] else {
                j += 1
                continue
            }
            if (0xD800...0xDBFF).contains(unit) {
                if j + 1 < units.count, let low = units[j + 1], (0xDC00...0xDFFF).contains(low) {
                    j += 2
                    continue
                }
                return true
            }
            if (0xDC00...0xDFFF).contains(unit) { return true }
            j += 1
        }
    }
    return false
}

private func hasNumberBeyondDouble(_ view: JSONView) -> Bool {
    (0..<view.nodes.count).contains { view.kind($0) == .number && !(view.double($0)?.isFinite ?? false) }
}

/// Where our value at `i` differs from Foundation's `value`; nil when they are equal.
private func compare(_ view: JSONView, _ i: Int, _ value: Any, path: String) -> String? {
    switch view.kind(i) {
    case .object:
        guard let dictionary = value as? [String: Any] else { return "\(path): object vs \(type(of: value))" }
        // Last one wins on a repeated key, as in JSONView.member and in Foundation. Keys are
        // Swift Strings there, which compare by canonical equivalence: "é" and "e\u{301}" are one
        // key to Foundation (difference 6), so keys are matched the same way and their bytes
        // compared only when no two of them are canonically equal.
        var members: [String: Int] = [:]
        var keyBytes: [String: [UInt8]] = [:]
        var canonicalCollision = false
        view.forEachMember(i) { key, value in
            let name = view.string(key)!
            var bytes: [UInt8] = []
            view.appendDecodedString(key, to: &bytes)
            if let earlier = keyBytes[name], earlier != bytes { canonicalCollision = true }
            keyBytes[name] = bytes
            members[name] = value
        }
        guard members.count == dictionary.count else {
            return "\(path): \(members.count) distinct keys vs \(dictionary.count)"
        }
        for (key, element) in dictionary {
            guard let ourValue = members[key] else { return "\(path): key \(key.debugDescription) missing" }
            if !canonicalCollision, keyBytes[key] != Array(key.utf8) {
                return "\(path): key bytes differ for \(key.debugDescription)"
            }
            if let difference = compare(view, ourValue, element, path: "\(path).\(key.debugDescription)") {
                return difference
            }
        }
        return nil
    case .array:
        guard let array = value as? [Any] else { return "\(path): array vs \(type(of: value))" }
        var elements: [Int] = []
        view.forEachElement(i) { elements.append($0) }
        guard elements.count == array.count, elements.count == view.memberCount(i) else {
            return "\(path): \(elements.count) elements (count \(view.memberCount(i))) vs \(array.count)"
        }
        for (k, element) in elements.enumerated() {
            if let difference = compare(view, element, array[k], path: "\(path)[\(k)]") { return difference }
        }
        return nil
    case .string:
        guard let string = value as? String else { return "\(path): string vs \(type(of: value))" }
        var bytes: [UInt8] = []
        view.appendDecodedString(i, to: &bytes)
        guard bytes == Array(string.utf8) else { return "\(path): string \(bytes) vs \(Array(string.utf8))" }
        guard view.string(i).map({ Array($0.utf8) }) == bytes else { return "\(path): string(_:) differs from its bytes" }
        return nil
    case .number:
        guard let number = value as? NSNumber, ObjectIdentifier(type(of: number)) != booleanType else {
            return "\(path): number vs \(type(of: value))"
        }
        return compareNumber(view, i, number, path: path)
    case .true, .false:
        guard let number = value as? NSNumber, ObjectIdentifier(type(of: number)) == booleanType else {
            return "\(path): boolean vs \(type(of: value))"
        }
        return number.boolValue == (view.kind(i) == .true) ? nil : "\(path): \(view.kind(i)) vs \(number)"
    case .null:
        return value is NSNull ? nil : "\(path): null vs \(type(of: value))"
    }
}

private func compareNumber(_ view: JSONView, _ i: Int, _ number: NSNumber, path: String) -> String? {
    let text = String(decoding: view.raw(i), as: UTF8.self)
    guard let ours = view.double(i) else { return "\(path): \(text) has no Double value" }
    // An integer that fits Int64 must come out exact (user ids and timestamps are read so).
    if let exact = view.int64(i) {
        if Double(exact) != ours { return "\(path): int64 \(exact) vs double \(ours) for \(text)" }
        let objCType = String(cString: number.objCType)
        if objCType != "d", objCType != "f", !(number is NSDecimalNumber), number.int64Value != exact {
            return "\(path): int64 \(exact) vs Foundation \(number.int64Value)"
        }
    } else if view.nodes[i].flag, text.count < 19 {
        return "\(path): integer \(text) fits Int64 but int64(_:) is nil"
    }
    // Otherwise nearest Doubles: Foundation may go through Decimal (38 digits), so allow a
    // rounding step or two, and treat the subnormal range as zero-ish.
    let theirs = number.doubleValue
    if ours == theirs { return nil }
    let scale = max(abs(ours), abs(theirs))
    if abs(ours - theirs) <= scale * 1e-12 || scale < 1e-300 { return nil }
    return "\(path): number \(text): ours \(ours), Foundation \(theirs)"
}
