/// What the router had counted at a line boundary of the current input: where a checkpoint may
/// later move to, with the counts that go with it.
struct RoutingSnapshot: Sendable {
    /// The last line routed before this point (0 at the start of the input).
    var line: Int
    /// Uncompressed offset just past that line.
    var offset: Int64
    var report: RunReport
    var warnings: ReasonCounts<MappingWarning>
}

/// The batch closes that the records routed up to some point wait for (0: none).
struct PendingCloses {
    var users: Int
    var events: Int
}

/// Puts each line in its bucket: mapped into a batch, skipped (counted), or rejected (counted
/// and written down). Kept a value type so the per-line path touches no class or lock.
///
/// For checkpoints it also knows, whenever batches close, the point before which every record is
/// in a closed batch or settled already (skipped, rejected): the start of the oldest batch still
/// open, else the line just routed. That point travels with the last closed batch.
struct RecordRouter {
    var mapper = RecordMapper()
    var batcher: Batcher
    var report = RunReport()
    let rejects: RejectsWriter
    var currentInput = 0
    var currentSource = ""
    /// Snapshots are taken only when a checkpoint will use them.
    var leavesMarks = false
    /// The line boundary after the last line routed.
    private(set) var lastLine = 0
    private(set) var lastOffset: Int64 = 0
    /// Where each open batch started: nothing before it is pending in the batcher.
    private var usersOpenedAt: RoutingSnapshot?
    private var eventsOpenedAt: RoutingSnapshot?

    init(batchSize: Int, rejects: RejectsWriter) {
        batcher = Batcher(batchSize: batchSize)
        self.rejects = rejects
    }

    /// A new input starts (or resumes after `line`, ending at `offset`).
    mutating func start(input: Int, source: String, line: Int = 0, offset: Int64 = 0) {
        currentInput = input
        currentSource = source
        lastLine = line
        lastOffset = offset
        // Batches still open hold earlier inputs' records: for this input nothing is pending before its start.
        if usersOpenedAt != nil { usersOpenedAt = snapshot() }
        if eventsOpenedAt != nil { eventsOpenedAt = snapshot() }
    }

    /// What must close before the records routed so far are all in closed batches.
    var pendingCloses: PendingCloses {
        PendingCloses(
            users: batcher.isOpen(.user) ? batcher.usersClosed + 1 : 0,
            events: batcher.isOpen(.event) ? batcher.eventsClosed + 1 : 0)
    }

    /// Whether the batches open at `pending` have all closed since.
    func hasClosed(_ pending: PendingCloses) -> Bool {
        batcher.usersClosed >= pending.users && batcher.eventsClosed >= pending.events
    }

    @inline(__always)
    mutating func route(_ line: LineSlice) throws {
        defer {
            lastLine = line.number
            lastOffset = line.endOffset
        }
        if line.isTooLong {
            report.records += 1
            report.rejected.add(.lineTooLong)
            try rejects.write(
                source: currentSource, line: line.number, reason: RejectReason.lineTooLong.rawValue,
                detail:
                    "the line is \(line.length) bytes, longer than --max-line-bytes; its first \(line.bytes.count) bytes are kept here",
                record: utf8Prefix(line.bytes))
            return
        }
        if isBlank(line.bytes) { return }
        report.records += 1
        // The warnings before this record, should it open a batch (rare: right after a close).
        let warningsBefore = leavesMarks && !(batcher.isOpen(.user) && batcher.isOpen(.event)) ? mapper.warnings : nil
        switch mapper.map(line.bytes) {
        case .mapped(let kind):
            if kind == .user { report.mappedUsers += 1 } else { report.mappedEvents += 1 }
            if mapper.lastWasGroup { report.mappedGroups += 1 }
            let position = RecordPosition(input: currentInput, line: line.number, endOffset: line.endOffset)
            if let warningsBefore, !batcher.isOpen(kind) { noteOpening(kind, warnings: warningsBefore) }
            let closedBefore = batcher.readyCount
            mapper.data.withUnsafeBytes { batcher.add(kind, data: $0, position: position) }
            if leavesMarks, batcher.readyCount > closedBefore {
                noteClosing(afterLine: line, kind: kind, closedFrom: closedBefore)
            }
        case .skipped(let reason):
            report.skipped.add(reason)
        case .rejected(let reason, let detail):
            report.rejected.add(reason)
            try rejects.write(
                source: currentSource, line: line.number, reason: reason.rawValue, detail: detail, record: line.bytes)
        }
    }

    /// The point a checkpoint may move to now: before the oldest open batch, else the last line routed.
    var settledPoint: RoutingSnapshot {
        switch (usersOpenedAt, eventsOpenedAt) {
        case (let u?, let e?): return u.line <= e.line ? u : e
        case (let u, let e): return u ?? e ?? snapshot()
        }
    }

    /// Closes the open batches (end of input, a quiet followed file), with the point they reach.
    mutating func flush() {
        let closedBefore = batcher.readyCount
        batcher.flush()
        if leavesMarks, batcher.readyCount > closedBefore {
            markGroup(from: closedBefore)
            batcher.setRoutedThrough(snapshot(), at: batcher.readyCount - 1)
        }
        usersOpenedAt = nil
        eventsOpenedAt = nil
    }

    /// The line boundary after the last line routed, with the counts so far.
    var currentPoint: RoutingSnapshot { snapshot() }

    private func snapshot() -> RoutingSnapshot {
        RoutingSnapshot(line: lastLine, offset: lastOffset, report: report, warnings: mapper.warnings)
    }

    /// The record just counted opens a batch: the point before it (its counts taken back out).
    private mutating func noteOpening(_ kind: ItemKind, warnings: ReasonCounts<MappingWarning>) {
        var before = snapshot()
        before.report.records -= 1
        if kind == .user { before.report.mappedUsers -= 1 } else { before.report.mappedEvents -= 1 }
        before.warnings = warnings
        if kind == .user { usersOpenedAt = before } else { eventsOpenedAt = before }
    }

    /// Batches closed while routing `line`: each carries the point everything before which is in
    /// it, in batches before it, or settled. In a group closed together, a batch's point is the
    /// start of the next one (still open when it closed); the last one's is the start of the
    /// oldest batch still open, else the end of this line.
    private mutating func noteClosing(afterLine line: LineSlice, kind: ItemKind, closedFrom first: Int) {
        markGroup(from: first)
        for closedKind in Set(batcher.ready[first...].map(\.kind)) {
            var start: RoutingSnapshot?
            if batcher.isOpen(closedKind) {
                // Closed by the body-size cap before this record, which opened the kind's next batch.
                start = snapshot()
                start!.report.records -= 1
                if kind == .user { start!.report.mappedUsers -= 1 } else { start!.report.mappedEvents -= 1 }
            }
            if closedKind == .user { usersOpenedAt = start } else { eventsOpenedAt = start }
        }
        var point = settledPoint
        if usersOpenedAt == nil, eventsOpenedAt == nil {
            point.line = line.number
            point.offset = line.endOffset
        }
        batcher.setRoutedThrough(point, at: batcher.readyCount - 1)
    }

    /// Every batch of a group closed together but the last reaches the start of the one after it.
    private mutating func markGroup(from first: Int) {
        for index in first..<max(first, batcher.readyCount - 1) {
            let next = batcher.ready[index + 1].kind
            if let start = next == .user ? usersOpenedAt : eventsOpenedAt { batcher.setRoutedThrough(start, at: index) }
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
        while end > 0, back < 3, bytes[end - 1] & 0xC0 == 0x80 {
            end -= 1
            back += 1
        }
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
