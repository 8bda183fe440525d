/// Companies (contract §5): identify's `traits.company`/`traits.companies`, and group calls.
extension RecordMapper {
    /// group -> a `/bulk/users` item `{user_id, email, companies: [company]}`.
    mutating func mapGroup(_ view: JSONView) -> MapOutcome {
        guard let groupID = fields.groupId,
            view.kind(groupID) == .number || (view.isString(groupID) && !view.isEmptyString(groupID))
        else { return .rejected(.missingGroupID, detail: "a group call needs a \"groupId\" (string or number)") }
        let identity = Self.identity(view, fields, traits: Self.userTraits(view, fields, .group), type: .group)
        if identity.isAnonymous { return .skipped(.anonymous) }

        out.append(UInt8(ascii: "{"))
        writeIdentity(view, identity, both: true)
        ObjectWriter.key("companies", to: &out)
        out.append(UInt8(ascii: "["))
        let traits = fields.traits.flatMap { view.isObject($0) ? $0 : nil }
        writeCompany(view, traits: traits, groupID: groupID)
        out.append(UInt8(ascii: "]"))
        out.append(UInt8(ascii: "}"))
        return .mapped(.user)
    }

    /// `"companies":[...]` from `traits.company` then each of `traits.companies`; left out when none is usable.
    mutating func writeUserCompanies(_ view: JSONView, _ traits: Int) {
        let company = view.member(traits, "company")
        let companies = view.member(traits, "companies").flatMap { view.kind($0) == .array ? $0 : nil }
        guard company != nil || companies != nil else { return }
        let rollback = out.count
        ObjectWriter.key("companies", to: &out)
        out.append(UInt8(ascii: "["))
        let opened = out.count
        // A plain loop and a method, not a closure over `inout self`: that closure made Swift copy
        // the whole mapper (retaining every buffer) for each company.
        if let company { writeListedCompany(view, company, listStart: opened) }
        if let companies {
            var element = companies + 1
            let end = Int(view.nodes[companies].subtreeEnd)
            while element < end {
                writeListedCompany(view, element, listStart: opened)
                element = Int(view.nodes[element].subtreeEnd)
            }
        }
        if out.count == opened {
            out.truncate(to: rollback)
        } else {
            out.append(UInt8(ascii: "]"))
        }
    }

    /// One entry of `traits.company`/`traits.companies`, comma-separated after the list's start;
    /// an unusable entry leaves nothing.
    private mutating func writeListedCompany(_ view: JSONView, _ entry: Int, listStart: Int) {
        let before = out.count
        if before > listStart { out.append(UInt8(ascii: ",")) }
        let written: Bool
        switch view.kind(entry) {
        case .object: written = writeCompany(view, traits: entry, groupID: nil)
        case .string: written = writeCompany(view, namedBy: entry)
        default: written = false
        }
        if !written { out.truncate(to: before) }
    }

    /// A company given only by its name: its id is the MD5 of the name.
    mutating func writeCompany(_ view: JSONView, namedBy name: Int) -> Bool {
        guard !view.isEmptyString(name) else { return false }
        out.append(UInt8(ascii: "{"))
        writeNameDigestID(view, name)
        ObjectWriter.key("name", to: &out)
        JSONWriter.appendString(view, name, scratch: &scratch, to: &out)
        out.append(UInt8(ascii: "}"))
        return true
    }

    /// A company object from traits; `groupID` (a group call) overrides its `id`/`company_id`.
    /// Returns false, writing nothing, when the company has no id and no name.
    @discardableResult
    mutating func writeCompany(_ view: JSONView, traits: Int?, groupID: Int?) -> Bool {
        func usableID(_ i: Int?) -> Int? {
            guard let i else { return nil }
            if view.kind(i) == .number || (view.isString(i) && !view.isEmptyString(i)) { return i }
            return nil
        }
        let name = traits.flatMap { view.member($0, "name") }.flatMap { view.isString($0) && !view.isEmptyString($0) ? $0 : nil }
        let explicitID =
            groupID ?? usableID(traits.flatMap { view.member($0, "id") })
            ?? usableID(traits.flatMap { view.member($0, "company_id") })
        guard explicitID != nil || name != nil else { return false }

        out.append(UInt8(ascii: "{"))
        if let explicitID {
            ObjectWriter.key("company_id", to: &out)
            writeIDString(view, explicitID)
        } else if let name {
            writeNameDigestID(view, name)
        }
        if let remove = traits.flatMap({ view.member($0, "remove") }), view.kind(remove) == .true {
            JSONWriter.append(",\"remove\":true}", to: &out)
            return true
        }
        guard let traits else {
            out.append(UInt8(ascii: "}"))
            return true
        }
        if let name {
            ObjectWriter.key("name", to: &out)
            JSONWriter.appendString(view, name, scratch: &scratch, to: &out)
        }
        writeNonEmptyString(view, view.member(traits, "plan"), key: "plan")
        if let spend = view.member(traits, "monthlySpend") {
            if view.kind(spend) == .number {
                ObjectWriter.key("monthly_spend", to: &out)
                out.appendBytes(view.raw(spend))
            } else if view.isString(spend), !view.nodes[spend].flag, isJSONNumber(view.raw(spend)) {
                ObjectWriter.key("monthly_spend", to: &out)
                out.appendBytes(view.raw(spend))
            }
        }
        writeDate(view, view.member(traits, "createdAt"), key: "remote_created_at", warning: .invalidCompanyCreatedAt)
        if let size = Self.companySize(view, view.member(traits, "employees"))
            ?? Self.companySize(view, view.member(traits, "size"))
        {
            ObjectWriter.key("size", to: &out)
            JSONWriter.appendInt(size, to: &out)
        }
        writeNonEmptyString(view, view.member(traits, "website"), key: "website")
        writeNonEmptyString(view, view.member(traits, "industry"), key: "industry")

        writeCustomAttributes(view, traits, isReserved: Self.isReservedCompanyField)
        out.append(UInt8(ascii: "}"))
        return true
    }

    /// `"company_id":"<md5 hex of the name>"`.
    mutating func writeNameDigestID(_ view: JSONView, _ name: Int) {
        scratch.removeAll()
        view.appendDecodedString(name, to: &scratch)
        ObjectWriter.key("company_id", to: &out)
        out.append(UInt8(ascii: "\""))
        MD5.appendHexDigest(of: scratch.bytes, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// `employees`/`size`: an integer, or a string that is exactly a JSON integer (`"250"`).
    static func companySize(_ view: JSONView, _ field: Int?) -> Int64? {
        guard let field else { return nil }
        switch view.kind(field) {
        case .number:
            return view.int64(field)
        case .string:
            guard !view.nodes[field].flag else { return nil }
            let raw = view.raw(field)
            guard isJSONNumber(raw), !raw.contains(UInt8(ascii: ".")), !raw.contains(where: { $0 | 0x20 == UInt8(ascii: "e") })
            else { return nil }
            return parseInt64(raw)
        default:
            return nil
        }
    }

    /// Company fields with a place of their own (or consumed as the id), never custom attributes.
    /// `remove` is not among them: only `remove: true` has a meaning, and it sends nothing else.
    static func isReservedCompanyField(_ view: JSONView, _ key: Int) -> Bool {
        // Compare only with the names of the same length.
        view.withStringBytes(key) { name, length in
            @inline(__always) func equals(_ literal: StaticString) -> Bool {
                memcmpBytes(name, literal.utf8Start, literal.utf8CodeUnitCount)
            }
            switch length {
            case 2: return equals("id")
            case 4: return equals("name") || equals("plan") || equals("size")
            case 6: return equals("userId")
            case 7: return equals("website")
            case 8: return equals("industry")
            case 9: return equals("createdAt") || equals("employees")
            case 10: return equals("company_id")
            case 12: return equals("monthlySpend")
            default: return false
            }
        }
    }
}

/// Whether `raw` is exactly one JSON number (no spaces, no sign but a leading minus).
func isJSONNumber(_ raw: UnsafeRawBufferPointer) -> Bool {
    var k = 0
    let n = raw.count
    if k < n, raw[k] == UInt8(ascii: "-") { k += 1 }
    guard k < n else { return false }
    if raw[k] == UInt8(ascii: "0") {
        k += 1
    } else if isDigit(raw[k]) {
        while k < n, isDigit(raw[k]) { k += 1 }
    } else {
        return false
    }
    if k < n, raw[k] == UInt8(ascii: ".") {
        k += 1
        guard k < n, isDigit(raw[k]) else { return false }
        while k < n, isDigit(raw[k]) { k += 1 }
    }
    if k < n, raw[k] | 0x20 == UInt8(ascii: "e") {
        k += 1
        if k < n, raw[k] == UInt8(ascii: "+") || raw[k] == UInt8(ascii: "-") { k += 1 }
        guard k < n, isDigit(raw[k]) else { return false }
        while k < n, isDigit(raw[k]) { k += 1 }
    }
    return k == n
}
