/// Read access to a parsed line: the line's bytes plus the parser's tape.
///
/// Values are addressed by tape index (`Int`); index 0 is the root. Nothing is copied or decoded
/// until asked for, and lookups compare raw key bytes, so the common case allocates nothing.
/// Valid only while the line's bytes and the parser's tape are alive (one callback).
public struct JSONView {
    public let bytes: UnsafePointer<UInt8>
    public let count: Int
    public let nodes: UnsafeBufferPointer<JSONNode>

    public init(bytes: UnsafeRawBufferPointer, nodes: UnsafeBufferPointer<JSONNode>) {
        self.bytes = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        self.count = bytes.count
        self.nodes = nodes
    }

    public static let root = 0

    @inline(__always) public func kind(_ i: Int) -> JSONKind { nodes[i].kind }
    @inline(__always) public func isObject(_ i: Int) -> Bool { nodes[i].kind == .object }
    @inline(__always) public func isString(_ i: Int) -> Bool { nodes[i].kind == .string }
    @inline(__always) public func isNull(_ i: Int) -> Bool { nodes[i].kind == .null }
    @inline(__always) public func memberCount(_ i: Int) -> Int { Int(nodes[i].count) }

    /// The source bytes of a string (between the quotes, escapes undecoded), a number, or a whole subtree.
    @inline(__always)
    public func raw(_ i: Int) -> UnsafeRawBufferPointer {
        let n = nodes[i]
        return UnsafeRawBufferPointer(start: bytes + Int(n.start), count: Int(n.end - n.start))
    }

    /// The value of `key` in the object at `object` (the last one when a key repeats, as most parsers do).
    @inline(__always)
    public func member(_ object: Int, _ key: StaticString) -> Int? {
        guard nodes[object].kind == .object else { return nil }
        var found: Int?
        var child = object + 1
        let end = Int(nodes[object].subtreeEnd)
        while child < end {
            if stringEquals(child, key) { found = child + 1 }
            child = Int(nodes[child + 1].subtreeEnd)
        }
        return found
    }

    /// Calls `body(key, value)` for each member of an object, in source order.
    @inline(__always)
    public func forEachMember(_ object: Int, _ body: (_ key: Int, _ value: Int) throws -> Void) rethrows {
        var child = object + 1
        let end = Int(nodes[object].subtreeEnd)
        while child < end {
            try body(child, child + 1)
            child = Int(nodes[child + 1].subtreeEnd)
        }
    }

    /// Calls `body(element)` for each element of an array, in order.
    @inline(__always)
    public func forEachElement(_ array: Int, _ body: (_ element: Int) throws -> Void) rethrows {
        var child = array + 1
        let end = Int(nodes[array].subtreeEnd)
        while child < end {
            try body(child)
            child = Int(nodes[child].subtreeEnd)
        }
    }

    /// Whether the string at `i` equals `literal` (an ASCII literal), escapes taken into account.
    @inline(__always)
    public func stringEquals(_ i: Int, _ literal: StaticString) -> Bool {
        let n = nodes[i]
        guard n.kind == .string else { return false }
        if n.flag { return decodedEquals(i, literal, caseInsensitive: false) }
        let length = Int(n.end - n.start)
        guard length == literal.utf8CodeUnitCount else { return false }
        return memcmpBytes(bytes + Int(n.start), literal.utf8Start, length)
    }

    /// Calls `body` with the UTF-8 bytes of the string at `i`: its source bytes when it has no
    /// escapes (nearly always), else a decoded copy.
    @inline(__always)
    public func withStringBytes<R>(_ i: Int, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
        let n = nodes[i]
        if !n.flag { return body(bytes + Int(n.start), Int(n.end - n.start)) }
        var decoded: [UInt8] = []
        appendDecodedString(i, to: &decoded)
        return decoded.withUnsafeBufferPointer { body($0.baseAddress ?? bytes, $0.count) }
    }

    /// Whether the string at `i` equals the ASCII `literal` ignoring ASCII case (the record `type`).
    public func stringEqualsIgnoringCase(_ i: Int, _ literal: StaticString) -> Bool {
        let n = nodes[i]
        guard n.kind == .string else { return false }
        if n.flag { return decodedEquals(i, literal, caseInsensitive: true) }
        let length = Int(n.end - n.start)
        guard length == literal.utf8CodeUnitCount else { return false }
        let s = bytes + Int(n.start)
        let l = literal.utf8Start
        for k in 0..<length where asciiLower(s[k]) != asciiLower(l[k]) { return false }
        return true
    }

    /// Whether the string at `i` ends with the ASCII `suffix` (after decoding escapes).
    public func stringHasSuffix(_ i: Int, _ suffix: StaticString) -> Bool {
        let n = nodes[i]
        guard n.kind == .string else { return false }
        let k = suffix.utf8CodeUnitCount
        if n.flag {
            var decoded: [UInt8] = []
            appendDecodedString(i, to: &decoded)
            guard decoded.count >= k else { return false }
            return decoded.withUnsafeBufferPointer { memcmpBytes($0.baseAddress! + (decoded.count - k), suffix.utf8Start, k) }
        }
        let length = Int(n.end - n.start)
        guard length >= k else { return false }
        return memcmpBytes(bytes + Int(n.end) - k, suffix.utf8Start, k)
    }

    /// Whether the value at `i` is a string with no characters.
    @inline(__always)
    public func isEmptyString(_ i: Int) -> Bool { nodes[i].kind == .string && nodes[i].start == nodes[i].end }

    private func decodedEquals(_ i: Int, _ literal: StaticString, caseInsensitive: Bool) -> Bool {
        var decoded: [UInt8] = []
        appendDecodedString(i, to: &decoded)
        guard decoded.count == literal.utf8CodeUnitCount else { return false }
        let l = literal.utf8Start
        for k in 0..<decoded.count {
            let a = caseInsensitive ? asciiLower(decoded[k]) : decoded[k]
            let b = caseInsensitive ? asciiLower(l[k]) : l[k]
            if a != b { return false }
        }
        return true
    }

    /// Appends the UTF-8 of the string at `i`, escapes decoded. A lone UTF-16 surrogate
    /// (which browsers' JSON.stringify can emit) becomes U+FFFD rather than rejecting the record.
    public func appendDecodedString<Out: JSONOutput>(_ i: Int, to out: inout Out) {
        let n = nodes[i]
        var p = Int(n.start)
        let end = Int(n.end)
        guard n.flag else {
            out.appendBytes(UnsafeRawBufferPointer(start: bytes + p, count: end - p))
            return
        }
        while p < end {
            let c = bytes[p]
            if c != 0x5C {
                var q = p + 1
                while q < end, bytes[q] != 0x5C { q += 1 }
                out.appendBytes(UnsafeRawBufferPointer(start: bytes + p, count: q - p))
                p = q
                continue
            }
            let e = bytes[p + 1]
            p += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(p)
                p += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    if p + 6 <= end, bytes[p] == 0x5C, bytes[p + 1] == UInt8(ascii: "u") {
                        let low = hex4(p + 2)
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            p += 6
                        } else {
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                appendUTF8(scalar, to: &out)
            default: out.append(e)  // \" \\ \/
            }
        }
    }

    @inline(__always)
    private func hex4(_ p: Int) -> UInt32 {
        (hexValue(bytes[p])! << 12) | (hexValue(bytes[p + 1])! << 8) | (hexValue(bytes[p + 2])! << 4) | hexValue(bytes[p + 3])!
    }

    /// The string at `i`, decoded, as a Swift `String` (for cold paths: messages, tests).
    public func string(_ i: Int) -> String? {
        guard nodes[i].kind == .string else { return nil }
        var out: [UInt8] = []
        appendDecodedString(i, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The number at `i` as an exact 64-bit integer, when its source is an integer that fits.
    public func int64(_ i: Int) -> Int64? {
        let n = nodes[i]
        guard n.kind == .number, n.flag else { return nil }
        return parseInt64(raw(i))
    }

    /// The number at `i` as a `Double` (for computed values: timestamps, cents).
    public func double(_ i: Int) -> Double? {
        guard nodes[i].kind == .number else { return nil }
        return parseDouble(raw(i))
    }
}

@inline(__always)
func asciiLower(_ c: UInt8) -> UInt8 { (c &- UInt8(ascii: "A")) < 26 ? c | 0x20 : c }

/// Whether the `n` bytes at `a` and `b` are equal; 8 bytes at a time (keys are mostly 4 to 20 bytes).
@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    let x = UnsafeRawPointer(a)
    let y = UnsafeRawPointer(b)
    if n >= 8 {
        var k = 0
        while k &+ 8 <= n {
            if x.loadUnaligned(fromByteOffset: k, as: UInt64.self) != y.loadUnaligned(fromByteOffset: k, as: UInt64.self) {
                return false
            }
            k &+= 8
        }
        // The last (overlapping) 8 bytes cover any tail.
        return k == n
            || x.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                == y.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
    }
    if n >= 4 {
        return x.loadUnaligned(as: UInt32.self) == y.loadUnaligned(as: UInt32.self)
            && x.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
                == y.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
    }
    var k = 0
    while k < n {
        if a[k] != b[k] { return false }
        k &+= 1
    }
    return true
}

func appendUTF8<Out: JSONOutput>(_ scalar: UInt32, to out: inout Out) {
    switch scalar {
    case 0..<0x80:
        out.append(UInt8(scalar))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (scalar >> 6)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (scalar >> 12)))
        out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (scalar >> 18)))
        out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    }
}

/// Parses an optionally signed decimal integer with no other characters; nil on overflow.
func parseInt64(_ raw: UnsafeRawBufferPointer) -> Int64? {
    guard !raw.isEmpty else { return nil }
    var k = 0
    let negative = raw[0] == UInt8(ascii: "-")
    if negative { k = 1 }
    guard k < raw.count else { return nil }
    var value: Int64 = 0
    while k < raw.count {
        let d = raw[k] &- UInt8(ascii: "0")
        guard d < 10 else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
        if o1 || o2 { return nil }
        value = s
        k += 1
    }
    return value
}

/// Parses the source text of a JSON number. `Double(String)` would allocate; strtod needs a
/// terminator, so copy into a small stack buffer (numbers are short; longer ones go the slow way).
func parseDouble(_ raw: UnsafeRawBufferPointer) -> Double? {
    if raw.count < 64 {
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buf -> Double? in
            for k in 0..<raw.count { buf[k] = CChar(bitPattern: raw[k]) }
            buf[raw.count] = 0
            var endPtr: UnsafeMutablePointer<CChar>?
            let value = strtod(buf.baseAddress!, &endPtr)
            guard endPtr == buf.baseAddress! + raw.count else { return nil }
            return value
        }
    }
    return Double(String(decoding: raw, as: UTF8.self))
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif
