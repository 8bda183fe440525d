/// Maps one Segment-spec line to one Intercom bulk item, a skip, or a reject (contract §2-§6).
///
/// The mapper owns every buffer it needs and reuses them from record to record: after warm-up a
/// record costs no heap allocation on the common path. The item's `data` object is left in
/// `data` until the next call.
public struct RecordMapper {
    /// The `data` object of the last mapped item, as compact JSON.
    public internal(set) var data: [UInt8] = []
    /// Warnings counted over every record mapped so far.
    public var warnings = ReasonCounts<MappingWarning>()

    var parser: JSONParser
    var attributes = AttributeCollector()
    /// Where the item is written (copied to `data` once it is complete).
    var out = OutputBuffer(capacity: 4096)
    var scratch = OutputBuffer(capacity: 256)

    public init(maxDepth: Int = JSONParser.defaultMaxDepth) {
        parser = JSONParser(maxDepth: maxDepth)
        data.reserveCapacity(4096)
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
        let outcome = parser.withNodes { nodes in
            let view = JSONView(bytes: line, nodes: nodes)
            return map(view)
        }
        if case .mapped = outcome {
            data.removeAll(keepingCapacity: true)
            data.append(contentsOf: out.bytes)
        }
        return outcome
    }

    enum RecordType { case identify, track, group }

    mutating func map(_ view: JSONView) -> MapOutcome {
        let root = JSONView.root
        guard view.isObject(root) else { return .rejected(.notAnObject, detail: "the line is a JSON \(view.kind(root)), not an object") }
        guard let typeNode = view.member(root, "type"), !view.isNull(typeNode) else {
            return .rejected(.missingType, detail: "the record has no \"type\"")
        }
        if view.stringEqualsIgnoringCase(typeNode, "page") || view.stringEqualsIgnoringCase(typeNode, "screen")
            || view.stringEqualsIgnoringCase(typeNode, "alias") {
            return .skipped(.unsupportedType)
        }
        let type: RecordType
        if view.stringEqualsIgnoringCase(typeNode, "track") {
            type = .track
        } else if view.stringEqualsIgnoringCase(typeNode, "identify") {
            type = .identify
        } else if view.stringEqualsIgnoringCase(typeNode, "group") {
            type = .group
        } else {
            return .rejected(.unknownType, detail: "unknown type \(describe(view, typeNode))")
        }
        if Self.intercomDisabled(view) { return .skipped(.integrationsDisabled) }

        out.removeAll()
        switch type {
        case .identify: return mapIdentify(view)
        case .track: return mapTrack(view)
        case .group: return mapGroup(view)
        }
    }

    /// `integrations.Intercom == false`, or `integrations.All == false` unless Intercom is
    /// `true` or an object (settings such as `user_hash` mean "on").
    static func intercomDisabled(_ view: JSONView) -> Bool {
        guard let integrations = view.member(JSONView.root, "integrations"), view.isObject(integrations) else { return false }
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
    static func userTraits(_ view: JSONView, _ type: RecordType) -> Int? {
        let contextTraits = view.member(JSONView.root, "context").flatMap { view.member($0, "traits") }.flatMap { view.isObject($0) ? $0 : nil }
        if type == .identify, let traits = view.member(JSONView.root, "traits"), view.isObject(traits), view.memberCount(traits) > 0 {
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
    static func identity(_ view: JSONView, traits: Int?, type: RecordType) -> Identity {
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
        let root = JSONView.root
        var identity = Identity()
        identity.userID = usableID(view.member(root, "userId"))
            ?? usableID(traits.flatMap { view.member($0, "userId") })
            ?? usableID(traits.flatMap { view.member($0, "id") })
        let contextTraits = view.member(root, "context").flatMap { view.member($0, "traits") }
        identity.email = usableEmail(traits.flatMap { view.member($0, "email") })
            ?? usableEmail(contextTraits.flatMap { view.member($0, "email") })
        if identity.email == nil, type == .track {
            identity.email = usableEmail(view.member(root, "properties").flatMap { view.member($0, "email") })
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
    enum RecordTime { case missing, invalid, valid(Int64) }

    static func recordTime(_ view: JSONView) -> RecordTime {
        func decide(_ field: Int?) -> RecordTime? {
            guard let field, !view.isNull(field) else { return nil }
            return Timestamp.unixSeconds(view, field).map { .valid($0) } ?? .invalid
        }
        let root = JSONView.root
        return decide(view.member(root, "timestamp")) ?? decide(view.member(root, "originalTimestamp"))
            ?? decide(view.member(root, "receivedAt")) ?? decide(view.member(root, "sentAt")) ?? .missing
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
