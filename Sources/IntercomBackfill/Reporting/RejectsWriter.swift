import Synchronization

/// Writes `<state-dir>/rejects.ndjson` (contract §7), one line a rejected record:
/// `{"source","line","reason","detail","record"}`, or `record_base64` when the line is not UTF-8.
/// Safe to share: the pipeline writes mapping rejects while upload tasks write failed items; a
/// lock is fine here because rejects are rare, never the per-record path.
public final class RejectsWriter: Sendable {
    public let path: String
    private struct State {
        var file: BufferedFileWriter
        var line: [UInt8] = []
        var written = 0
        /// Written since the last sync: a checkpoint save with nothing new to make durable costs no fsync.
        var unsynced = false
    }
    private let state: Mutex<State>

    public init(path: String, append: Bool) throws {
        self.path = path
        state = Mutex(State(file: try BufferedFileWriter(path: path, append: append, capacity: 64 * 1024)))
    }

    /// How many rejects this writer has written.
    public var written: Int { state.withLock { $0.written } }

    /// Records one reject; `record` is the raw line (or the kept prefix of a too-long one).
    public func write(source: String, line number: Int, reason: String, detail: String, record: UnsafeRawBufferPointer) throws {
        try state.withLock { state in
            state.line.removeAll(keepingCapacity: true)
            JSONWriter.append("{\"source\":", to: &state.line)
            Self.appendQuoted(source, to: &state.line)
            JSONWriter.append(",\"line\":", to: &state.line)
            JSONWriter.appendInt(Int64(number), to: &state.line)
            JSONWriter.append(",\"reason\":", to: &state.line)
            Self.appendQuoted(reason, to: &state.line)
            JSONWriter.append(",\"detail\":", to: &state.line)
            Self.appendQuoted(detail, to: &state.line)
            if isValidUTF8(record) {
                JSONWriter.append(",\"record\":", to: &state.line)
                JSONWriter.appendQuoted(record, to: &state.line)
            } else {
                JSONWriter.append(",\"record_base64\":\"", to: &state.line)
                Base64.append(record, to: &state.line)
                state.line.append(UInt8(ascii: "\""))
            }
            JSONWriter.append("}\n", to: &state.line)
            try state.file.write(state.line)
            state.written += 1
            state.unsynced = true
        }
    }

    /// A reject with the record given as text (e.g. an item that failed inside an Intercom job).
    public func write(source: String, line number: Int, reason: String, detail: String, record: String) throws {
        var copy = record
        try copy.withUTF8 { utf8 in
            try write(source: source, line: number, reason: reason, detail: detail, record: UnsafeRawBufferPointer(utf8))
        }
    }

    public func sync() throws {
        try state.withLock { state in
            guard state.unsynced else { return }
            try state.file.sync()
            state.unsynced = false
        }
    }
    public func flush() throws { try state.withLock { try $0.file.flush() } }

    private static func appendQuoted(_ string: String, to line: inout [UInt8]) {
        var copy = string
        copy.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &line) }
    }
}

/// Whether `bytes` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
public func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var k = 0
    let n = bytes.count
    while k < n {
        let b0 = bytes[k]
        if b0 < 0x80 {
            k += 1
            continue
        }
        func cont(_ i: Int) -> Bool { i < n && bytes[i] & 0xC0 == 0x80 }
        switch b0 {
        case 0xC2...0xDF:
            guard cont(k + 1) else { return false }
            k += 2
        case 0xE0...0xEF:
            guard cont(k + 1), cont(k + 2) else { return false }
            let b1 = bytes[k + 1]
            if b0 == 0xE0, b1 < 0xA0 { return false }
            if b0 == 0xED, b1 > 0x9F { return false }
            k += 3
        case 0xF0...0xF4:
            guard cont(k + 1), cont(k + 2), cont(k + 3) else { return false }
            let b1 = bytes[k + 1]
            if b0 == 0xF0, b1 < 0x90 { return false }
            if b0 == 0xF4, b1 > 0x8F { return false }
            k += 4
        default:
            return false
        }
    }
    return true
}

/// Standard base64 with padding, for the exact bytes of a line that is not UTF-8.
enum Base64 {
    static func append(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var k = 0
        while k + 3 <= bytes.count {
            let v = UInt32(bytes[k]) << 16 | UInt32(bytes[k + 1]) << 8 | UInt32(bytes[k + 2])
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(alphabet[Int((v >> 6) & 63)])
            out.append(alphabet[Int(v & 63)])
            k += 3
        }
        let rest = bytes.count - k
        if rest == 1 {
            let v = UInt32(bytes[k]) << 16
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(contentsOf: [UInt8(ascii: "="), UInt8(ascii: "=")])
        } else if rest == 2 {
            let v = UInt32(bytes[k]) << 16 | UInt32(bytes[k + 1]) << 8
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(alphabet[Int((v >> 6) & 63)])
            out.append(UInt8(ascii: "="))
        }
    }
}
