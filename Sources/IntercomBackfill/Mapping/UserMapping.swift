/// identify -> one `/bulk/users` item (contract §3).
extension RecordMapper {
    mutating func mapIdentify(_ view: JSONView) -> MapOutcome {
        let traits = Self.userTraits(view, fields, .identify)
        let identity = Self.identity(view, fields, traits: traits, type: .identify)
        if identity.isAnonymous { return .skipped(.anonymous) }

        out.append(UInt8(ascii: "{"))
        writeIdentity(view, identity, both: true)
        if let traits {
            writeName(view, traits)
            writeNonEmptyString(view, view.member(traits, "phone"), key: "phone")
            writeDate(view, view.member(traits, "createdAt"), key: "signed_up_at", warning: .invalidCreatedAt)
        }

        let context = fields.context.flatMap { view.isObject($0) ? $0 : nil }
        let active = context.flatMap { view.member($0, "active") }.map { view.kind($0) != .false } ?? true
        if active {
            let lastRequestAt = traits.flatMap { view.member($0, "lastRequestAt") }
            if let lastRequestAt, !view.isNull(lastRequestAt) {
                // An unusable lastRequestAt is left out, like an invalid record timestamp is not
                // replaced by the next field (§2): we do not guess.
                writeDate(view, lastRequestAt, key: "last_request_at", warning: .invalidLastRequestAt)
            } else if case .valid(let seconds) = Self.recordTime(view, fields) {
                ObjectWriter.key("last_request_at", to: &out)
                JSONWriter.appendInt(seconds, to: &out)
            }
            if let context {
                writeNonEmptyString(view, view.member(context, "ip"), key: "last_seen_ip")
                writeNonEmptyString(view, view.member(context, "userAgent"), key: "last_seen_user_agent")
            }
        }

        let contextFlag = context.flatMap { view.member($0, "Intercom") }.flatMap { view.member($0, "unsubscribedFromEmails") }
        let traitFlag = traits.flatMap { view.member($0, "unsubscribedFromEmails") }
        func boolean(_ i: Int?) -> Int? { i.flatMap { view.kind($0) == .true || view.kind($0) == .false ? $0 : nil } }
        if let flag = boolean(contextFlag) ?? boolean(traitFlag) {
            ObjectWriter.key("unsubscribed_from_emails", to: &out)
            out.appendBytes(view.raw(flag))
        }

        if let traits {
            writeUserCompanies(view, traits)
            writeCustomAttributes(view, traits, isReserved: Self.isReservedTrait)
        }
        out.append(UInt8(ascii: "}"))
        return .mapped(.user)
    }

    /// `"custom_attributes":{...}` from every member of `object` that `isReserved` does not claim
    /// (user traits and company traits alike, §6); strings cut to 255 scalars, cuts counted.
    mutating func writeCustomAttributes(_ view: JSONView, _ object: Int, isReserved: (JSONView, Int) -> Bool) {
        attributes.reset()
        view.forEachMember(object) { key, value in
            guard !isReserved(view, key) else { return }
            attributes.addFlattened(view: view, key: key, value: value, maxScalars: AttributeCollector.maxStringScalars)
        }
        attributes.write(key: "custom_attributes", to: &out)
        warnings.add(.stringTruncated, attributes.truncatedStrings)
    }

    /// Traits with a field of their own in the item, never sent as custom attributes.
    static func isReservedTrait(_ view: JSONView, _ key: Int) -> Bool {
        // Compare only with the names of the same length.
        view.withStringBytes(key) { name, length in
            @inline(__always) func equals(_ literal: StaticString) -> Bool {
                memcmpBytes(name, literal.utf8Start, literal.utf8CodeUnitCount)
            }
            switch length {
            case 2: return equals("id")
            case 4: return equals("name")
            case 5: return equals("email") || equals("phone")
            case 6: return equals("userId")
            case 7: return equals("company")
            case 8: return equals("lastName")
            case 9: return equals("firstName") || equals("createdAt") || equals("companies")
            case 13: return equals("lastRequestAt")
            case 22: return equals("unsubscribedFromEmails")
            default: return false
            }
        }
    }

    /// `name`, else `firstName + " " + lastName` trimmed, else whichever exists.
    mutating func writeName(_ view: JSONView, _ traits: Int) {
        if let name = view.member(traits, "name"), view.isString(name), !view.isEmptyString(name) {
            ObjectWriter.key("name", to: &out)
            JSONWriter.appendString(view, name, scratch: &scratch, to: &out)
            return
        }
        let first = view.member(traits, "firstName").flatMap { view.isString($0) ? $0 : nil }
        let last = view.member(traits, "lastName").flatMap { view.isString($0) ? $0 : nil }
        guard first != nil || last != nil else { return }
        scratch.removeAll()
        if let first { view.appendDecodedString(first, to: &scratch) }
        if first != nil, last != nil { scratch.append(UInt8(ascii: " ")) }
        if let last { view.appendDecodedString(last, to: &scratch) }
        var lower = 0
        var upper = scratch.count
        while lower < upper, isSpace(scratch[lower]) { lower += 1 }
        while upper > lower, isSpace(scratch[upper - 1]) { upper -= 1 }
        guard upper > lower else { return }
        ObjectWriter.key("name", to: &out)
        JSONWriter.appendQuoted(scratch.bytes(lower, upper), to: &out)
    }

    /// Writes a date field as unix seconds; an unusable one is left out and counted as `warning`.
    mutating func writeDate(_ view: JSONView, _ field: Int?, key: StaticString, warning: MappingWarning) {
        guard let field, !view.isNull(field) else { return }
        guard let seconds = Timestamp.unixSeconds(view, field) else {
            warnings.add(warning)
            return
        }
        ObjectWriter.key(key, to: &out)
        JSONWriter.appendInt(seconds, to: &out)
    }

    mutating func writeNonEmptyString(_ view: JSONView, _ field: Int?, key: StaticString) {
        guard let field, view.isString(field), !view.isEmptyString(field) else { return }
        ObjectWriter.key(key, to: &out)
        JSONWriter.appendString(view, field, scratch: &scratch, to: &out)
    }
}

@inline(__always)
func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
