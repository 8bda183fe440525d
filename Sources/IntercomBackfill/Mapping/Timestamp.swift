/// Dates as the contract (§2) accepts them, parsed by hand on bytes: Foundation's date
/// formatters cost microseconds and allocations per call, and this runs for most records.
///
/// Accepted: `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds of any length, then `Z`,
/// `+hh:mm`, `-hh:mm` or nothing (UTC); a bare `YYYY-MM-DD` (midnight UTC); JSON numbers as unix
/// seconds, or milliseconds above 100,000,000,000. The result is whole unix seconds, rounded down.
public enum Timestamp {
    /// Numbers above this are milliseconds.
    public static let millisecondsThreshold: Int64 = 100_000_000_000
    /// 0001-01-01T00:00:00Z ... 9999-12-31T23:59:59Z: anything outside is not a usable date.
    static let validRange: ClosedRange<Int64> = -62_135_596_800...253_402_300_799

    /// The unix seconds of the value at `i` (a string or a number), nil when it is not a valid date.
    public static func unixSeconds(_ view: JSONView, _ i: Int) -> Int64? {
        switch view.kind(i) {
        case .string:
            // The decoded text: a date may be written with escapes (`\u0054` for `T`), and is the
            // same date (rare, so decoding only then costs nothing on the common path).
            return view.withStringBytes(i) { parseISO8601(UnsafeRawBufferPointer(start: $0, count: $1)) }
        case .number:
            return fromNumber(view.raw(i), isInteger: view.nodes[i].flag)
        default:
            return nil
        }
    }

    /// Unix seconds from a JSON number's source text.
    public static func fromNumber(_ raw: UnsafeRawBufferPointer, isInteger: Bool) -> Int64? {
        if isInteger, let n = parseInt64(raw) {
            let seconds = n > millisecondsThreshold ? floorDiv(n, 1000) : n
            return validRange.contains(seconds) ? seconds : nil
        }
        // A fraction or an exponent: rounded down exactly, on the decimal digits. Through a Double,
        // `-17.000000000000000000001` would become -17 rather than -18, and the division by 1000
        // of milliseconds could round across a whole second.
        guard let decimal = DecimalText(raw), let seconds = decimal.floor(droppingDigits: 0) else { return nil }
        let isMilliseconds =
            !decimal.negative && (seconds > millisecondsThreshold || (seconds == millisecondsThreshold && decimal.hasFraction))
        guard let result = isMilliseconds ? decimal.floor(droppingDigits: 3) : seconds else { return nil }
        return validRange.contains(result) ? result : nil
    }

    /// A JSON number's text read as sign, significant digits and the place of the decimal point,
    /// in place (no allocation: the sample's fractional timestamps come through here).
    struct DecimalText {
        let raw: UnsafeRawBufferPointer
        var negative = false
        /// The mantissa's bytes (digits and an optional `.`), and where its first non-zero digit is.
        var mantissaEnd = 0
        var firstSignificant = 0
        /// Whether the mantissa has a non-zero digit at all.
        var isZero = true
        /// How many significant digits are before the decimal point (may be negative or exceed their count).
        var integerDigits = 0

        /// Nil when `raw` is not JSON number text.
        init?(_ raw: UnsafeRawBufferPointer) {
            self.raw = raw
            var k = 0
            if k < raw.count, raw[k] == UInt8(ascii: "-") {
                negative = true
                k += 1
            }
            var digitsBeforePoint = 0
            var leadingZeros = 0
            var seenPoint = false
            while k < raw.count, raw[k] | 0x20 != UInt8(ascii: "e") {
                let c = raw[k]
                if c == UInt8(ascii: ".") {
                    seenPoint = true
                } else {
                    guard isDigit(c) else { return nil }
                    if isZero {
                        if c == UInt8(ascii: "0") {
                            leadingZeros += 1
                        } else {
                            isZero = false
                            firstSignificant = k
                        }
                    }
                    if !seenPoint { digitsBeforePoint += 1 }
                }
                k += 1
            }
            mantissaEnd = k
            var exponent = 0
            if k < raw.count {
                k += 1
                var exponentNegative = false
                if k < raw.count, raw[k] == UInt8(ascii: "+") || raw[k] == UInt8(ascii: "-") {
                    exponentNegative = raw[k] == UInt8(ascii: "-")
                    k += 1
                }
                guard k < raw.count else { return nil }
                while k < raw.count {
                    guard isDigit(raw[k]) else { return nil }
                    // Capped: any exponent this large is far outside the usable dates either way.
                    exponent = Swift.min(exponent * 10 + Int(raw[k] &- UInt8(ascii: "0")), 1_000_000)
                    k += 1
                }
                if exponentNegative { exponent = -exponent }
            }
            integerDigits = digitsBeforePoint - leadingZeros + exponent
        }

        /// Calls `body(position, digit)` for each significant digit, position 0 the first.
        @inline(__always)
        private func forEachDigit(_ body: (Int, Int64) -> Void) {
            guard !isZero else { return }
            var position = 0
            for k in firstSignificant..<mantissaEnd where raw[k] != UInt8(ascii: ".") {
                body(position, Int64(raw[k] &- UInt8(ascii: "0")))
                position += 1
            }
        }

        /// Whether any non-zero digit lies after the decimal point.
        var hasFraction: Bool {
            var fraction = false
            forEachDigit { position, digit in if position >= integerDigits, digit != 0 { fraction = true } }
            return fraction
        }

        /// The value divided by 10^`droppingDigits`, rounded down (towards minus infinity); nil
        /// when it has more than 18 digits (far outside any date).
        func floor(droppingDigits shift: Int) -> Int64? {
            if isZero { return 0 }
            let whole = integerDigits - shift
            if whole > 18 { return nil }
            var value: Int64 = 0
            var count = 0
            var cut = false
            forEachDigit { position, digit in
                if position < whole {
                    value = value * 10 + digit
                    count += 1
                } else if digit != 0 {
                    cut = true
                }
            }
            // Digits the exponent adds after the last one written: zeros.
            for _ in count..<Swift.max(whole, count) { value *= 10 }
            return negative ? -value - (cut ? 1 : 0) : value
        }
    }

    /// Unix seconds from ISO-8601 text in one of the accepted forms.
    public static func parseISO8601(_ s: UnsafeRawBufferPointer) -> Int64? {
        let n = s.count
        guard n >= 10 else { return nil }
        guard let year = digits(s, 0, 4), s[4] == UInt8(ascii: "-"),
            let month = digits(s, 5, 2), s[7] == UInt8(ascii: "-"),
            let day = digits(s, 8, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month), year >= 1 else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        if n == 10 { return days * 86_400 }

        guard n >= 19, s[10] == UInt8(ascii: "T"),
            let hour = digits(s, 11, 2), s[13] == UInt8(ascii: ":"),
            let minute = digits(s, 14, 2), s[16] == UInt8(ascii: ":"),
            let second = digits(s, 17, 2),
            hour < 24, minute < 60, second < 60
        else { return nil }
        var k = 19
        if k < n, s[k] == UInt8(ascii: ".") {
            k += 1
            let fractionStart = k
            while k < n, isDigit(s[k]) { k += 1 }
            guard k > fractionStart else { return nil }
            // Rounded down: the fraction never changes the whole second.
        }
        var offsetSeconds: Int64 = 0
        if k < n {
            let c = s[k]
            if c == UInt8(ascii: "Z") {
                k += 1
            } else if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                guard n - k == 6, let oh = digits(s, k + 1, 2), s[k + 3] == UInt8(ascii: ":"),
                    let om = digits(s, k + 4, 2), oh < 24, om < 60
                else { return nil }
                offsetSeconds = (oh * 3600 + om * 60) * (c == UInt8(ascii: "+") ? 1 : -1)
                k += 6
            } else {
                return nil
            }
        }
        guard k == n else { return nil }
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        return validRange.contains(seconds) ? seconds : nil
    }

    @inline(__always)
    static func digits(_ s: UnsafeRawBufferPointer, _ at: Int, _ count: Int) -> Int64? {
        var value: Int64 = 0
        for k in at..<(at + count) {
            let d = s[k] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            value = value * 10 + Int64(d)
        }
        return value
    }

    static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
