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
/// (`{"method":"post","data_type":...,"data":{...}}`), which a destination wraps in its request body.
///
/// A batch also carries its checkpoint mark: once it and every unit before it (by `sequence`) is
/// settled, the input's checkpoint may move to `mark`. A batch without items is a mark alone (the
/// end of a chunk, of a quiet spell, of an input), settled as soon as it arrives.
public struct Batch: Sendable {
    public let kind: ItemKind
    public internal(set) var items: [UInt8]
    public internal(set) var positions: [RecordPosition]
    /// Monotonic number in the order units were closed: acknowledgements are applied in this order.
    public let sequence: Int
    public internal(set) var mark: CheckpointMark?
    /// Where the router stood for `mark`, before the reader turns it into a checkpoint entry.
    var routedThrough: RoutingSnapshot?

    public var count: Int { positions.count }
    /// A unit that only carries a mark: nothing to send.
    public var isMarkOnly: Bool { positions.isEmpty }

    public init(kind: ItemKind, items: [UInt8], positions: [RecordPosition], sequence: Int, mark: CheckpointMark? = nil) {
        self.kind = kind
        self.items = items
        self.positions = positions
        self.sequence = sequence
        self.mark = mark
    }
}

/// Groups mapped items into per-endpoint batches of at most `batchSize` items and `maxBodyBytes`.
///
/// Ordering rule (so Intercom has a user before events that follow it in the input): when an
/// events batch closes while user items are pending, the users batch closes first.
///
/// Bound rule (so a checkpoint is never held back far behind what was sent): when a users batch
/// closes while the events batch holds a record older than the users batch's first one, the events
/// batch closes too. So at most one batch of one kind is sent past a record still waiting in the
/// other, and what a crash re-sends stays within the in-flight window plus one batch.
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
            if !users.positions.isEmpty, users.items.count + itemBytes + Self.wrapperAllowance > maxBodyBytes { closeUsers() }
            Self.append(data, kind: .user, position: position, to: &users)
            if users.positions.count == batchSize { closeUsers() }
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
        case (let u?, let e?): return Self.precedes(u, e) ? u : e
        case (let u, let e): return u ?? e
        }
    }
    public var pendingCount: Int { users.positions.count + events.positions.count }

    private mutating func closeEvents() {
        if !users.positions.isEmpty { close(.user) }
        close(.event)
    }

    private mutating func closeUsers() {
        let firstUser = users.positions.first
        close(.user)
        if let firstUser, let firstEvent = events.positions.first, Self.precedes(firstEvent, firstUser) { close(.event) }
    }

    /// Whether the open batch of `kind` holds records.
    public func isOpen(_ kind: ItemKind) -> Bool {
        kind == .user ? !users.positions.isEmpty : !events.positions.isEmpty
    }

    /// A sequence number for a unit that carries only a mark, in order with the batches.
    mutating func takeSequence() -> Int {
        defer { nextSequence += 1 }
        return nextSequence
    }

    /// Sets the point the closed batch at `index` of `ready` reaches.
    mutating func setRoutedThrough(_ snapshot: RoutingSnapshot, at index: Int) {
        guard ready.indices.contains(index) else { return }
        ready[index].routedThrough = snapshot
    }

    static func precedes(_ a: RecordPosition, _ b: RecordPosition) -> Bool { (a.input, a.line) < (b.input, b.line) }

    /// How many batches of each kind closed so far: tells when the records pending at some point are all in closed batches.
    public private(set) var usersClosed = 0
    public private(set) var eventsClosed = 0

    private mutating func close(_ kind: ItemKind) {
        if kind == .user { usersClosed += 1 } else { eventsClosed += 1 }
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
