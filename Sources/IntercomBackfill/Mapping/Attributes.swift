/// Builds a `custom_attributes` or `metadata` object under the rules of contract §6: nested objects
/// flattened with `_`, arrays as compact JSON text, names sanitised, a repeated name keeps the
/// later value in the place of the first, strings cut to 255 scalars where asked.
///
/// Names and values go into two reusable byte arenas, so building an object allocates nothing
/// once the arenas have grown to the size of a typical record.
struct AttributeCollector {
    struct Entry {
        var nameStart: Int32, nameEnd: Int32
        var valueStart: Int32, valueEnd: Int32
        var alive: Bool
        /// The name's length and first bytes, so most different names differ here without a compare.
        var nameTag: UInt64
    }

    /// User and company custom attribute strings are cut to this many Unicode scalars.
    static let maxStringScalars = 255

    var names = OutputBuffer(capacity: 1024)
    var values = OutputBuffer(capacity: 4096)
    var entries: [Entry] = []
    private var prefix = OutputBuffer(capacity: 256)
    private var text = OutputBuffer(capacity: 1024)
    var scratch = OutputBuffer(capacity: 256)
    /// Strings cut while collecting since the last `reset()`.
    private(set) var truncatedStrings = 0

    init() {
        entries.reserveCapacity(64)
    }

    mutating func reset() {
        names.removeAll()
        values.removeAll()
        entries.removeAll(keepingCapacity: true)
        prefix.removeAll()
        truncatedStrings = 0
    }

    /// See ``OutputBuffer/makeUnique()``.
    mutating func makeUnique() {
        names.makeUnique()
        values.makeUnique()
        prefix.makeUnique()
        text.makeUnique()
        scratch.makeUnique()
    }

    var isEmpty: Bool { entries.isEmpty }

    // MARK: Adding

    /// Starts an entry whose name is the current prefix joined with the key at `key`; the caller
    /// then appends the value's JSON to `values` and calls `endEntry`.
    mutating func beginEntry(view: JSONView, key: Int) -> Int32 {
        let start = Int32(names.count)
        if !prefix.isEmpty {
            names.append(prefix)
            names.append(UInt8(ascii: "_"))
        }
        Self.appendSanitizedKey(view: view, key: key, to: &names)
        return start
    }

    /// Starts an entry with a fixed ASCII name (for computed keys such as `price`).
    mutating func beginEntry(named literal: StaticString) -> Int32 {
        let start = Int32(names.count)
        JSONWriter.append(literal, to: &names)
        return start
    }

    mutating func endEntry(nameStart: Int32, valueStart: Int) {
        let nameEnd = Int32(names.count)
        entries.append(
            Entry(
                nameStart: nameStart, nameEnd: nameEnd, valueStart: Int32(valueStart), valueEnd: Int32(values.count),
                alive: true, nameTag: Self.tag(names.base + Int(nameStart), Int(nameEnd - nameStart))))
    }

    /// Length in the top byte, up to the first 7 bytes below it.
    @inline(__always)
    private static func tag(_ name: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        let lengthByte = UInt64(truncatingIfNeeded: length) << 56
        if length >= 8 {
            let first = UInt64(littleEndian: UnsafeRawPointer(name).loadUnaligned(as: UInt64.self))
            return lengthByte | (first & 0x00FF_FFFF_FFFF_FFFF)
        }
        var tag = lengthByte
        for k in 0..<length { tag |= UInt64(name[k]) << (8 * UInt64(k)) }
        return tag
    }

    /// Appends the value's JSON directly, with `body` writing into the values arena.
    mutating func add(view: JSONView, key: Int, _ body: (inout OutputBuffer, inout OutputBuffer) -> Void) {
        let nameStart = beginEntry(view: view, key: key)
        let valueStart = values.count
        body(&values, &scratch)
        endEntry(nameStart: nameStart, valueStart: valueStart)
    }

    /// Appends a value for an entry begun with `beginEntry`.
    mutating func add(rawValue body: (inout OutputBuffer, inout OutputBuffer) -> Void) {
        body(&values, &scratch)
    }

    /// Adds the member `key: value` under the generic rules: objects flattened, arrays as text,
    /// scalars as they are; strings cut to `maxScalars`.
    mutating func addFlattened(view: JSONView, key: Int, value: Int, maxScalars: Int) {
        switch view.kind(value) {
        case .object:
            let saved = prefix.count
            if !prefix.isEmpty { prefix.append(UInt8(ascii: "_")) }
            Self.appendSanitizedKey(view: view, key: key, to: &prefix)
            view.forEachMember(value) { k, v in addFlattened(view: view, key: k, value: v, maxScalars: maxScalars) }
            prefix.truncate(to: saved)
        case .array:
            text.removeAll()
            JSONWriter.appendCanonical(view, value, scratch: &scratch, to: &text)
            let nameStart = beginEntry(view: view, key: key)
            let valueStart = values.count
            let cut = JSONWriter.appendQuoted(text.bytes, maxScalars: maxScalars, to: &values)
            if cut { truncatedStrings += 1 }
            endEntry(nameStart: nameStart, valueStart: valueStart)
        case .string:
            let nameStart = beginEntry(view: view, key: key)
            let valueStart = values.count
            if JSONWriter.appendString(view, value, maxScalars: maxScalars, scratch: &scratch, to: &values) {
                truncatedStrings += 1
            }
            endEntry(nameStart: nameStart, valueStart: valueStart)
        case .number, .true, .false, .null:
            let nameStart = beginEntry(view: view, key: key)
            let valueStart = values.count
            values.appendBytes(view.raw(value))
            endEntry(nameStart: nameStart, valueStart: valueStart)
        }
    }

    /// Names may not hold `.`, `$`, C0 controls or DEL: each becomes `_`. Names are kept
    /// JSON-escaped (only `"` and `\` can need it once controls are gone, and only keys written
    /// with escapes can hold them), so `write` copies them as they are; escaping is one-to-one,
    /// so repeated names are still found by comparing the kept bytes.
    private static func appendSanitizedKey(view: JSONView, key: Int, to out: inout OutputBuffer) {
        let start = out.count
        let node = view.nodes[key]
        if !node.flag {
            out.appendBytes(view.bytes + Int(node.start), Int(node.end - node.start))
            sanitize(&out, from: start)
            return
        }
        view.appendDecodedString(key, to: &out)
        sanitize(&out, from: start)
        var k = start
        while k < out.count, out[k] != 0x22, out[k] != 0x5C { k += 1 }
        if k < out.count {
            let decoded = Array(out.bytes(start, out.count))  // rare: a key with an escaped quote or backslash
            out.truncate(to: start)
            decoded.withUnsafeBytes { JSONWriter.appendEscaped($0, to: &out) }
        }
    }

    private static func sanitize(_ out: inout OutputBuffer, from start: Int) {
        var k = start
        let end = out.count
        while k < end {
            if k &+ 8 <= end, sanitizedBytes(UnsafeRawPointer(out.base + k).loadUnaligned(as: UInt64.self)) == 0 {
                k &+= 8
                continue
            }
            if sanitizedTable.utf8Start[Int(out[k])] == UInt8(ascii: "1") { out[k] = UInt8(ascii: "_") }
            k &+= 1
        }
    }

    /// "1" at the index of each byte a name may not hold: C0 controls, `$` (0x24), `.` (0x2E), DEL.
    private static let sanitizedTable: StaticString =
        "1111111111111111111111111111111100001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

    /// Non-zero when one of the 8 bytes is `.`, `$`, a control byte or DEL (SWAR, as in the parser).
    @inline(__always)
    private static func sanitizedBytes(_ loaded: UInt64) -> UInt64 {
        let w = UInt64(littleEndian: loaded)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let dot = w ^ (ones &* 0x2E)
        let dollar = w ^ (ones &* 0x24)
        let del = w ^ (ones &* 0x7F)
        let zeros = ((dot &- ones) & ~dot) | ((dollar &- ones) & ~dollar) | ((del &- ones) & ~del)
        let control = (w &- ones &* 0x20) & ~w
        return (zeros | control) & (ones &* 0x80)
    }

    // MARK: Writing

    /// Resolves repeated names: the later value takes the first one's place.
    mutating func resolveDuplicates() {
        let n = entries.count
        guard n > 1 else { return }
        if n <= 32 {
            for j in 1..<n {
                let tag = entries[j].nameTag
                for i in 0..<j where entries[i].nameTag == tag && entries[i].alive && sameName(i, j) {
                    entries[i].valueStart = entries[j].valueStart
                    entries[i].valueEnd = entries[j].valueEnd
                    entries[j].alive = false
                    break
                }
            }
            return
        }
        // Many keys (rare, or hostile): hash the names instead of comparing every pair.
        var firstIndex: [[UInt8]: Int] = [:]
        for j in 0..<n {
            let name = Array(names.bytes(Int(entries[j].nameStart), Int(entries[j].nameEnd)))
            if let i = firstIndex[name] {
                entries[i].valueStart = entries[j].valueStart
                entries[i].valueEnd = entries[j].valueEnd
                entries[j].alive = false
            } else {
                firstIndex[name] = j
            }
        }
    }

    private func sameName(_ i: Int, _ j: Int) -> Bool {
        let a = entries[i]
        let b = entries[j]
        let length = a.nameEnd - a.nameStart
        guard length == b.nameEnd - b.nameStart else { return false }
        return memcmpBytes(names.base + Int(a.nameStart), names.base + Int(b.nameStart), Int(length))
    }

    /// Writes `"key":{...}` (preceded by a comma when needed) after resolving duplicates; writes
    /// nothing when empty. Keeps at most `limit` entries and returns how many were dropped.
    @discardableResult
    mutating func write(key: StaticString, limit: Int = .max, to out: inout OutputBuffer) -> Int {
        resolveDuplicates()
        guard entries.contains(where: { $0.alive }) else { return 0 }
        ObjectWriter.key(key, to: &out)
        out.append(UInt8(ascii: "{"))
        var written = 0
        var dropped = 0
        for entry in entries where entry.alive {
            if written == limit {
                dropped += 1
                continue
            }
            if written > 0 { out.append(UInt8(ascii: ",")) }
            // Names are kept escaped (see appendSanitizedKey).
            out.append(UInt8(ascii: "\""))
            out.appendBytes(names.base + Int(entry.nameStart), Int(entry.nameEnd - entry.nameStart))
            out.append(UInt8(ascii: "\""))
            out.append(UInt8(ascii: ":"))
            out.appendBytes(values.base + Int(entry.valueStart), Int(entry.valueEnd - entry.valueStart))
            written += 1
        }
        out.append(UInt8(ascii: "}"))
        return dropped
    }
}

/// Helpers for writing the members of an object being built in a byte buffer.
enum ObjectWriter {
    /// Writes `"key":`, preceded by a comma unless the object was just opened.
    @inline(__always)
    static func key(_ key: StaticString, to out: inout OutputBuffer) {
        if let last = out.last, last != UInt8(ascii: "{"), last != UInt8(ascii: "[") { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        JSONWriter.append(key, to: &out)
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }
}
