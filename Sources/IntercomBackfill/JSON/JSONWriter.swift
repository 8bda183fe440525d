/// Writes compact JSON into a byte buffer, in the one canonical form the contract asks for
/// (§6): no spaces, non-ASCII as UTF-8, `/` not escaped, numbers as their source text, and only
/// the escapes JSON requires (C0 controls as lowercase `\u00xx`).
public enum JSONWriter {
    /// Appends `utf8` as the inside of a JSON string (no quotes), escaping only what JSON requires.
    public static func appendEscaped(_ utf8: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var runStart = 0
        var k = 0
        let n = utf8.count
        while k < n {
            let c = utf8[k]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                k &+= 1
                continue
            }
            if k > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart..<k])) }
            appendEscape(c, to: &out)
            k &+= 1
            runStart = k
        }
        if n > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart..<n])) }
    }

    @inline(__always)
    static func appendEscape(_ c: UInt8, to out: inout [UInt8]) {
        out.append(0x5C)
        switch c {
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x08: out.append(UInt8(ascii: "b"))
        case 0x0C: out.append(UInt8(ascii: "f"))
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default:
            let hex: StaticString = "0123456789abcdef"
            out.append(UInt8(ascii: "u"))
            out.append(UInt8(ascii: "0"))
            out.append(UInt8(ascii: "0"))
            out.append(hex.utf8Start[Int(c >> 4)])
            out.append(hex.utf8Start[Int(c & 0xF)])
        }
    }

    /// Appends `utf8` as a quoted JSON string, cut to `maxScalars` Unicode scalars when longer.
    /// Returns whether it was cut.
    @discardableResult
    public static func appendQuoted(_ utf8: UnsafeRawBufferPointer, maxScalars: Int = .max, to out: inout [UInt8]) -> Bool {
        out.append(0x22)
        var cut = false
        var body = utf8
        if maxScalars < utf8.count, let end = byteIndexOfScalar(maxScalars, in: utf8) {
            body = UnsafeRawBufferPointer(rebasing: utf8[0..<end])
            cut = true
        }
        appendEscaped(body, to: &out)
        out.append(0x22)
        return cut
    }

    /// Appends the string at `i` as a quoted, canonical JSON string; `scratch` holds decoded text
    /// when the source has escapes. Returns whether it was cut to `maxScalars`.
    @discardableResult
    public static func appendString(_ view: JSONView, _ i: Int, maxScalars: Int = .max, scratch: inout [UInt8], to out: inout [UInt8]) -> Bool {
        if !view.nodes[i].flag {
            // No escapes in the source: it has no quote, backslash or control byte, so it is
            // already canonical and can be copied as is (the common case).
            let raw = view.raw(i)
            if maxScalars >= raw.count {
                out.append(0x22)
                out.append(contentsOf: raw)
                out.append(0x22)
                return false
            }
            return appendQuoted(raw, maxScalars: maxScalars, to: &out)
        }
        scratch.removeAll(keepingCapacity: true)
        view.appendDecodedString(i, to: &scratch)
        return scratch.withUnsafeBytes { appendQuoted($0, maxScalars: maxScalars, to: &out) }
    }

    /// Appends the value at `i` in canonical compact form (objects keep source key order).
    public static func appendCanonical(_ view: JSONView, _ i: Int, scratch: inout [UInt8], to out: inout [UInt8]) {
        switch view.kind(i) {
        case .object:
            out.append(UInt8(ascii: "{"))
            var first = true
            view.forEachMember(i) { key, value in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                appendString(view, key, scratch: &scratch, to: &out)
                out.append(UInt8(ascii: ":"))
                appendCanonical(view, value, scratch: &scratch, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array:
            out.append(UInt8(ascii: "["))
            var first = true
            view.forEachElement(i) { element in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                appendCanonical(view, element, scratch: &scratch, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string:
            appendString(view, i, scratch: &scratch, to: &out)
        case .number, .true, .false, .null:
            out.append(contentsOf: view.raw(i))
        }
    }

    /// Appends a decimal integer without going through `String`.
    public static func appendInt(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = 0
            while magnitude > 0 {
                digits[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                n += 1
            }
            if value < 0 { out.append(UInt8(ascii: "-")) }
            while n > 0 {
                n -= 1
                out.append(digits[n])
            }
        }
    }

    @inline(__always)
    public static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}

/// The byte index where scalar number `n` (0-based) starts, or nil when there are at most `n` scalars.
func byteIndexOfScalar(_ n: Int, in utf8: UnsafeRawBufferPointer) -> Int? {
    var scalars = 0
    for k in 0..<utf8.count where utf8[k] & 0xC0 != 0x80 {
        if scalars == n { return k }
        scalars += 1
    }
    return nil
}
