/// Maps one Segment-spec line to one Intercom bulk item, a skip, or a reject (contract §2-§6).
///
/// The mapper owns every buffer it needs and reuses them from record to record: after warm-up a
/// record costs no heap allocation on the common path. The item's `data` object is left in
/// `data` (a view of the mapper's buffer) until the next call.
public struct RecordMapper {
    /// The `data` object of the last mapped item, as compact JSON, in place: a view of the
    /// mapper's buffer (no copy, no allocation), valid until the next `map` call.
    public var data: ItemData { ItemData(bytes: out.bytes) }

    /// The same bytes as `data`, as a raw buffer; valid until the next `map` call. Properties
    /// rather than closure-taking methods, so that reading them never makes Swift copy the mapper.
    public var itemBytes: UnsafeRawBufferPointer { out.bytes }
    /// Warnings counted over every record mapped so far.
    public var warnings = ReasonCounts<MappingWarning>()
    /// Whether the last record mapped was a group call (REST mode's report compares call counts per record type).
    public private(set) var lastWasGroup = false

    var parser: JSONParser
    var attributes = AttributeCollector()
    /// Where the item is written; `itemBytes` lends it.
    var out = OutputBuffer(capacity: 4096)
    var scratch = OutputBuffer(capacity: 256)
    /// The current record's root members that the rules read, found in one pass.
    var fields = RootFields()

    public init(maxDepth: Int = JSONParser.defaultMaxDepth) {
        parser = JSONParser(maxDepth: maxDepth)
    }

    /// Maps one line (without its terminator). Blank lines are the caller's to skip: they are not records.
    public mutating func map(_ line: UnsafeRawBufferPointer) -> MapOutcome {
        do {
            try parser.parse(line)
        } catch {
            return .rejected(.invalidJSON, detail: error.description)
        }
        // The buffers are written without per-byte uniqueness checks: make sure, once, that no
        // copy of this mapper shares them.
        out.makeUnique()
        scratch.makeUnique()
        attributes.makeUnique()
        return parser.withNodes { nodes in
            let view = JSONView(bytes: line, nodes: nodes)
            return map(view)
        }
    }

    /// A mapped item's bytes, borrowed from the mapper: a collection of UTF-8 bytes that is valid
    /// until the mapper maps the next line. Copy it (`Array(data)`) to keep it longer.
    public struct ItemData: RandomAccessCollection {
        public let bytes: UnsafeRawBufferPointer
        public var startIndex: Int { 0 }
        public var endIndex: Int { bytes.count }
        public subscript(position: Int) -> UInt8 { bytes[position] }

        /// Lends the bytes, as `Array.withUnsafeBytes` does.
        @inline(__always)
        public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
            try body(bytes)
        }
    }

    enum RecordType { case identify, track, group }

    mutating func map(_ view: JSONView) -> MapOutcome {
        let root = JSONView.root
        guard view.isObject(root) else {
            return .rejected(.notAnObject, detail: "the line is a JSON \(view.kind(root)), not an object")
        }
        fields = RootFields(view)
        guard let typeNode = fields.type, !view.isNull(typeNode) else {
            return .rejected(.missingType, detail: "the record has no \"type\"")
        }
        let type: RecordType
        switch Self.recordKind(view, typeNode) {
        case .unsupported: return .skipped(.unsupportedType)
        case .unknown: return .rejected(.unknownType, detail: "unknown type \(describe(view, typeNode))")
        case .track: type = .track
        case .identify: type = .identify
        case .group: type = .group
        }
        if Self.intercomDisabled(view, fields) { return .skipped(.integrationsDisabled) }

        lastWasGroup = type == .group
        out.removeAll()
        switch type {
        case .identify: return mapIdentify(view)
        case .track: return mapTrack(view)
        case .group: return mapGroup(view)
        }
    }

    enum RecordKind { case track, identify, group, unsupported, unknown }

    /// The record `type`, compared ignoring ASCII case; plain strings are told apart by length first.
    static func recordKind(_ view: JSONView, _ typeNode: Int) -> RecordKind {
        func matches(_ literal: StaticString) -> Bool { view.stringEqualsIgnoringCase(typeNode, literal) }
        let node = view.nodes[typeNode]
        if node.kind == .string, !node.flag {
            switch node.end - node.start {
            case 4: return matches("page") ? .unsupported : .unknown
            case 5: return matches("track") ? .track : matches("alias") ? .unsupported : matches("group") ? .group : .unknown
            case 6: return matches("screen") ? .unsupported : .unknown
            case 8: return matches("identify") ? .identify : .unknown
            default: return .unknown
            }
        }
        if matches("page") || matches("screen") || matches("alias") { return .unsupported }
        if matches("track") { return .track }
        if matches("identify") { return .identify }
        if matches("group") { return .group }
        return .unknown
    }

    /// `integrations.Intercom == false`, or `integrations.All == false` unless Intercom is
    /// `true` or an object (settings such as `user_hash` mean "on").
    static func intercomDisabled(_ view: JSONView, _ fields: RootFields) -> Bool {
        guard let integrations = fields.integrations, view.isObject(integrations) else { return false }
        let intercom = view.member(integrations, "Intercom")
        if let intercom, view.kind(intercom) == .false { return true }
        if let all = view.member(integrations, "All"), view.kind(all) == .false {
            guard let intercom else { return true }
            return !(view.kind(intercom) == .true || view.kind(intercom) == .object)
        }
        return false
    }

    // MARK: Shared pieces

    /// The user's traits (§2): identify's `traits`, or `context.traits` when that is missing,
    /// not an object or empty; for track and group, `context.traits`.
    static func userTraits(_ view: JSONView, _ fields: RootFields, _ type: RecordType) -> Int? {
        let contextTraits = fields.contextTraits.flatMap { view.isObject($0) ? $0 : nil }
        if type == .identify, let traits = fields.traits, view.isObject(traits), view.memberCount(traits) > 0 {
            return traits
        }
        return contextTraits
    }

    struct Identity {
        var userID: Int?
        var email: Int?
        var isAnonymous: Bool { userID == nil && email == nil }
    }

    /// User identity (§2): `userId`, else the traits' `userId`, else their `id` (numbers as their
    /// text); email from the traits, else `context.traits`, else (track) `properties.email`.
    static func identity(_ view: JSONView, _ fields: RootFields, traits: Int?, type: RecordType) -> Identity {
        func usableID(_ i: Int?) -> Int? {
            guard let i else { return nil }
            switch view.kind(i) {
            case .string: return view.isEmptyString(i) ? nil : i
            case .number: return i
            default: return nil
            }
        }
        func usableEmail(_ i: Int?) -> Int? {
            guard let i, view.isString(i), !view.isEmptyString(i) else { return nil }
            return i
        }
        var identity = Identity()
        identity.userID =
            usableID(fields.userId)
            ?? usableID(traits.flatMap { view.member($0, "userId") })
            ?? usableID(traits.flatMap { view.member($0, "id") })
        let contextTraits = fields.contextTraits
        identity.email =
            usableEmail(traits.flatMap { view.member($0, "email") })
            ?? usableEmail(contextTraits.flatMap { view.member($0, "email") })
        if identity.email == nil, type == .track {
            identity.email = usableEmail(fields.properties.flatMap { view.member($0, "email") })
        }
        return identity
    }

    /// Writes `"user_id":"..."` (a number as its text, quoted) and/or `"email":"..."`.
    mutating func writeIdentity(_ view: JSONView, _ identity: Identity, both: Bool) {
        if let id = identity.userID {
            ObjectWriter.key("user_id", to: &out)
            writeIDString(view, id)
            if !both { return }
        }
        if let email = identity.email {
            ObjectWriter.key("email", to: &out)
            JSONWriter.appendString(view, email, scratch: &scratch, to: &out)
        }
    }

    /// An id given as a string or a number, written as a JSON string.
    mutating func writeIDString(_ view: JSONView, _ i: Int) {
        if view.isString(i) {
            JSONWriter.appendString(view, i, scratch: &scratch, to: &out)
        } else {
            out.append(UInt8(ascii: "\""))
            out.appendBytes(view.raw(i))
            out.append(UInt8(ascii: "\""))
        }
    }

    /// The record timestamp (§2): the first of these that is present and not null decides.
    enum RecordTime {
        case missing, invalid
        case valid(Int64)
    }

    static func recordTime(_ view: JSONView, _ fields: RootFields) -> RecordTime {
        func decide(_ field: Int?) -> RecordTime? {
            guard let field, !view.isNull(field) else { return nil }
            return Timestamp.unixSeconds(view, field).map { .valid($0) } ?? .invalid
        }
        return decide(fields.timestamp) ?? decide(fields.originalTimestamp)
            ?? decide(fields.receivedAt) ?? decide(fields.sentAt) ?? .missing
    }

    /// A short, safe description of a value for reject details.
    func describe(_ view: JSONView, _ i: Int) -> String {
        switch view.kind(i) {
        case .string:
            let s = view.string(i) ?? ""
            return s.count > 40 ? "\"\(s.prefix(40))...\"" : "\"\(s)\""
        case .object: return "(an object)"
        case .array: return "(an array)"
        default: return String(decoding: view.raw(i), as: UTF8.self)
        }
    }
}

/// The root members the mapping rules read, found in one pass over the root instead of one
/// scan per lookup (a record's rules look up a root member about sixteen times). Like
/// `JSONView.member`, a repeated key gives its last value.
struct RootFields {
    var type: Int?
    var userId: Int?
    var traits: Int?
    var context: Int?
    var properties: Int?
    var event: Int?
    var groupId: Int?
    var integrations: Int?
    var timestamp: Int?
    var originalTimestamp: Int?
    var receivedAt: Int?
    var sentAt: Int?
    /// `context.traits` (whatever its kind), when `context` is an object that has it.
    var contextTraits: Int?

    init() {}

    init(_ view: JSONView) {
        var key = JSONView.root + 1
        let end = Int(view.nodes[JSONView.root].subtreeEnd)
        while key < end {
            let value = key + 1
            defer { key = Int(view.nodes[value].subtreeEnd) }
            let node = view.nodes[key]
            if node.flag {
                assignByDecodedName(view, key, value)
                continue
            }
            let name = view.bytes + Int(node.start)
            @inline(__always) func equals(_ literal: StaticString) -> Bool {
                memcmpBytes(name, literal.utf8Start, literal.utf8CodeUnitCount)
            }
            switch node.end - node.start {
            case 4: if equals("type") { type = value }
            case 5: if equals("event") { event = value }
            case 6:
                if equals("userId") {
                    userId = value
                } else if equals("traits") {
                    traits = value
                } else if equals("sentAt") {
                    sentAt = value
                }
            case 7:
                if equals("context") { context = value } else if equals("groupId") { groupId = value }
            case 9: if equals("timestamp") { timestamp = value }
            case 10:
                if equals("properties") { properties = value } else if equals("receivedAt") { receivedAt = value }
            case 12: if equals("integrations") { integrations = value }
            case 17: if equals("originalTimestamp") { originalTimestamp = value }
            default: break
            }
        }
        contextTraits = context.flatMap { view.member($0, "traits") }
    }

    /// A key written with escapes (`"\u0074ype"`): compared after decoding, as `member` does.
    private mutating func assignByDecodedName(_ view: JSONView, _ key: Int, _ value: Int) {
        if view.stringEquals(key, "type") { type = value }
        if view.stringEquals(key, "event") { event = value }
        if view.stringEquals(key, "userId") { userId = value }
        if view.stringEquals(key, "traits") { traits = value }
        if view.stringEquals(key, "sentAt") { sentAt = value }
        if view.stringEquals(key, "context") { context = value }
        if view.stringEquals(key, "groupId") { groupId = value }
        if view.stringEquals(key, "timestamp") { timestamp = value }
        if view.stringEquals(key, "properties") { properties = value }
        if view.stringEquals(key, "receivedAt") { receivedAt = value }
        if view.stringEquals(key, "integrations") { integrations = value }
        if view.stringEquals(key, "originalTimestamp") { originalTimestamp = value }
    }
}
