import Logging
import Synchronization

/// Settings of the read -> parse -> map -> batch path.
public struct PipelineOptions: Sendable {
    public var batchSize = 100
    public var maxLineBytes = 8 << 20
    /// How much decompressed input is read at a time.
    public var chunkSize = 256 << 10

    public init() {}
}

/// The whole flow in one place:
/// inputs -> byte source (plain or gzip) -> lines -> records -> Intercom items -> batches -> sink,
/// with rejects written as they happen and every record counted in exactly one bucket.
public final class Pipeline {
    public let inputs: [InputFile]
    public let options: PipelineOptions
    private let sink: any BatchSink
    private let rejects: RejectsWriter
    private let progress: ProgressLine?
    private let stop: StopSignal
    private let logger: Logger

    public init(inputs: [InputFile], options: PipelineOptions, sink: any BatchSink, rejects: RejectsWriter,
                progress: ProgressLine?, stop: StopSignal = StopSignal(), logger: Logger) {
        self.inputs = inputs
        self.options = options
        self.sink = sink
        self.rejects = rejects
        self.progress = progress
        self.stop = stop
        self.logger = logger
    }

    /// Runs every input in order. A damaged input is reported and the others still run; an
    /// output failure (full disk) or a fatal sink error (authentication) ends the run by throwing.
    public func run() async throws -> RunReport {
        let started = MonotonicClock.now()
        var router = RecordRouter(batchSize: options.batchSize, rejects: rejects)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: options.chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        let totalBytes: Int64? = inputs.contains { $0.size == nil } ? nil : inputs.reduce(0) { $0 + ($1.size ?? 0) }
        var bytesBefore: Int64 = 0

        for (index, input) in inputs.enumerated() {
            if stop.isRequested { break }
            router.currentInput = index
            router.currentSource = input.displayPath
            var source: (any ByteSource)?
            do {
                let opened = try InputOpener.open(input)
                source = opened
                logger.debug("reading input", metadata: ["source": "\(input.displayPath)"])
                try await read(opened, into: chunk, router: &router) { read, records in
                    self.progress?.update(bytesRead: bytesBefore + read, totalBytes: totalBytes, records: records)
                }
            } catch let error as InputError {
                logger.error("\(error.description)")
                router.report.inputErrors.append(error.description)
                try await drain(&router)
            }
            bytesBefore += source?.rawBytesRead ?? 0
        }
        router.batcher.flush()
        try await drain(&router)
        let summary = try await sink.finish()
        try rejects.flush()
        progress?.finish()

        var report = router.report
        report.warnings = router.mapper.warnings
        report.requests = summary.requests
        report.retries = summary.retries
        report.uploadedUsers = summary.uploadedUsers
        report.uploadedEvents = summary.uploadedEvents
        report.failed = summary.failed
        report.elapsedSeconds = MonotonicClock.now() - started
        return report
    }

    /// Reads one input to its end (or to a stop request), routing each line.
    private func read(_ source: any ByteSource, into chunk: UnsafeMutableRawBufferPointer, router: inout RecordRouter,
                      progress: (_ rawBytesRead: Int64, _ records: Int) -> Void) async throws {
        var splitter = LineSplitter(maxLineBytes: options.maxLineBytes)
        while !stop.isRequested {
            let n: Int
            do {
                n = try source.read(into: chunk)
            } catch {
                // Every complete line before the damage has been routed. The cut-off fragment
                // after the last newline is not a record: its end is lost with the damage.
                throw error
            }
            if n == 0 {
                try splitter.finish { try router.route($0) }
                break
            }
            try splitter.consume(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) { try router.route($0) }
            try await drain(&router)
            progress(source.rawBytesRead, router.report.records)
        }
    }

    private func drain(_ router: inout RecordRouter) async throws {
        guard router.batcher.hasReady else { return }
        for batch in router.batcher.takeReady() {
            try await sink.send(batch)
        }
    }
}

/// Puts each line in its bucket: mapped into a batch, skipped (counted), or rejected (counted
/// and written down). Kept a value type so the per-line path touches no class or lock.
struct RecordRouter {
    var mapper = RecordMapper()
    var batcher: Batcher
    var report = RunReport()
    let rejects: RejectsWriter
    var currentInput = 0
    var currentSource = ""

    init(batchSize: Int, rejects: RejectsWriter) {
        batcher = Batcher(batchSize: batchSize)
        self.rejects = rejects
    }

    @inline(__always)
    mutating func route(_ line: LineSlice) throws {
        if line.isTooLong {
            report.records += 1
            report.rejected.add(.lineTooLong)
            try rejects.write(source: currentSource, line: line.number, reason: RejectReason.lineTooLong.rawValue,
                              detail: "the line is \(line.length) bytes, longer than --max-line-bytes; its first \(line.bytes.count) bytes are kept here",
                              record: utf8Prefix(line.bytes))
            return
        }
        if isBlank(line.bytes) { return }
        report.records += 1
        switch mapper.map(line.bytes) {
        case .mapped(let kind):
            if kind == .user { report.mappedUsers += 1 } else { report.mappedEvents += 1 }
            let position = RecordPosition(input: currentInput, line: line.number, endOffset: line.endOffset)
            mapper.data.withUnsafeBytes { batcher.add(kind, data: $0, position: position) }
        case .skipped(let reason):
            report.skipped.add(reason)
        case .rejected(let reason, let detail):
            report.rejected.add(reason)
            try rejects.write(source: currentSource, line: line.number, reason: reason.rawValue, detail: detail, record: line.bytes)
        }
    }

    /// Lines holding only white space are not records (contract §2).
    @inline(__always)
    func isBlank(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for b in bytes where !isSpace(b) { return false }
        return true
    }

    /// A kept prefix cut back to a whole UTF-8 character, so it is still text when the line was.
    func utf8Prefix(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var end = bytes.count
        var back = 0
        while end > 0, back < 3, bytes[end - 1] & 0xC0 == 0x80 { end -= 1; back += 1 }
        if end > 0, bytes[end - 1] >= 0xC0 {
            let lead = bytes[end - 1]
            let needed = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
            if back + 1 < needed { end -= 1 } else { end += back }
        } else {
            end += back
        }
        return UnsafeRawBufferPointer(rebasing: bytes[0..<end])
    }
}
