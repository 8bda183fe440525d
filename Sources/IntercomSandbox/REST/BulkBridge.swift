/// How the bulk API's items land in the workspace the 2.x calls read: a user item is an upsert
/// of the contact whose external id is its `user_id` (else of the user with its email), its
/// companies are upserted and joined (or left), an event item is an event.
///
/// The bulk API creates custom attributes on first use, typed by their first value, and stores
/// values as sent; only the 2.x calls insist that they exist and match.
extension Workspace {
    mutating func applyBulkUser(_ data: JSONObject, now: Double, searchableFrom: Double) {
        let second = Int(now.rounded(.down))
        let userID = data["user_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let email = data["email"]?.stringValue
        var target: Contact?
        if let userID, let id = contactID(externalID: userID) {
            target = contacts[id]
        } else if let email {
            // An email-only item updates that user; one with a new user_id takes over a user
            // of that email that has no user_id yet, as Intercom does.
            target = contactIDs(email: email).compactMap { contacts[$0] }.first { contact in
                contact.role == .user && (userID == nil || contact.externalID == nil)
            }
        }
        var contact =
            target
            ?? insertContact { id, sequence in
                Contact(
                    id: id, sequence: sequence, externalID: userID, role: .user, email: email, createdAt: second,
                    updatedAt: second, searchableFrom: searchableFrom)
            }
        if let userID { contact.externalID = userID }
        if let email { contact.email = email }
        func text(_ field: String) -> String?? {
            guard let value = data[field] else { return nil }
            return .some(value.stringValue)
        }
        func integer(_ field: String) -> Int?? {
            guard let value = data[field] else { return nil }
            guard case .number(let source) = value else { return .some(nil) }
            return .some(Int(source))
        }
        if let name = text("name") { contact.name = name }
        if let phone = text("phone") { contact.phone = phone }
        if let signedUp = integer("signed_up_at") { contact.signedUpAt = signedUp }
        if let lastRequest = integer("last_request_at") { contact.lastSeenAt = lastRequest }
        if case .bool(let flag)? = data["unsubscribed_from_emails"] { contact.unsubscribedFromEmails = flag }
        if let attributes = data["custom_attributes"]?.objectValue {
            self.attributes.createMissing(attributes, model: .contact, now: second)
            for (name, value) in attributes.members {
                contact.customAttributes[name] = value == .null ? nil : value
            }
        }
        contact.updatedAt = second
        replaceContact(contact)

        guard case .array(let companies)? = data["companies"] else { return }
        for case .object(let entry) in companies {
            guard let companyID = entry["company_id"]?.stringValue else { continue }
            if entry["remove"] == .bool(true) {
                if let company = company(companyID: companyID) {
                    leave(contactID: contact.id, companyID: company.id, now: second)
                }
                continue
            }
            let fields = JSONObject(entry.members.filter { Self.companyFields.contains($0.key) && $0.key != "custom_attributes" })
            guard var company = try? upsertCompany(fields, now: now) else { continue }
            if let attributes = entry["custom_attributes"]?.objectValue {
                self.attributes.createMissing(attributes, model: .company, now: second)
                for (name, value) in attributes.members {
                    company.customAttributes[name] = value == .null ? nil : value
                }
                replaceCompany(company)
            }
            join(contactID: contact.id, companyID: company.id, now: second)
        }
    }

    /// Returns false for a duplicate (same user, name and second). An event for a user the
    /// workspace does not know is kept under the id or email it names.
    mutating func applyBulkEvent(_ data: JSONObject) -> Bool {
        let userID = data["user_id"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let email = data["email"]?.stringValue
        let contact = resolveEventUser(id: nil, userID: userID, email: userID == nil ? email : nil)
        var createdAt = 0
        if case .number(let text)? = data["created_at"] { createdAt = Int(text) ?? 0 }
        return recordEvent(
            StoredEvent(
                eventName: data["event_name"]?.stringValue ?? "",
                createdAt: createdAt,
                userID: userID,
                email: email,
                contactID: contact?.id,
                metadata: data["metadata"]))
    }
}

/// The 1.x reads of what the bulk API wrote: `GET /users?user_id=` (or `?email=`) and
/// `GET /users/{id}`, the user object of the legacy API.
extension Workspace {
    func findUser(query: [String: String]) throws(APIError) -> RESTAnswer {
        var found: Contact?
        if let userID = query["user_id"] {
            found = contactID(externalID: userID).flatMap { contacts[$0] }
        } else if let email = query["email"] {
            found = contactIDs(email: email).compactMap { contacts[$0] }.first { $0.role == .user }
        } else {
            throw .parameterInvalid400("give user_id or email, as in GET /users?user_id=ID", field: "user_id")
        }
        guard let contact = found, contact.role == .user, contact.mergedInto == nil, !contact.archived else {
            throw .userNotFound
        }
        return .ok(userJSON(contact))
    }

    func getUser(id: String) throws(APIError) -> RESTAnswer {
        guard let contact = contacts[id], contact.role == .user, contact.mergedInto == nil, !contact.archived else {
            throw .userNotFound
        }
        return .ok(userJSON(contact))
    }

    func userJSON(_ contact: Contact) -> JSONValue {
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        func number(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
        let attributes = contact.customAttributes.keys.sorted().map { ($0, contact.customAttributes[$0]!) }
        let memberships = contact.companyIDs.compactMap { companies[$0] }.map { company -> JSONValue in
            .obj([
                ("type", .string("company")), ("company_id", .string(company.companyID)), ("id", .string(company.id)),
                ("name", text(company.name)),
            ])
        }
        return .obj([
            ("type", .string("user")),
            ("id", .string(contact.id)),
            ("user_id", text(contact.externalID)),
            ("email", text(contact.email)),
            ("phone", text(contact.phone)),
            ("name", text(contact.name)),
            ("app_id", .string(workspaceID)),
            ("created_at", .int(contact.createdAt)),
            ("updated_at", .int(contact.updatedAt)),
            ("signed_up_at", number(contact.signedUpAt)),
            ("last_request_at", number(contact.lastSeenAt)),
            ("session_count", .int(0)),
            ("unsubscribed_from_emails", .bool(contact.unsubscribedFromEmails)),
            ("custom_attributes", .obj(attributes)),
            ("companies", .obj([("type", .string("company.list")), ("companies", .array(memberships))])),
            ("tags", .obj([("type", .string("tag.list")), ("tags", .array([]))])),
            ("segments", .obj([("type", .string("segment.list")), ("segments", .array([]))])),
        ])
    }
}
