/// A mapped item as REST mode sees it (contract §8.3): the bulk item of §3-§5, read back into
/// the parts that become separate 2.x calls. Values are kept as the exact JSON text the mapping
/// wrote, so what is sent is what a bulk run would have sent.

/// One JSON value as text, with what kind of value it is.
struct JSONText: Sendable, Hashable {
    var bytes: [UInt8]
    var kind: JSONKind
    /// A number without fraction or exponent.
    var isInteger: Bool

    static let null = JSONText(bytes: Array("null".utf8), kind: .null, isInteger: false)

    init(bytes: [UInt8], kind: JSONKind, isInteger: Bool) {
        self.bytes = bytes
        self.kind = kind
        self.isInteger = isInteger
    }

    /// The value at `index`, quotes included for a string.
    init(_ view: JSONView, _ index: Int) {
        let node = view.nodes[index]
        let start = Int(node.start) - (node.kind == .string ? 1 : 0)
        let end = Int(node.end) + (node.kind == .string ? 1 : 0)
        bytes = Array(UnsafeRawBufferPointer(start: view.bytes + start, count: end - start))
        kind = node.kind
        isInteger = node.kind == .number && node.flag
    }

    /// The data type a first value gives a new attribute (contract §8.3); nil for null and containers.
    var attributeType: String? {
        switch kind {
        case .string: return "string"
        case .number: return isInteger ? "integer" : "float"
        case .true, .false: return "boolean"
        default: return nil
        }
    }

    /// Whether an attribute of `dataType` takes this value: an integer is a valid float, a float
    /// is not an integer, a date takes unix seconds, null clears any.
    func fits(_ dataType: String) -> Bool {
        switch (kind, dataType) {
        case (.null, _): return true
        case (.string, "string"): return true
        case (.number, "float"): return true
        case (.number, "integer"), (.number, "date"): return isInteger
        case (.true, "boolean"), (.false, "boolean"): return true
        default: return false
        }
    }

    var hash: UInt64 {
        var hasher = StableHash()
        bytes.withUnsafeBytes { hasher.update($0) }
        return hasher.value
    }
}

/// One named value of a contact or company: a standard field or a custom attribute.
struct FieldValue: Sendable {
    var name: String
    var value: JSONText
}

/// A company of a user item: upserted and joined, or (`remove: true`) left.
struct CompanyChange: Sendable {
    var companyID: String
    var remove: Bool
    var fields: [FieldValue]
    var attributes: [FieldValue]
}

/// A user item (identify, group): an upsert of the contact of `key`.
struct ContactChange: Sendable {
    var externalID: String?
    var email: String?
    /// 2.x names: `email`, `name`, `phone`, `signed_up_at`, `last_seen_at`, `unsubscribed_from_emails`.
    var fields: [FieldValue]
    var attributes: [FieldValue]
    var companies: [CompanyChange]
    /// Hashes of the items it carries (one, or more once later ones are merged in).
    var itemHashes: [UInt64] = []

    /// Who "the same user" is (contract §8.3a): the external id, else the email.
    var key: String { externalID.map { "u:" + $0 } ?? "e:" + (email ?? "").lowercased() }

    /// Later values win, field by field, in input order (merging updates that wait for budget).
    mutating func absorb(_ later: ContactChange) {
        if externalID == nil { externalID = later.externalID }
        Self.overlay(&fields, later.fields)
        Self.overlay(&attributes, later.attributes)
        companies += later.companies
        itemHashes += later.itemHashes
    }

    static func overlay(_ base: inout [FieldValue], _ later: [FieldValue]) {
        for field in later {
            if let index = base.firstIndex(where: { $0.name == field.name }) {
                base[index].value = field.value
            } else {
                base.append(field)
            }
        }
    }
}

/// A track item: one `POST /events`, its body the item as it is.
struct EventChange: Sendable {
    var key: String
    var body: [UInt8]
    /// Named by email alone (a peer looks the user up first: one call more, §8.4).
    var emailOnly: Bool
}

enum RESTItem: Sendable {
    case contact(ContactChange)
    case event(EventChange)
}

enum RESTItemReader {
    /// Bulk fields with a 2.x contact field, by their 2.x name. `last_seen_ip` and
    /// `last_seen_user_agent` cannot be written in 2.x (README) and are left out.
    static let contactFields: [(bulk: StaticString, rest: String)] = [
        ("email", "email"), ("name", "name"), ("phone", "phone"), ("signed_up_at", "signed_up_at"),
        ("last_request_at", "last_seen_at"), ("unsubscribed_from_emails", "unsubscribed_from_emails"),
    ]
    static let companyFields: [StaticString] = [
        "name", "plan", "monthly_spend", "remote_created_at", "size", "website", "industry",
    ]

    /// The items of a batch, in order (an item that does not parse, which the mapper never
    /// writes, is nil and fails with `invalid_item`).
    static func items(of batch: Batch) -> [RESTItem?] {
        var result: [RESTItem?] = []
        result.reserveCapacity(batch.count)
        ItemScanner.forEachItemData(batch.items) { _, data in
            var parser = JSONParser()
            guard (try? parser.parse(data)) != nil else {
                result.append(nil)
                return
            }
            parser.withNodes { nodes in
                let view = JSONView(bytes: data, nodes: nodes)
                if batch.kind == .user, var change = contact(view) {
                    change.itemHashes = [StableHash.value(of: data)]
                    result.append(.contact(change))
                } else {
                    result.append(batch.kind == .user ? nil : event(view, data: data))
                }
            }
        }
        while result.count < batch.count { result.append(nil) }
        return result
    }

    private static func string(_ view: JSONView, _ key: StaticString, in object: Int = JSONView.root) -> String? {
        guard let index = view.member(object, key), view.isString(index) else { return nil }
        return view.string(index)
    }

    private static func contact(_ view: JSONView) -> ContactChange? {
        let root = JSONView.root
        let externalID = string(view, "user_id").flatMap { $0.isEmpty ? nil : $0 }
        let email = string(view, "email")
        guard externalID != nil || email != nil else { return nil }
        var change = ContactChange(externalID: externalID, email: email, fields: [], attributes: [], companies: [])
        for (bulk, rest) in contactFields {
            if let index = view.member(root, bulk) { change.fields.append(FieldValue(name: rest, value: JSONText(view, index))) }
        }
        if let object = view.member(root, "custom_attributes") { change.attributes = attributes(view, object) }
        if let list = view.member(root, "companies"), view.kind(list) == .array {
            view.forEachElement(list) { element in
                if let company = company(view, element) { change.companies.append(company) }
            }
        }
        return change
    }

    private static func company(_ view: JSONView, _ object: Int) -> CompanyChange? {
        guard view.isObject(object), let companyID = string(view, "company_id", in: object), !companyID.isEmpty else {
            return nil
        }
        let remove = view.member(object, "remove").map { view.kind($0) == .true } ?? false
        var change = CompanyChange(companyID: companyID, remove: remove, fields: [], attributes: [])
        guard !remove else { return change }
        for name in companyFields {
            if let index = view.member(object, name) {
                change.fields.append(FieldValue(name: name.description, value: JSONText(view, index)))
            }
        }
        if let attributes = view.member(object, "custom_attributes") { change.attributes = Self.attributes(view, attributes) }
        return change
    }

    private static func attributes(_ view: JSONView, _ object: Int) -> [FieldValue] {
        guard view.isObject(object) else { return [] }
        var result: [FieldValue] = []
        view.forEachMember(object) { key, value in
            guard let name = view.string(key) else { return }
            result.append(FieldValue(name: name, value: JSONText(view, value)))
        }
        return result
    }

    private static func event(_ view: JSONView, data: UnsafeRawBufferPointer) -> RESTItem? {
        let userID = string(view, "user_id").flatMap { $0.isEmpty ? nil : $0 }
        let email = string(view, "email")
        guard userID != nil || email != nil else { return nil }
        let key = userID.map { "u:" + $0 } ?? "e:" + (email ?? "").lowercased()
        return .event(EventChange(key: key, body: Array(data), emailOnly: userID == nil))
    }
}

/// What was last written to a contact or company, field by field, as hashes, and (contacts)
/// which items were applied: enough to tell that an item would change nothing, without keeping
/// anyone's data in the state store.
struct FieldFingerprints: Sendable, Equatable {
    private(set) var values: [UInt64: UInt64] = [:]
    /// Hashes of the user items applied to this contact, newest last (at most `appliedLimit`).
    private(set) var applied: [UInt64] = []
    static let appliedLimit = 256

    init() {}

    /// `[pair count][pairs of (name hash, value hash)][applied item hashes]`, 8-byte words.
    init(blob: [UInt8]?) {
        guard let blob, blob.count >= 8, blob.count % 8 == 0 else { return }
        blob.withUnsafeBytes { raw in
            let words = raw.count / 8
            let pairs = Int(min(UInt64(words), raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
            guard 1 + 2 * pairs <= words else { return }
            for k in 0..<pairs {
                let name = raw.loadUnaligned(fromByteOffset: 8 + 16 * k, as: UInt64.self)
                values[name] = raw.loadUnaligned(fromByteOffset: 16 + 16 * k, as: UInt64.self)
            }
            for word in (1 + 2 * pairs)..<words { applied.append(raw.loadUnaligned(fromByteOffset: 8 * word, as: UInt64.self)) }
        }
    }

    var blob: [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(8 + values.count * 16 + applied.count * 8)
        withUnsafeBytes(of: UInt64(values.count)) { result.append(contentsOf: $0) }
        for name in values.keys.sorted() {
            withUnsafeBytes(of: name) { result.append(contentsOf: $0) }
            withUnsafeBytes(of: values[name]!) { result.append(contentsOf: $0) }
        }
        for hash in applied { withUnsafeBytes(of: hash) { result.append(contentsOf: $0) } }
        return result
    }

    static func nameHash(_ name: String, namespace: String) -> UInt64 {
        var hasher = StableHash()
        var text = namespace + ":" + name
        text.withUTF8 { hasher.update(UnsafeRawBufferPointer($0)) }
        return hasher.value
    }

    /// Whether `value` is what was last written under `name`.
    func matches(_ name: String, namespace: String, _ value: JSONText) -> Bool {
        values[Self.nameHash(name, namespace: namespace)] == value.hash
    }

    mutating func record(_ name: String, namespace: String, _ value: JSONText) {
        values[Self.nameHash(name, namespace: namespace)] = value.hash
    }

    /// Whether every one of these items was applied to the contact already (a re-run of the same input).
    func appliedAll(_ items: [UInt64]) -> Bool {
        !items.isEmpty && items.allSatisfy(applied.contains)
    }

    mutating func noteApplied(_ items: [UInt64]) {
        applied.removeAll(where: items.contains)
        applied += items
        if applied.count > Self.appliedLimit { applied.removeFirst(applied.count - Self.appliedLimit) }
    }
}
