import Foundation
import IntercomBackfill

/// The benchmark corpus, in memory: Segment-spec NDJSON made by the fixtures generator, and the
/// same bytes gzip -6. Generated on first use under `bench/corpus/` (git-ignored), then reused.
///
/// Size: `BENCH_CORPUS_MB` (default 50; the generator's records are one stream, so a smaller
/// corpus is a prefix of a larger one and throughput per byte is the same). Another file:
/// `BENCH_CORPUS=/path/plain.ndjson` (its `.gz` twin is made beside it if missing).
final class Corpus: @unchecked Sendable {
    // Unchecked: the buffers are written once, before any benchmark reads them, and never again.
    let plain: UnsafeRawBufferPointer
    let gzip: UnsafeRawBufferPointer
    let records: Int
    let path: String

    nonisolated(unsafe) private static var loaded: Corpus?

    static var shared: Corpus {
        if let loaded { return loaded }
        let corpus = Corpus()
        loaded = corpus
        return corpus
    }

    private init() {
        let environment = ProcessInfo.processInfo.environment
        let benchFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let repository = benchFolder.deletingLastPathComponent().path
        let megabytes = Int(environment["BENCH_CORPUS_MB"] ?? "") ?? 50
        let path = environment["BENCH_CORPUS"] ?? benchFolder.path + "/corpus/hotpath-\(megabytes)mb.ndjson"
        self.path = path
        let files = FileManager.default
        if !files.fileExists(atPath: path) {
            Corpus.run("/usr/bin/env", ["python3", repository + "/fixtures/generate.py", "corpus", "--mb", String(megabytes), "--plain", "--out", path])
        }
        if !files.fileExists(atPath: path + ".gz") {
            Corpus.run("/bin/sh", ["-c", "gzip -6 -c \"$0\" > \"$0.gz.tmp\" && mv \"$0.gz.tmp\" \"$0.gz\"", path])
        }
        plain = Corpus.load(path)
        gzip = Corpus.load(path + ".gz")
        var lines = 0
        var splitter = LineSplitter()
        splitter.consume(plain) { if !$0.bytes.isEmpty { lines += 1 } }
        splitter.finish { if !$0.bytes.isEmpty { lines += 1 } }
        records = lines
        FileHandle.standardError.write(Data("corpus \(path): \(plain.count) bytes, \(records) records, gzip \(gzip.count) bytes\n".utf8))
    }

    private static func run(_ tool: String, _ arguments: [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            fatalError("could not run \(tool) \(arguments): \(error)")
        }
        precondition(process.terminationStatus == 0, "\(tool) \(arguments) failed")
    }

    private static func load(_ path: String) -> UnsafeRawBufferPointer {
        guard let data = FileManager.default.contents(atPath: path) else { fatalError("cannot read \(path)") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 64)
        data.copyBytes(to: buffer.bindMemory(to: UInt8.self))
        return UnsafeRawBufferPointer(buffer)
    }

    /// The plain corpus in chunks of `size`, as a byte source would hand it out.
    @inline(__always)
    func forEachChunk(size: Int = 256 << 10, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var offset = 0
        while offset < plain.count {
            let end = min(offset + size, plain.count)
            try body(UnsafeRawBufferPointer(rebasing: plain[offset..<end]))
            offset = end
        }
    }
}

/// A ``ByteSource`` over bytes in memory, so inflate benchmarks measure zlib, not the disk.
final class MemoryByteSource: ByteSource {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    var rawBytesRead: Int64 { Int64(offset) }

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        if n > 0 { buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}
