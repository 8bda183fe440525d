import Benchmark
import IntercomBackfill
import MallocInterposerSwift

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Each iteration is one pass over the whole in-memory corpus (see Corpus.swift), so wall clock is
// per pass and the custom metrics give the figures bench/README.md reports: MB/s of uncompressed
// input, records/s, and mallocs per 1,000 records (read from the malloc interposer around the pass).

enum HotPathMetric {
    static let megabytesPerSecond = BenchmarkMetric.custom("MB/s (uncompressed)", polarity: .prefersLarger, useScalingFactor: false)
    static let recordsPerSecond = BenchmarkMetric.custom("records/s", polarity: .prefersLarger, useScalingFactor: false)
    static let mallocsPerThousandRecords = BenchmarkMetric.custom("mallocs per 1000 records", polarity: .prefersSmaller, useScalingFactor: false)
}

/// Runs `pass` once per iteration and reports the per-pass figures for `corpus.plain.count` bytes.
func measuredPass(_ benchmark: Benchmark, _ corpus: Corpus, _ pass: () throws -> Void) {
    let mallocsBefore = MallocInterposerSwift.getStatistics().mallocCount
    let clock = ContinuousClock()
    let started = clock.now
    do {
        try pass()
    } catch {
        fatalError("benchmark pass failed: \(error)")
    }
    let elapsed = started.duration(to: clock.now)
    let mallocs = MallocInterposerSwift.getStatistics().mallocCount - mallocsBefore
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    benchmark.measurement(HotPathMetric.megabytesPerSecond, Int((Double(corpus.plain.count) / 1e6 / seconds).rounded()))
    benchmark.measurement(HotPathMetric.recordsPerSecond, Int((Double(corpus.records) / seconds).rounded()))
    benchmark.measurement(HotPathMetric.mallocsPerThousandRecords, Int((Double(mallocs) * 1000 / Double(corpus.records)).rounded()))
}

/// The path from a line to request bytes, as `Pipeline`'s `RecordRouter` runs it for a dry run
/// (minus the report's counters and the rejects file): map, batch, encode the request lines.
struct Engine {
    var mapper = RecordMapper()
    var batcher = Batcher(batchSize: 100)
    let writer: DryRunWriter
    var mapped = 0

    init() {
        do {
            writer = try DryRunWriter(path: "/dev/null")
        } catch {
            fatalError("cannot open /dev/null: \(error)")
        }
    }

    @inline(__always)
    mutating func route(_ line: LineSlice) {
        if line.isTooLong || line.bytes.isEmpty { return }
        if case .mapped(let kind) = mapper.map(line.bytes) {
            mapped += 1
            let position = RecordPosition(input: 0, line: line.number, endOffset: line.endOffset)
            batcher.add(kind, data: mapper.itemBytes, position: position)
        }
    }

    mutating func drain() throws {
        guard batcher.hasReady else { return }
        for batch in batcher.takeReady() { try writer.write(batch) }
    }

    mutating func finish() throws {
        batcher.flush()
        try drain()
        _ = try writer.finishWriting()
    }
}

/// Timestamp values of every record (`timestamp`, `originalTimestamp`, `receivedAt`, `sentAt`),
/// collected once so the benchmark times the date parser alone.
final class TimestampSamples: @unchecked Sendable {
    struct Sample { var start: Int; var count: Int; var isNumber: Bool; var isInteger: Bool }
    let bytes: [UInt8]
    let samples: [Sample]

    init(_ corpus: Corpus) {
        var bytes: [UInt8] = []
        var samples: [Sample] = []
        var parser = JSONParser()
        corpus.forEachChunk(size: corpus.plain.count) { all in
            var splitter = LineSplitter()
            splitter.consume(all) { line in
                guard (try? parser.parse(line.bytes)) != nil else { return }
                parser.nodes.withUnsafeBufferPointer { nodes in
                    let view = JSONView(bytes: line.bytes, nodes: nodes)
                    for key: StaticString in ["timestamp", "originalTimestamp", "receivedAt", "sentAt"] {
                        guard let i = view.member(JSONView.root, key) else { continue }
                        let node = view.nodes[i]
                        guard node.kind == .string || node.kind == .number else { continue }
                        samples.append(Sample(start: bytes.count, count: Int(node.end - node.start), isNumber: node.kind == .number, isInteger: node.flag))
                        bytes.append(contentsOf: view.raw(i))
                    }
                }
            }
        }
        self.bytes = bytes
        self.samples = samples
    }
}

/// The malloc counts, which are deterministic for a given corpus: what CI checks against the
/// committed thresholds (`BENCH_METRICS=malloc`, `bench/Thresholds/`). Timings are never gated.
let mallocMetrics: [BenchmarkMetric] = [.mallocCountTotal, HotPathMetric.mallocsPerThousandRecords]

/// A malloc regression is any growth beyond a little noise from the runtime (a lazily made
/// metadata cache, a thread's first allocation): 2 % of the count, or 1 per 1000 records.
/// (Computed: `BenchmarkThresholds` is not `Sendable`, so it cannot be a global `let`.)
var mallocTolerances: [BenchmarkMetric: BenchmarkThresholds] {
    [
        .mallocCountTotal: .init(relative: [.p90: 2.0]),
        HotPathMetric.mallocsPerThousandRecords: .init(absolute: [.p90: 1]),
    ]
}

let benchmarks: @Sendable () -> Void = {
    let mallocOnly = getenv("BENCH_METRICS").map { String(cString: $0) } == "malloc"
    Benchmark.defaultConfiguration = .init(
        metrics: mallocOnly
            ? mallocMetrics
            : [.wallClock, .mallocCountTotal, .peakMemoryResident,
               HotPathMetric.megabytesPerSecond, HotPathMetric.recordsPerSecond, HotPathMetric.mallocsPerThousandRecords],
        timeUnits: .milliseconds,
        warmupIterations: 1,
        maxDuration: .seconds(30),
        maxIterations: 5,
        thresholds: mallocTolerances
    )

    Benchmark("LineSplitter") { benchmark in
        let corpus = Corpus.shared
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            var splitter = LineSplitter()
            var lines = 0
            corpus.forEachChunk { splitter.consume($0) { _ in lines += 1 } }
            splitter.finish { _ in lines += 1 }
            blackHole(lines)
        }
    }

    Benchmark("JSONParser") { benchmark in
        let corpus = Corpus.shared
        var parser = JSONParser()
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            var splitter = LineSplitter()
            var nodes = 0
            corpus.forEachChunk {
                splitter.consume($0) { line in
                    if (try? parser.parse(line.bytes)) != nil { nodes &+= parser.nodeCount }
                }
            }
            blackHole(nodes)
        }
    }

    Benchmark("Parse+Map") { benchmark in
        let corpus = Corpus.shared
        var mapper = RecordMapper()
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            var splitter = LineSplitter()
            var mapped = 0
            corpus.forEachChunk {
                splitter.consume($0) { line in
                    if case .mapped = mapper.map(line.bytes) { mapped &+= mapper.itemBytes.count }
                }
            }
            blackHole(mapped)
        }
    }

    Benchmark("Parse+Map+Encode") { benchmark in
        let corpus = Corpus.shared
        var engine = Engine()
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            var splitter = LineSplitter()
            try corpus.forEachChunk {
                splitter.consume($0) { engine.route($0) }
                try engine.drain()
            }
            try engine.finish()
        }
        blackHole(engine.mapped)
    }

    Benchmark("Timestamp") { benchmark in
        let corpus = Corpus.shared
        let timestamps = TimestampSamples(corpus)
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            var sum: Int64 = 0
            timestamps.bytes.withUnsafeBytes { bytes in
                for sample in timestamps.samples {
                    let raw = UnsafeRawBufferPointer(rebasing: bytes[sample.start..<(sample.start + sample.count)])
                    let seconds = sample.isNumber ? Timestamp.fromNumber(raw, isInteger: sample.isInteger) : Timestamp.parseISO8601(raw)
                    sum &+= seconds ?? 1
                }
            }
            blackHole(sum)
        }
    }

    Benchmark("GzipInflate") { benchmark in
        let corpus = Corpus.shared
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { chunk.deallocate() }
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            let source = try GzipByteSource(wrapping: MemoryByteSource(corpus.gzip), displayPath: "corpus.gz")
            var total = 0
            while case let n = try source.read(into: chunk), n > 0 { total += n }
            precondition(total == corpus.plain.count)
        }
    }

    // Inflate + parse + map + encode on one thread, as the Pipeline reads today.
    Benchmark("Gzip+Parse+Map+Encode") { benchmark in
        let corpus = Corpus.shared
        var engine = Engine()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { chunk.deallocate() }
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            let source = try GzipByteSource(wrapping: MemoryByteSource(corpus.gzip), displayPath: "corpus.gz")
            var splitter = LineSplitter()
            while case let n = try source.read(into: chunk), n > 0 {
                splitter.consume(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) { engine.route($0) }
                try engine.drain()
            }
            splitter.finish { engine.route($0) }
            try engine.finish()
        }
        blackHole(engine.mapped)
    }

    // The same with inflating on a second thread: `read(into:)` (one copy a chunk, the one-line
    // Pipeline change) and `withNextChunk` (no copy).
    Benchmark("Gzip+Parse+Map+Encode+ReadAhead.readInto") { benchmark in
        let corpus = Corpus.shared
        var engine = Engine()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { chunk.deallocate() }
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            let gzip = try GzipByteSource(wrapping: MemoryByteSource(corpus.gzip), displayPath: "corpus.gz")
            let source = ReadAheadByteSource(wrapping: gzip)
            var splitter = LineSplitter()
            while case let n = try source.read(into: chunk), n > 0 {
                splitter.consume(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) { engine.route($0) }
                try engine.drain()
            }
            splitter.finish { engine.route($0) }
            try engine.finish()
        }
        blackHole(engine.mapped)
    }

    Benchmark("Gzip+Parse+Map+Encode+ReadAhead.withNextChunk") { benchmark in
        let corpus = Corpus.shared
        var engine = Engine()
        benchmark.startMeasurement()
        measuredPass(benchmark, corpus) {
            let gzip = try GzipByteSource(wrapping: MemoryByteSource(corpus.gzip), displayPath: "corpus.gz")
            let source = ReadAheadByteSource(wrapping: gzip)
            var splitter = LineSplitter()
            while try source.withNextChunk({ splitter.consume($0) { engine.route($0) } }) != nil {
                try engine.drain()
            }
            splitter.finish { engine.route($0) }
            try engine.finish()
        }
        blackHole(engine.mapped)
    }
}
