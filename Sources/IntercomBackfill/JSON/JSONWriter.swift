/// Writes compact JSON into a byte buffer, in the one canonical form the contract asks for
/// (§6): no spaces, non-ASCII as UTF-8, `/` not escaped, numbers as their source text, and only
/// the escapes JSON requires (C0 controls as lowercase `\u00xx`).
public enum JSONWriter {
    /// Appends `utf8` as the inside of a JSON string (no quotes), escaping only what JSON requires.
    public static func appendEscaped<Out: JSONOutput>(_ utf8: UnsafeRawBufferPointer, to out: inout Out) {
        var runStart = 0
        var k = 0
        let n = utf8.count
        guard let base = utf8.baseAddress else { return }
        while k < n {
            // Runs that need no escape are skipped 8 bytes at a time.
            if k &+ 8 <= n {
                let special = escapeBytes(base.loadUnaligned(fromByteOffset: k, as: UInt64.self))
                if special == 0 {
                    k &+= 8
                    continue
                }
                k &+= special.trailingZeroBitCount &>> 3
            }
            let c = utf8[k]
            if c >= 0x20 && c != 0x22 && c != 0x5C {
                k &+= 1
                continue
            }
            if k > runStart { out.appendBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<k])) }
            appendEscape(c, to: &out)
            k &+= 1
            runStart = k
        }
        if n > runStart { out.appendBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<n])) }
    }

    @inline(__always)
    static func appendEscape<Out: JSONOutput>(_ c: UInt8, to out: inout Out) {
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
    public static func appendQuoted<Out: JSONOutput>(_ utf8: UnsafeRawBufferPointer, maxScalars: Int = .max, to out: inout Out)
        -> Bool
    {
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
    static func appendString(
        _ view: JSONView, _ i: Int, maxScalars: Int = .max, scratch: inout OutputBuffer, to out: inout OutputBuffer
    ) -> Bool {
        let node = view.nodes[i]
        if !node.flag {
            // No escapes in the source: it has no quote, backslash or control byte, so it is
            // already canonical and can be copied as is (the common case).
            let length = Int(node.end &- node.start)
            if maxScalars >= length {
                // The quotes around the value in the source are part of the copy.
                out.appendBytes(view.bytes + Int(node.start) - 1, length + 2)
                return false
            }
            return appendQuoted(view.raw(i), maxScalars: maxScalars, to: &out)
        }
        scratch.removeAll()
        view.appendDecodedString(i, to: &scratch)
        return appendQuoted(scratch.bytes, maxScalars: maxScalars, to: &out)
    }

    /// Appends the value at `i` in canonical compact form (objects keep source key order).
    static func appendCanonical(_ view: JSONView, _ i: Int, scratch: inout OutputBuffer, to out: inout OutputBuffer) {
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
            out.appendBytes(view.raw(i))
        }
    }

    /// Appends a decimal integer without going through `String`.
    public static func appendInt<Out: JSONOutput>(_ value: Int64, to out: inout Out) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = value.magnitude
        // Digits are made from the right into a small stack buffer, then appended in one go.
        withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { digits in
            var start = 20
            while magnitude > 0 {
                start -= 1
                digits[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            }
            if value < 0 {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            out.appendBytes(UnsafeRawBufferPointer(rebasing: digits[start..<20]))
        }
    }

    @inline(__always)
    public static func append<Out: JSONOutput>(_ literal: StaticString, to out: inout Out) {
        out.appendBytes(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}

/// Like `stringSpecialBytes`, for the bytes a JSON string must escape: `"`, `\\` and controls
/// (non-ASCII bytes pass as they are). Only the lowest set bit is meaningful.
@inline(__always)
func escapeBytes(_ loaded: UInt64) -> UInt64 {
    let w = UInt64(littleEndian: loaded)
    let ones: UInt64 = 0x0101_0101_0101_0101
    let quote = w ^ (ones &* 0x22)
    let backslash = w ^ (ones &* 0x5C)
    let zeroInQuote = (quote &- ones) & ~quote
    let zeroInBackslash = (backslash &- ones) & ~backslash
    let control = (w &- ones &* 0x20) & ~w
    return (zeroInQuote | zeroInBackslash | control) & (ones &* 0x80)
}

/// The byte index where scalar number `n` (0-based) starts, or nil when there are at most `n` scalars.
func byteIndexOfScalar(_ n: Int, in utf8: UnsafeRawBufferPointer) -> Int? {
    var scalars = 0
    var k = 0
    let count = utf8.count
    // ASCII runs: 8 bytes are 8 scalars (long bios and array texts are mostly ASCII).
    if let base = utf8.baseAddress {
        while k &+ 8 <= count, scalars &+ 8 <= n,
            base.loadUnaligned(fromByteOffset: k, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
        {
            k &+= 8
            scalars &+= 8
        }
    }
    while k < count {
        if utf8[k] & 0xC0 != 0x80 {
            if scalars == n { return k }
            scalars += 1
        }
        k += 1
    }
    return nil
}
