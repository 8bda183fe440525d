/// What a JSON node is.
public enum JSONKind: UInt8, Sendable {
    case object, array, string, number, `true`, `false`, null
}

/// One value of a parsed line, stored flat (a "tape") so a record costs no allocation per value.
///
/// Containers are followed by their children; `subtreeEnd` is the index just past the whole
/// subtree, which makes skipping a value O(1). An object's children alternate key, value.
public struct JSONNode: Sendable {
    public var kind: JSONKind
    /// Strings: the source holds escapes. Numbers: the source has no fraction or exponent.
    public var flag: Bool
    /// Offset of the value's first byte; for strings, the byte after the opening quote.
    public var start: Int32
    /// Offset just past the value; for strings, the closing quote's offset.
    public var end: Int32
    /// Index of the node after this value's subtree.
    public var subtreeEnd: Int32
    /// Containers: how many children (an object counts its members, not keys and values).
    public var count: Int32
}

/// Why a line is not valid JSON, with the byte offset where the parser stopped.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        case unexpectedEnd = "unexpected end of line"
        case unexpectedCharacter = "unexpected character"
        case invalidUTF8 = "invalid UTF-8"
        case controlCharacterInString = "unescaped control character in string"
        case invalidEscape = "invalid escape sequence"
        case invalidNumber = "invalid number"
        case tooDeep = "nesting deeper than the limit"
        case trailingCharacters = "characters after the JSON value"
    }
    public var reason: Reason
    public var offset: Int
    public var description: String { "\(reason.rawValue) at byte \(offset + 1)" }
}

/// A strict RFC 8259 parser for one line, writing into a reusable tape.
///
/// It validates everything (grammar, UTF-8, escapes, numbers, depth) but decodes nothing:
/// strings and numbers stay as offsets into the line, decoded on demand by `JSONView`.
/// The tape is written through a pointer into storage that only grows (doubling, and parsing
/// again, when a line has more values than it holds), so steady state allocates nothing and a
/// value costs one store, not an `Array.append`.
public struct JSONParser: Sendable {
    public static let defaultMaxDepth = 256
    public let maxDepth: Int
    /// The tape's storage: every element is initialized; the first `nodeCount` are the last parse's.
    private var tape: [JSONNode]
    /// How many nodes the last successful parse wrote.
    public private(set) var nodeCount = 0

    /// The tape of the last successful parse, as an array (a copy: for tests and cold paths;
    /// the hot path reads it in place with ``withNodes(_:)``).
    public var nodes: [JSONNode] { Array(tape[0..<nodeCount]) }

    public init(maxDepth: Int = JSONParser.defaultMaxDepth) {
        self.maxDepth = maxDepth
        tape = Array(repeating: JSONNode.placeholder, count: 512)
    }

    /// Lends the tape of the last successful parse, without copying.
    @inline(__always)
    public func withNodes<Result>(_ body: (UnsafeBufferPointer<JSONNode>) throws -> Result) rethrows -> Result {
        try tape.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<nodeCount])) }
    }

    /// Parses `bytes` as exactly one JSON value surrounded by optional white space.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) {
        nodeCount = 0
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count > 0 else {
            throw JSONSyntaxError(reason: .unexpectedEnd, offset: 0)
        }
        guard bytes.count < Int(Int32.max) else {
            throw JSONSyntaxError(reason: .unexpectedCharacter, offset: 0)
        }
        let maxDepth = self.maxDepth
        while true {
            var tapeFull = false
            let outcome: Result<Int, JSONSyntaxError> = tape.withUnsafeMutableBufferPointer { storage in
                var scanner = Scanner(
                    p: base, count: bytes.count, maxDepth: maxDepth, tape: storage.baseAddress!, capacity: storage.count)
                do throws(JSONSyntaxError) {
                    try scanner.skipWhitespace()
                    try scanner.parseValue(depth: 0)
                    try scanner.skipWhitespace()
                    if scanner.pos != scanner.count {
                        throw JSONSyntaxError(reason: .trailingCharacters, offset: scanner.pos)
                    }
                    return .success(scanner.nodeCount)
                } catch {
                    tapeFull = scanner.tapeFull
                    return .failure(error)
                }
            }
            switch outcome {
            case .success(let count):
                nodeCount = count
                return
            case .failure(let error):
                guard tapeFull else { throw error }
                // More values than the tape holds: grow it and parse the line again.
                tape = Array(repeating: JSONNode.placeholder, count: tape.count * 2)
            }
        }
    }
}

extension JSONNode {
    static let placeholder = JSONNode(kind: .null, flag: false, start: 0, end: 0, subtreeEnd: 0, count: 0)
}

private struct Scanner {
    let p: UnsafePointer<UInt8>
    let count: Int
    let maxDepth: Int
    let tape: UnsafeMutablePointer<JSONNode>
    let capacity: Int
    var pos = 0
    var nodeCount = 0
    /// The parse stopped because the tape had no room left (not a syntax error).
    var tapeFull = false

    init(p: UnsafePointer<UInt8>, count: Int, maxDepth: Int, tape: UnsafeMutablePointer<JSONNode>, capacity: Int) {
        self.p = p
        self.count = count
        self.maxDepth = maxDepth
        self.tape = tape
        self.capacity = capacity
    }

    @inline(__always)
    func fail(_ reason: JSONSyntaxError.Reason, _ at: Int) -> JSONSyntaxError {
        JSONSyntaxError(reason: reason, offset: at)
    }

    /// Appends a node to the tape and returns its index.
    @inline(__always)
    @discardableResult
    mutating func push(_ kind: JSONKind, flag: Bool, start: Int, end: Int, count: Int32 = 0) throws(JSONSyntaxError) -> Int {
        let index = nodeCount
        guard index < capacity else {
            tapeFull = true
            throw fail(.unexpectedEnd, pos)
        }
        tape[index] = JSONNode(
            kind: kind, flag: flag, start: Int32(truncatingIfNeeded: start), end: Int32(truncatingIfNeeded: end),
            subtreeEnd: Int32(truncatingIfNeeded: index + 1), count: count)
        nodeCount = index + 1
        return index
    }

    @inline(__always)
    mutating func skipWhitespace() throws(JSONSyntaxError) {
        while pos < count {
            let c = p[pos]
            // Compact JSON: one comparison settles the common case.
            if c > 0x20 { return }
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos &+= 1 } else { return }
        }
    }

    /// A member's or element's value; strings, the most common values, skip the dispatch.
    @inline(__always)
    mutating func parseMemberValue(depth: Int) throws(JSONSyntaxError) {
        if pos < count, p[pos] == UInt8(ascii: "\"") {
            try parseString()
        } else {
            try parseValue(depth: depth)
        }
    }

    mutating func parseValue(depth: Int) throws(JSONSyntaxError) {
        guard pos < count else { throw fail(.unexpectedEnd, pos) }
        switch p[pos] {
        case UInt8(ascii: "{"): try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): try parseString()
        case UInt8(ascii: "t"): try parseLiteral("true", .true)
        case UInt8(ascii: "f"): try parseLiteral("false", .false)
        case UInt8(ascii: "n"): try parseLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
        default: throw fail(.unexpectedCharacter, pos)
        }
    }

    mutating func parseLiteral(_ word: StaticString, _ kind: JSONKind) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        let start = pos
        guard count - pos >= n else { throw fail(.unexpectedEnd, pos) }
        let w = word.utf8Start
        for i in 0..<n where p[pos + i] != w[i] { throw fail(.unexpectedCharacter, pos + i) }
        pos += n
        try push(kind, flag: false, start: start, end: pos)
    }

    mutating func parseObject(depth: Int) throws(JSONSyntaxError) {
        guard depth <= maxDepth else { throw fail(.tooDeep, pos) }
        let index = try push(.object, flag: false, start: pos, end: 0)
        pos += 1
        try skipWhitespace()
        var members: Int32 = 0
        if pos < count, p[pos] == UInt8(ascii: "}") {
            pos += 1
        } else {
            while true {
                guard pos < count else { throw fail(.unexpectedEnd, pos) }
                guard p[pos] == UInt8(ascii: "\"") else { throw fail(.unexpectedCharacter, pos) }
                try parseString()
                try skipWhitespace()
                guard pos < count else { throw fail(.unexpectedEnd, pos) }
                guard p[pos] == UInt8(ascii: ":") else { throw fail(.unexpectedCharacter, pos) }
                pos &+= 1
                try skipWhitespace()
                try parseMemberValue(depth: depth)
                members += 1
                try skipWhitespace()
                guard pos < count else { throw fail(.unexpectedEnd, pos) }
                let c = p[pos]
                pos += 1
                if c == UInt8(ascii: ",") {
                    try skipWhitespace()
                    continue
                }
                if c == UInt8(ascii: "}") { break }
                throw fail(.unexpectedCharacter, pos - 1)
            }
        }
        tape[index].end = Int32(truncatingIfNeeded: pos)
        tape[index].subtreeEnd = Int32(truncatingIfNeeded: nodeCount)
        tape[index].count = members
    }

    mutating func parseArray(depth: Int) throws(JSONSyntaxError) {
        guard depth <= maxDepth else { throw fail(.tooDeep, pos) }
        let index = try push(.array, flag: false, start: pos, end: 0)
        pos += 1
        try skipWhitespace()
        var elements: Int32 = 0
        if pos < count, p[pos] == UInt8(ascii: "]") {
            pos += 1
        } else {
            while true {
                try parseMemberValue(depth: depth)
                elements += 1
                try skipWhitespace()
                guard pos < count else { throw fail(.unexpectedEnd, pos) }
                let c = p[pos]
                pos += 1
                if c == UInt8(ascii: ",") {
                    try skipWhitespace()
                    continue
                }
                if c == UInt8(ascii: "]") { break }
                throw fail(.unexpectedCharacter, pos - 1)
            }
        }
        tape[index].end = Int32(truncatingIfNeeded: pos)
        tape[index].subtreeEnd = Int32(truncatingIfNeeded: nodeCount)
        tape[index].count = elements
    }

    @inline(__always)
    mutating func parseString() throws(JSONSyntaxError) {
        pos += 1  // opening quote
        let start = pos
        var escaped = false
        while true {
            // Plain ASCII runs are the overwhelming majority of bytes in clickstream data: skip
            // them 8 bytes at a time, then finish (or find the special byte) one at a time.
            var q = pos  // a local, so the loop keeps it in a register
            while q &+ 8 <= count {
                let special = stringSpecialBytes(UnsafeRawPointer(p + q).loadUnaligned(as: UInt64.self))
                if special != 0 {
                    q &+= special.trailingZeroBitCount &>> 3
                    break
                }
                q &+= 8
            }
            while q < count {
                let c = p[q]
                if c == 0x22 || c == 0x5C || c < 0x20 || c >= 0x80 { break }
                q &+= 1
            }
            pos = q
            guard pos < count else { throw fail(.unexpectedEnd, pos) }
            let c = p[pos]
            if c == 0x22 { break }
            if c == 0x5C {
                escaped = true
                try scanEscape()
            } else if c < 0x20 {
                throw fail(.controlCharacterInString, pos)
            } else {
                try scanUTF8Sequence()
            }
        }
        try push(.string, flag: escaped, start: start, end: pos)
        pos += 1  // closing quote
    }

    @inline(__always)
    func isContinuation(_ i: Int) -> Bool { i < count && p[i] & 0xC0 == 0x80 }

    mutating func scanUTF8Sequence() throws(JSONSyntaxError) {
        let b0 = p[pos]
        let at = pos
        switch b0 {
        case 0xC2...0xDF:
            guard isContinuation(pos + 1) else { throw fail(.invalidUTF8, at) }
            pos += 2
        case 0xE0...0xEF:
            guard pos + 2 < count, isContinuation(pos + 2) else { throw fail(.invalidUTF8, at) }
            let b1 = p[pos + 1]
            let ok: Bool
            switch b0 {
            case 0xE0: ok = (0xA0...0xBF).contains(b1)
            case 0xED: ok = (0x80...0x9F).contains(b1)  // no UTF-16 surrogates
            default: ok = b1 & 0xC0 == 0x80
            }
            guard ok else { throw fail(.invalidUTF8, at) }
            pos += 3
        case 0xF0...0xF4:
            guard pos + 3 < count, isContinuation(pos + 2), isContinuation(pos + 3) else { throw fail(.invalidUTF8, at) }
            let b1 = p[pos + 1]
            let ok: Bool
            switch b0 {
            case 0xF0: ok = (0x90...0xBF).contains(b1)
            case 0xF4: ok = (0x80...0x8F).contains(b1)  // nothing above U+10FFFF
            default: ok = b1 & 0xC0 == 0x80
            }
            guard ok else { throw fail(.invalidUTF8, at) }
            pos += 4
        default:
            throw fail(.invalidUTF8, at)
        }
    }

    mutating func scanEscape() throws(JSONSyntaxError) {
        let at = pos
        pos += 1
        guard pos < count else { throw fail(.unexpectedEnd, pos) }
        switch p[pos] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            pos += 1
        case UInt8(ascii: "u"):
            guard count - pos >= 5 else { throw fail(.unexpectedEnd, pos) }
            for i in 1...4 where hexValue(p[pos + i]) == nil { throw fail(.invalidEscape, at) }
            pos += 5
        default:
            throw fail(.invalidEscape, at)
        }
    }

    mutating func parseNumber() throws(JSONSyntaxError) {
        let start = pos
        var integer = true
        if p[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < count else { throw fail(.invalidNumber, start) }
        if p[pos] == UInt8(ascii: "0") {
            pos += 1
        } else if isDigit(p[pos]) {
            while pos < count, isDigit(p[pos]) { pos &+= 1 }
        } else {
            throw fail(.invalidNumber, start)
        }
        if pos < count, p[pos] == UInt8(ascii: ".") {
            integer = false
            pos += 1
            guard pos < count, isDigit(p[pos]) else { throw fail(.invalidNumber, start) }
            while pos < count, isDigit(p[pos]) { pos &+= 1 }
        }
        if pos < count, p[pos] | 0x20 == UInt8(ascii: "e") {
            integer = false
            pos += 1
            if pos < count, p[pos] == UInt8(ascii: "+") || p[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < count, isDigit(p[pos]) else { throw fail(.invalidNumber, start) }
            while pos < count, isDigit(p[pos]) { pos &+= 1 }
        }
        try push(.number, flag: integer, start: start, end: pos)
    }
}

/// The bytes of an 8-byte word (loaded little-endian first, so byte 0 is the lowest) that stop a
/// plain string run: `"`, `\\`, a control byte or a non-ASCII byte. Each such byte's high bit is
/// set in the result; bits above the first one may be false positives (borrows), so only the
/// lowest set bit is meaningful: its byte is the first special byte.
@inline(__always)
func stringSpecialBytes(_ loaded: UInt64) -> UInt64 {
    // The bytes that need escaping (`escapeBytes`), plus every non-ASCII byte (high bit set).
    escapeBytes(loaded) | (UInt64(littleEndian: loaded) & 0x8080_8080_8080_8080)
}

@inline(__always)
func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

@inline(__always)
func hexValue(_ c: UInt8) -> UInt32? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - UInt8(ascii: "A") + 10)
    default: return nil
    }
}
