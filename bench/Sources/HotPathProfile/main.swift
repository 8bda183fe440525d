// A plain executable running one stage of the hot path over a corpus file, for profilers that
// cannot run the benchmark harness (perf record, valgrind --tool=callgrind); see bench/README.md.
//
//     .build/release/HotPathProfile STAGE FILE [PASSES]
//
// STAGE: split | parse | map | encode (parse + map + Batcher + dry-run request bytes to /dev/null).
// FILE is read into memory first (plain NDJSON), so the profile holds no file reading.
import IntercomBackfill

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let arguments = CommandLine.arguments
guard arguments.count >= 3, ["split", "parse", "map", "encode"].contains(arguments[1]) else {
    print("usage: HotPathProfile split|parse|map|encode FILE [PASSES]")
    exit(2)
}
let stage = arguments[1]
let passes = arguments.count > 3 ? Int(arguments[3]) ?? 1 : 1

// Read the whole file with the library's own source.
let file = try FileByteSource(path: arguments[2], displayPath: arguments[2])
var bytes: [UInt8] = []
let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
while case let n = try file.read(into: chunk), n > 0 { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n])) }

var parser = JSONParser()
var mapper = RecordMapper()
var batcher = Batcher(batchSize: 100)
let writer = try DryRunWriter(path: "/dev/null")
var checksum = 0

for _ in 0..<passes {
    var splitter = LineSplitter()
    try bytes.withUnsafeBytes { all in
        var offset = 0
        while offset < all.count {
            let end = min(offset + (256 << 10), all.count)
            splitter.consume(UnsafeRawBufferPointer(rebasing: all[offset..<end])) { line in
                switch stage {
                case "split":
                    checksum &+= line.bytes.count
                case "parse":
                    if (try? parser.parse(line.bytes)) != nil { checksum &+= parser.nodeCount }
                default:
                    guard !line.bytes.isEmpty, case .mapped(let kind) = mapper.map(line.bytes) else { return }
                    checksum &+= mapper.itemBytes.count
                    if stage == "encode" {
                        let position = RecordPosition(input: 0, line: line.number, endOffset: line.endOffset)
                        batcher.add(kind, data: mapper.itemBytes, position: position)
                    }
                }
            }
            if batcher.hasReady {
                for batch in batcher.takeReady() { try writer.write(batch) }
            }
            offset = end
        }
    }
}
batcher.flush()
for batch in batcher.takeReady() { try writer.write(batch) }
_ = try writer.finishWriting()
print("\(stage): \(bytes.count) bytes x \(passes), checksum \(checksum)")
