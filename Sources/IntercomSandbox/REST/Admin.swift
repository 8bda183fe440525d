/// The sandbox's own routes over the workspace (not Intercom's): `POST /sandbox/seed` preloads
/// an "existing workspace" in one request, `GET /sandbox/state` shows all of it.
extension Workspace {
    /// Applies a seed document; all or nothing (the caller applies it to a copy).
    ///
    /// `{"data_attributes":[{"name","model","data_type"}], "companies":[{company}],
    ///   "contacts":[{contact fields, "companies":[company_id], "archived":bool}],
    ///   "archive":[ref], "merge":[{"from":ref,"into":ref}]}` where a ref is a contact id,
    /// external id or email. Seeded contacts are searchable at once, and custom attributes
    /// they use that do not exist yet are created, typed by their value.
    mutating func seed(_ body: JSONObject, now: Double) throws(APIError) -> JSONValue {
        try body.expectOnly(["data_attributes", "companies", "contacts", "archive", "merge"])
        let second = Int(now.rounded(.down))
        func list(_ key: String) throws(APIError) -> [JSONValue] {
            guard let value = body[key] else { return [] }
            guard case .array(let entries) = value else { throw .parameterInvalid400("\(key) must be an array", field: key) }
            return entries
        }
        func object(_ value: JSONValue, _ field: String) throws(APIError) -> JSONObject {
            guard let object = value.objectValue else { throw .parameterInvalid400("\(field) must be an object", field: field) }
            return object
        }
        for (index, entry) in try list("data_attributes").enumerated() {
            _ = try createDataAttribute(try object(entry, "data_attributes[\(index)]"), now: second)
        }
        var companyAnswers: [JSONValue] = []
        for (index, entry) in try list("companies").enumerated() {
            let company = try upsertCompany(try object(entry, "companies[\(index)]"), now: now, createMissingAttributes: true)
            companyAnswers.append(.obj([("id", .string(company.id)), ("company_id", .string(company.companyID))]))
        }
        var contactAnswers: [JSONValue] = []
        for (index, entry) in try list("contacts").enumerated() {
            let fieldsObject = try object(entry, "contacts[\(index)]")
            if let attributes = fieldsObject["custom_attributes"]?.objectValue {
                self.attributes.createMissing(attributes, model: .contact, now: second)
            }
            let fields = try ContactFields(fieldsObject, catalog: attributes, extraAllowed: ["companies", "archived"])
            let archived = fieldsObject["archived"] == .bool(true)
            let contact = try createContact(fields, now: now, searchableFrom: -.infinity, archived: archived)
            if let memberships = fieldsObject["companies"] {
                guard case .array(let ids) = memberships else {
                    throw .parameterInvalid400(
                        "contacts[\(index)].companies must be an array of company_id strings", field: "companies")
                }
                for value in ids {
                    guard let companyID = value.stringValue, let company = company(companyID: companyID) else {
                        throw .parameterInvalid400(
                            "contacts[\(index)].companies names \(ItemValidator.describe(value)), which is not a company_id seeded",
                            field: "companies")
                    }
                    join(contactID: contact.id, companyID: company.id, now: second)
                }
            }
            contactAnswers.append(
                .obj([
                    ("id", .string(contact.id)),
                    ("external_id", contact.externalID.map(JSONValue.string) ?? .null),
                    ("email", contact.email.map(JSONValue.string) ?? .null),
                ]))
        }
        for entry in try list("archive") {
            let id = try resolveReference(entry, field: "archive")
            _ = try setArchived(id: id, true, now: now)
        }
        for (index, entry) in try list("merge").enumerated() {
            let merge = try object(entry, "merge[\(index)]")
            let from = try resolveReference(merge["from"] ?? .null, field: "merge[\(index)].from")
            let into = try resolveReference(merge["into"] ?? .null, field: "merge[\(index)].into")
            try self.merge(from: from, into: into, now: second)
        }
        return .obj([("contacts", .array(contactAnswers)), ("companies", .array(companyAnswers))])
    }

    /// A contact id, else an external id, else an email.
    private func resolveReference(_ value: JSONValue, field: String) throws(APIError) -> String {
        guard let text = value.stringValue else {
            throw .parameterInvalid400("\(field) must be a contact id, external id or email", field: field)
        }
        if contacts[text] != nil { return text }
        if let id = contactID(externalID: text) { return id }
        if let id = contactIDs(email: text).first { return id }
        throw .parameterInvalid400("\(field): no contact has the id, external id or email '\(text)'", field: field)
    }

    /// Everything the workspace holds, in an order that depends only on the data (not on the
    /// order requests arrived in), so two runs can be compared.
    var stateJSON: JSONValue {
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        func number(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
        func sorted(_ attributes: [String: JSONValue]) -> JSONValue {
            .obj(attributes.keys.sorted().map { ($0, attributes[$0]!) })
        }
        let contactList = contacts.values.sorted { a, b in
            (a.externalID ?? "", a.email ?? "", a.sequence) < (b.externalID ?? "", b.email ?? "", b.sequence)
        }
        let companyList = companies.values.sorted { $0.companyID < $1.companyID }
        let eventList = events.map { event -> (key: String, value: JSONValue) in
            let value = JSONValue.obj([
                ("event_name", .string(event.eventName)),
                ("created_at", .int(event.createdAt)),
                ("user_id", text(event.userID)),
                ("email", text(event.email)),
                ("contact_id", text(event.contactID)),
                ("metadata", event.metadata ?? .null),
            ])
            return (value.serialized, value)
        }.sorted { $0.key < $1.key }
        return .obj([
            (
                "contacts",
                .array(
                    contactList.map { contact -> JSONValue in
                        .obj([
                            ("id", .string(contact.id)),
                            ("external_id", text(contact.externalID)),
                            ("role", .string(contact.role.rawValue)),
                            ("email", text(contact.email)),
                            ("phone", text(contact.phone)),
                            ("name", text(contact.name)),
                            ("avatar", text(contact.avatar)),
                            ("owner_id", number(contact.ownerID)),
                            ("signed_up_at", number(contact.signedUpAt)),
                            ("last_seen_at", number(contact.lastSeenAt)),
                            ("unsubscribed_from_emails", .bool(contact.unsubscribedFromEmails)),
                            ("custom_attributes", sorted(contact.customAttributes)),
                            (
                                "companies",
                                .array(contact.companyIDs.compactMap { companies[$0]?.companyID }.sorted().map(JSONValue.string))
                            ),
                            ("archived", .bool(contact.archived)),
                            ("merged_into", text(contact.mergedInto)),
                            ("created_at", .int(contact.createdAt)),
                            ("updated_at", .int(contact.updatedAt)),
                        ])
                    })
            ),
            (
                "companies",
                .array(
                    companyList.map { company -> JSONValue in
                        .obj([
                            ("id", .string(company.id)),
                            ("company_id", .string(company.companyID)),
                            ("name", text(company.name)),
                            ("plan", text(company.plan)),
                            ("monthly_spend", number(company.monthlySpend)),
                            ("remote_created_at", number(company.remoteCreatedAt)),
                            ("size", number(company.size)),
                            ("website", text(company.website)),
                            ("industry", text(company.industry)),
                            ("custom_attributes", sorted(company.customAttributes)),
                            ("user_count", .int(company.userCount)),
                            ("created_at", .int(company.createdAt)),
                            ("updated_at", .int(company.updatedAt)),
                        ])
                    })
            ),
            ("events", .array(eventList.map(\.value))),
            (
                "data_attributes",
                .array(
                    attributes.customAttributes.map { attribute -> JSONValue in
                        .obj([
                            ("name", .string(attribute.name)),
                            ("model", .string(attribute.model.rawValue)),
                            ("data_type", .string(attribute.dataType.rawValue)),
                        ])
                    })
            ),
        ])
    }
}
