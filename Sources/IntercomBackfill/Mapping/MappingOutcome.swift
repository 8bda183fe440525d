/// Why a record was skipped: counted in the report, not written anywhere (contract §2).
public enum SkipReason: String, CaseIterable, Sendable {
    case unsupportedType = "unsupported_type"
    case integrationsDisabled = "integrations_disabled"
    case anonymous
}

/// Why a line was rejected by the mapper: written to the rejects file with its source line.
public enum RejectReason: String, CaseIterable, Sendable {
    case invalidJSON = "invalid_json"
    case notAnObject = "not_an_object"
    case missingType = "missing_type"
    case unknownType = "unknown_type"
    case missingEventName = "missing_event_name"
    case invalidTimestamp = "invalid_timestamp"
    case missingGroupID = "missing_group_id"
    case lineTooLong = "line_too_long"
}

/// Something in a mapped record that could not be used as is: counted, the item still goes.
public enum MappingWarning: String, CaseIterable, Sendable {
    case invalidCreatedAt = "invalid_created_at"
    case invalidLastRequestAt = "invalid_last_request_at"
    case invalidCompanyCreatedAt = "invalid_company_created_at"
    case stringTruncated = "string_truncated"
    case metadataKeysDropped = "metadata_keys_dropped"
    /// REST mode (contract §8.3): a custom attribute value of another type than the attribute's, left out.
    case attributeTypeMismatch = "attribute_type_mismatch"
    /// REST mode: a custom attribute Intercom does not (or would not) create; its values are left out.
    case attributeNotCreated = "attribute_not_created"
}

/// The Intercom bulk endpoint an item goes to.
public enum ItemKind: Int, Sendable, CaseIterable {
    case user = 0
    case event = 1

    public var path: String { self == .user ? "/bulk/users" : "/bulk/events" }
    public var dataType: String { self == .user ? "user" : "event" }
}

/// What became of one record: exactly one bucket (contract §2).
public enum MapOutcome: Equatable, Sendable {
    /// An item whose `data` object is in the mapper's `data` buffer.
    case mapped(ItemKind)
    case skipped(SkipReason)
    case rejected(RejectReason, detail: String)
}

/// Counters indexed by a `CaseIterable` enum, so the hot path increments an array slot rather
/// than hashing a string key.
public struct ReasonCounts<Reason: RawRepresentable & CaseIterable & Hashable>: Sendable, Equatable
where Reason.RawValue == String, Reason.AllCases: Sendable {
    public private(set) var counts: [Int]

    public init() { counts = Array(repeating: 0, count: Reason.allCases.count) }

    @inline(__always)
    public mutating func add(_ reason: Reason, _ n: Int = 1) {
        if n == 0 { return }
        counts[index(of: reason)] += n
    }

    public subscript(reason: Reason) -> Int { counts[index(of: reason)] }

    public var total: Int { counts.reduce(0, +) }

    /// Non-zero counts keyed by the contract's codes.
    public var byCode: [String: Int] {
        var result: [String: Int] = [:]
        for (k, reason) in Reason.allCases.enumerated() where counts[k] > 0 { result[reason.rawValue] = counts[k] }
        return result
    }

    public mutating func merge(_ other: ReasonCounts<Reason>) {
        for k in counts.indices { counts[k] += other.counts[k] }
    }

    @inline(__always)
    private func index(of reason: Reason) -> Int {
        // The reasons are enums without payloads: their one-byte value is the case's declaration
        // index, which is its place in the synthesized `allCases`. That avoids building
        // `allCases` and searching it on every count (the skip path runs it for 1 record in 5).
        if MemoryLayout<Reason>.size == 1 {
            let tag = Int(withUnsafeBytes(of: reason) { $0[0] })
            if tag < counts.count {
                assert(Self.slowIndex(of: reason) == tag, "\(Reason.self) cases are not in declaration order")
                return tag
            }
        }
        return Self.slowIndex(of: reason)
    }

    private static func slowIndex(of reason: Reason) -> Int {
        Reason.allCases.firstIndex(of: reason).map { Reason.allCases.distance(from: Reason.allCases.startIndex, to: $0) } ?? 0
    }
}
