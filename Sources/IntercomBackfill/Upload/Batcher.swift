/// Where a record came from, carried with its item to the end so that a reject, a failed job
/// item and a checkpoint can all name it.
public struct RecordPosition: Sendable, Hashable {
    /// Index of the input in the run's input list.
    public var input: Int
    /// 1-based line number in that input.
    public var line: Int
    /// Uncompressed offset just past the line: where a resume continues.
    public var endOffset: Int64

    public init(input: Int, line: Int, endOffset: Int64) {
        self.input = input
        self.line = line
        self.endOffset = endOffset
    }
}

/// The items of one bulk request, ready to send: `items` is the comma-separated item objects
/// (`{"method":"post","data_type":...,"data":{...}}`), which a sink wraps in its request body.
public struct Batch: Sendable {
    public let kind: ItemKind
    public internal(set) var items: [UInt8]
    public internal(set) var positions: [RecordPosition]
    /// Monotonic number in the order batches were closed; sinks may use it to order acknowledgements.
    public let sequence: Int

    public var count: Int { positions.count }
}

/// Groups mapped items into per-endpoint batches of at most `batchSize` items and `maxBodyBytes`.
///
/// Ordering rule (so Intercom has a user before events that follow it in the input): when an
/// events batch closes while user items are pending, the users batch closes first.
public struct Batcher {
    public static let defaultMaxBodyBytes = 4 << 20
    /// Room kept in a body for the wrapper `{"items":[...],"job":{"id":"..."}}`.
    static let wrapperAllowance = 256

    public let batchSize: Int
    public let maxBodyBytes: Int
    private var users: Batch
    private var events: Batch
    private var nextSequence = 0
    /// Closed batches in the order they must be sent; drained by the pipeline.
    public private(set) var ready: [Batch] = []

    public init(batchSize: Int, maxBodyBytes: Int = Batcher.defaultMaxBodyBytes) {
        precondition((1...100).contains(batchSize))
        self.batchSize = batchSize
        self.maxBodyBytes = maxBodyBytes
        users = Batch(kind: .user, items: [], positions: [], sequence: 0)
        events = Batch(kind: .event, items: [], positions: [], sequence: 0)
        users = freshBatch(.user)
        events = freshBatch(.event)
    }

    private func freshBatch(_ kind: ItemKind) -> Batch {
        var batch = Batch(kind: kind, items: [], positions: [], sequence: 0)
        batch.items.reserveCapacity(64 * 1024)
        batch.positions.reserveCapacity(batchSize)
        return batch
    }

    /// Adds one item whose `data` object is `data`.
    public mutating func add(_ kind: ItemKind, data: UnsafeRawBufferPointer, position: RecordPosition) {
        let itemBytes = data.count + 48
        switch kind {
        case .user:
            if !users.positions.isEmpty, users.items.count + itemBytes + Self.wrapperAllowance > maxBodyBytes { close(.user) }
            Self.append(data, kind: .user, position: position, to: &users)
            if users.positions.count == batchSize { close(.user) }
        case .event:
            if !events.positions.isEmpty, events.items.count + itemBytes + Self.wrapperAllowance > maxBodyBytes { closeEvents() }
            Self.append(data, kind: .event, position: position, to: &events)
            if events.positions.count == batchSize { closeEvents() }
        }
    }

    /// Closes whatever is pending (end of input): users first, then events.
    public mutating func flush() {
        if !users.positions.isEmpty { close(.user) }
        if !events.positions.isEmpty { close(.event) }
    }

    /// Hands over the closed batches, in sending order.
    public mutating func takeReady() -> [Batch] {
        defer { ready.removeAll(keepingCapacity: true) }
        return ready
    }

    public var hasReady: Bool { !ready.isEmpty }
    public var readyCount: Int { ready.count }

    /// The earliest record still waiting in an open batch: nothing at or after it is settled.
    public var firstPendingPosition: RecordPosition? {
        switch (users.positions.first, events.positions.first) {
        case let (u?, e?): return (u.input, u.line) < (e.input, e.line) ? u : e
        case let (u, e): return u ?? e
        }
    }
    public var pendingCount: Int { users.positions.count + events.positions.count }

    private mutating func closeEvents() {
        if !users.positions.isEmpty { close(.user) }
        close(.event)
    }

    private mutating func close(_ kind: ItemKind) {
        var batch = kind == .user ? users : events
        batch = Batch(kind: kind, items: batch.items, positions: batch.positions, sequence: nextSequence)
        nextSequence += 1
        ready.append(batch)
        if kind == .user { users = freshBatch(.user) } else { events = freshBatch(.event) }
    }

    private static func append(_ data: UnsafeRawBufferPointer, kind: ItemKind, position: RecordPosition, to batch: inout Batch) {
        if !batch.positions.isEmpty { batch.items.append(UInt8(ascii: ",")) }
        if kind == .user {
            JSONWriter.append("{\"method\":\"post\",\"data_type\":\"user\",\"data\":", to: &batch.items)
        } else {
            JSONWriter.append("{\"method\":\"post\",\"data_type\":\"event\",\"data\":", to: &batch.items)
        }
        batch.items.append(contentsOf: data)
        batch.items.append(UInt8(ascii: "}"))
        batch.positions.append(position)
    }
}
