// Differential fuzz target: Timestamp (contract §2's date rules) against a reference written here
// from the contract's text alone, by other means (whole-text pattern checks, day counts from
// 0001-01-01, exact decimal arithmetic on a number's digits).
//
// Each input is tried twice: as the content of a JSON string (`"` + input + `"`, so the fuzzer
// can write escapes), and as a JSON value of its own (numbers). Where §2 is silent the reference
// takes the strict reading the implementation documents: seconds 00-59, hours 00-23, offsets up to
// 23:59, `T` and `Z` in upper case, and a date whose UTC instant falls outside years 1-9999 is none.
@testable import IntercomBackfill

private var parser = JSONParser()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTimestamp(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))

    let quoted = [UInt8(ascii: "\"")] + input + [UInt8(ascii: "\"")]
    quoted.withUnsafeBytes { bytes in
        guard (try? parser.parse(bytes)) != nil else { return }
        parser.withNodes { nodes in
            let view = JSONView(bytes: bytes, nodes: nodes)
            guard nodes.count == 1, view.kind(0) == .string else { return }
            var text: [UInt8] = []
            view.appendDecodedString(0, to: &text)
            let expected = referenceDate(text)
            let actual = Timestamp.unixSeconds(view, 0)
            check(actual == expected, "string \(String(decoding: text, as: UTF8.self).debugDescription)", actual, expected)
        }
    }

    input.withUnsafeBytes { bytes in
        guard (try? parser.parse(bytes)) != nil else { return }
        parser.withNodes { nodes in
            let view = JSONView(bytes: bytes, nodes: nodes)
            guard view.kind(0) == .number else { return }
            let expected = referenceNumber(Array(view.raw(0)))
            let actual = Timestamp.unixSeconds(view, 0)
            check(actual == expected, "number \(String(decoding: view.raw(0), as: UTF8.self))", actual, expected)
        }
    }
    return 0
}

private func check(_ condition: Bool, _ what: String, _ actual: Int64?, _ expected: Int64?) {
    guard !condition else { return }
    fatalError(
        "timestamp: \(what): Timestamp gives \(actual.map(String.init) ?? "nil"), the reference \(expected.map(String.init) ?? "nil")"
    )
}

// MARK: the reference

/// Unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the usable instants.
private let earliest: Int64 = -62_135_596_800
private let latest: Int64 = 253_402_300_799

/// A date string's unix seconds, or nil when it is none of §2's forms.
private func referenceDate(_ text: [UInt8]) -> Int64? {
    // The shape first, character class by character class: D digit, the rest literal.
    func matches(_ pattern: String, at offset: Int = 0) -> Bool {
        let p = Array(pattern.utf8)
        guard text.count >= offset + p.count else { return false }
        for (k, c) in p.enumerated() {
            let b = text[offset + k]
            if c == UInt8(ascii: "D") {
                guard (0x30...0x39).contains(b) else { return false }
            } else if b != c {
                return false
            }
        }
        return true
    }
    func number(_ from: Int, _ length: Int) -> Int64 {
        text[from..<(from + length)].reduce(0) { $0 * 10 + Int64($1 - 0x30) }
    }
    guard matches("DDDD-DD-DD") else { return nil }
    let year = number(0, 4)
    let month = number(5, 2)
    let day = number(8, 2)
    guard year >= 1, (1...12).contains(month), day >= 1, day <= monthLength(year, month) else { return nil }
    var seconds = daysSinceEpoch(year, month, day) * 86_400
    if text.count == 10 { return seconds }

    guard matches("TDD:DD:DD", at: 10) else { return nil }
    let hour = number(11, 2)
    let minute = number(14, 2)
    let second = number(17, 2)
    guard hour <= 23, minute <= 59, second <= 59 else { return nil }
    seconds += hour * 3600 + minute * 60 + second
    var rest = Array(text[19...])
    if rest.first == UInt8(ascii: ".") {
        let digits = rest.dropFirst().prefix { (0x30...0x39).contains($0) }
        guard !digits.isEmpty else { return nil }
        rest = Array(rest.dropFirst(1 + digits.count))  // a fraction never moves the whole second down
    }
    switch rest.count {
    case 0:
        break
    case 1:
        guard rest[0] == UInt8(ascii: "Z") else { return nil }
    case 6:
        guard rest[0] == UInt8(ascii: "+") || rest[0] == UInt8(ascii: "-"), rest[3] == UInt8(ascii: ":"),
            [1, 2, 4, 5].allSatisfy({ (0x30...0x39).contains(rest[$0]) })
        else { return nil }
        let offsetHours = Int64(rest[1] - 0x30) * 10 + Int64(rest[2] - 0x30)
        let offsetMinutes = Int64(rest[4] - 0x30) * 10 + Int64(rest[5] - 0x30)
        guard offsetHours <= 23, offsetMinutes <= 59 else { return nil }
        // +02:00 is two hours ahead of UTC: the UTC instant is earlier.
        let offset = offsetHours * 3600 + offsetMinutes * 60
        seconds += rest[0] == UInt8(ascii: "+") ? -offset : offset
    default:
        return nil
    }
    return (earliest...latest).contains(seconds) ? seconds : nil
}

private func isLeap(_ year: Int64) -> Bool { year % 400 == 0 || (year % 4 == 0 && year % 100 != 0) }

private func monthLength(_ year: Int64, _ month: Int64) -> Int64 {
    let lengths: [Int64] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return month == 2 && isLeap(year) ? 29 : lengths[Int(month - 1)]
}

/// Days from 1970-01-01: whole years counted from 0001-01-01, then the months of this year.
private func daysSinceEpoch(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
    let y = year - 1
    let daysBeforeYear = 365 * y + y / 4 - y / 100 + y / 400
    var daysBeforeMonth: Int64 = 0
    for m in 1..<month { daysBeforeMonth += monthLength(year, m) }
    let epoch: Int64 = 719_162  // days from 0001-01-01 to 1970-01-01
    return daysBeforeYear + daysBeforeMonth + day - 1 - epoch
}

/// A JSON number's unix seconds: seconds, or milliseconds when above 100,000,000,000, rounded
/// down, computed exactly on the decimal digits (no binary floating point).
private func referenceNumber(_ raw: [UInt8]) -> Int64? {
    var k = 0
    let negative = raw.first == UInt8(ascii: "-")
    if negative { k = 1 }
    var digits: [UInt8] = []
    var pointAt: Int?  // digits before the decimal point
    while k < raw.count, raw[k] != UInt8(ascii: "e"), raw[k] != UInt8(ascii: "E") {
        if raw[k] == UInt8(ascii: ".") { pointAt = digits.count } else { digits.append(raw[k] - 0x30) }
        k += 1
    }
    var exponent = 0
    if k < raw.count {
        k += 1
        var exponentNegative = false
        if raw[k] == UInt8(ascii: "+") || raw[k] == UInt8(ascii: "-") {
            exponentNegative = raw[k] == UInt8(ascii: "-")
            k += 1
        }
        for d in raw[k...] { exponent = min(exponent * 10 + Int(d - 0x30), 1_000_000) }  // capped: far out of range anyway
        if exponentNegative { exponent = -exponent }
    }
    // value = 0.digits × 10^(integerDigits) with leading zeros dropped.
    var integerDigits = (pointAt ?? digits.count) + exponent
    while let first = digits.first, first == 0 {
        digits.removeFirst()
        integerDigits -= 1
    }
    if digits.isEmpty { return 0 }  // zero, however written

    /// floor(|value| / 10^shift) as an integer and whether anything was cut off; nil when huge.
    func magnitude(shift: Int) -> (whole: Int64, fraction: Bool)? {
        let whole = integerDigits - shift
        if whole > 18 { return nil }
        var value: Int64 = 0
        var fraction = false
        for (position, d) in digits.enumerated() {
            if position < whole { value = value * 10 + Int64(d) } else if d != 0 { fraction = true }
        }
        if whole > digits.count { for _ in digits.count..<whole { value *= 10 } }
        return (value, fraction)
    }
    guard let seconds = magnitude(shift: 0) else { return nil }
    // Above 100,000,000,000 (only a positive number can be): milliseconds.
    let isMilliseconds = !negative && (seconds.whole > 100_000_000_000 || (seconds.whole == 100_000_000_000 && seconds.fraction))
    guard let chosen = isMilliseconds ? magnitude(shift: 3) : seconds else { return nil }
    let result = negative ? -(chosen.whole + (chosen.fraction ? 1 : 0)) : chosen.whole
    return (earliest...latest).contains(result) ? result : nil
}
