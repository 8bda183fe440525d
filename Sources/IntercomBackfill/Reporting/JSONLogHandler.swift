import Foundation
import Logging

/// A swift-log handler writing one JSON object a line, for cron jobs and log shippers:
/// `{"time":"2026-12-01T20:22:01.123Z","level":"info","label":"intercom-backfill","message":"...","metadata":{...}}`.
///
/// Values are written as their descriptions, and credentials describe themselves without the
/// secret (`IntercomCredentials.description`); a metadata key that names a secret (`token`,
/// `authorization`, `api_key`, `password`, `secret`) is redacted as well, whatever its value.
public struct JSONLogHandler: LogHandler {
    public typealias Sink = @Sendable ([UInt8]) -> Void

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: Sink

    /// `sink` receives each line, newline included (stderr by default).
    public init(
        label: String, metadataProvider: Logger.MetadataProvider? = nil, sink: @escaping Sink = JSONLogHandler.standardError
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = .string("\(error)") }

        var line: [UInt8] = []
        line.reserveCapacity(256)
        JSONWriter.append("{\"time\":", to: &line)
        Self.appendString(Self.timestamp(), to: &line)
        JSONWriter.append(",\"level\":", to: &line)
        Self.appendString(event.level.rawValue, to: &line)
        JSONWriter.append(",\"label\":", to: &line)
        Self.appendString(label, to: &line)
        JSONWriter.append(",\"message\":", to: &line)
        Self.appendString(event.message.description, to: &line)
        if !merged.isEmpty {
            JSONWriter.append(",\"metadata\":", to: &line)
            Self.appendObject(merged, to: &line)
        }
        JSONWriter.append("}\n", to: &line)
        sink(line)
    }

    /// Keys whose values are never written, in lower case.
    static let secretKeys: Set<String> = ["token", "access_token", "authorization", "api_key", "apikey", "password", "secret"]

    private static func appendObject(_ metadata: Logger.Metadata, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        // Sorted, so two lines with the same metadata read the same.
        for (index, key) in metadata.keys.sorted().enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            if secretKeys.contains(key.lowercased()) {
                appendString("[redacted]", to: &out)
            } else {
                appendValue(metadata[key]!, to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to out: inout [UInt8]) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &out)
        case .dictionary(let dictionary): appendObject(dictionary, to: &out)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendValue(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }

    private static func appendString(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { utf8 in
            out.append(UInt8(ascii: "\""))
            JSONWriter.appendEscaped(UnsafeRawBufferPointer(utf8), to: &out)
            out.append(UInt8(ascii: "\""))
        }
    }

    /// UTC, milliseconds, `Z`: sortable and what log shippers parse without configuration.
    static func timestamp(_ time: timespec = currentTime()) -> String {
        var seconds = time.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let milliseconds = Int(time.tv_nsec / 1_000_000)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(milliseconds, 3))Z"
    }

    private static func currentTime() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }

    /// One write(2) per line, failures ignored: a log line must never be what stops a run.
    public static let standardError: Sink = { line in
        line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}
