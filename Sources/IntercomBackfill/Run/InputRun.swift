/// What the reader knows about the input it is reading, and how it turns a routing point into a
/// checkpoint mark for that input.
struct InputRun {
    let index: Int
    let input: InputFile
    let streamName: String?
    var source: (any ByteSource)?
    var identity: InputIdentity?
    var resumeEntry: InputCheckpoint?
    /// The input's counts from earlier runs, and the router's counts when this run started it.
    var base = CheckpointCounts()
    var countsAtStart = CheckpointCounts()
    var checkpointed = true
    /// The last line a mark was sent for.
    var markedLine = -1
    /// stdin: the stream's first bytes, for the prefix check of a later resume.
    private var head: [UInt8] = []

    static let headBytes = 64 << 10

    init(index: Int, input: InputFile, streamName: String?) {
        self.index = index
        self.input = input
        self.streamName = streamName
    }

    mutating func remember(_ bytes: UnsafeRawBufferPointer) {
        guard streamName != nil, head.count < Self.headBytes else { return }
        head.append(contentsOf: bytes.prefix(Self.headBytes - head.count))
    }

    func prefixHash(upTo offset: Int64) -> String {
        head.withUnsafeBytes { StableHash.hex(of: UnsafeRawBufferPointer(rebasing: $0[0..<Int(min(offset, Int64(head.count)))])) }
    }

    /// The checkpoint entry for everything up to `point` (nil when this input is not checkpointed).
    mutating func mark(_ point: RoutingSnapshot, complete: Bool = false, size: Int64? = nil) -> CheckpointMark? {
        guard checkpointed, let identity else { return nil }
        markedLine = max(markedLine, point.line)
        var counts = base
        counts.add(CheckpointCounts(point.report, warnings: point.warnings).subtracting(countsAtStart))
        let entry = InputCheckpoint(
            source: input.displayPath, streamName: streamName,
            headHash: identity.headHash, headLength: identity.headLength, size: size ?? identity.size,
            line: point.line, offset: point.offset, complete: complete,
            prefixHash: streamName == nil ? nil : prefixHash(upTo: point.offset),
            counts: counts)
        return CheckpointMark(input: index, entry: entry)
    }
}
