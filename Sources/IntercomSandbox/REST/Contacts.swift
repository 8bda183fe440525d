/// What a 2.x call answers: a status and a JSON body (none for `202` events); `changed` says the
/// call wrote to the workspace, so `--record` notes it.
struct RESTAnswer: Sendable {
    var status: HTTPStatus
    var body: JSONValue?
    var changed: Bool

    static func ok(_ body: JSONValue, changed: Bool = false) -> RESTAnswer {
        RESTAnswer(status: .ok, body: body, changed: changed)
    }
}

extension JSONObject {
    /// Refuses members outside `allowed`: the sandbox is strict on what it accepts, so a client
    /// sending a field Intercom would ignore (or that belongs to another call) finds out.
    func expectOnly(_ allowed: Set<String>) throws(APIError) {
        for key in keys where !allowed.contains(key) {
            throw .parameterInvalid400(
                "'\(key)' is not a parameter of this call; it takes \(allowed.sorted().joined(separator: ", "))", field: key)
        }
    }
}

/// The writable fields of a contact, as one create or update call gives them: `nil` is "not
/// given", `.some(nil)` is an explicit `null`.
struct ContactFields: Sendable {
    var role: ContactRole?
    var externalID: String??
    var email: String??
    var phone: String??
    var name: String??
    var avatar: String??
    var ownerID: Int??
    var signedUpAt: Int??
    var lastSeenAt: Int??
    var unsubscribedFromEmails: Bool?
    var customAttributes: [(String, JSONValue)]?

    static let names: Set<String> = [
        "role", "external_id", "email", "phone", "name", "avatar", "owner_id", "signed_up_at",
        "last_seen_at", "unsubscribed_from_emails", "custom_attributes",
    ]

    /// Reads and type-checks the fields; custom attributes are checked against `catalog`.
    init(_ body: JSONObject, catalog: DataAttributeCatalog, extraAllowed: Set<String> = []) throws(APIError) {
        try body.expectOnly(Self.names.union(extraAllowed))
        if let value = body["role"] {
            guard let text = value.stringValue, let role = ContactRole(rawValue: text) else {
                throw .parameterInvalid400("role must be user or lead, got \(ItemValidator.describe(value))", field: "role")
            }
            self.role = role
        }
        externalID = try Self.string(body, "external_id", nonEmpty: true)
        email = try Self.string(body, "email", nonEmpty: true)
        if case .some(.some(let address)) = email, !ItemValidator.looksLikeEmail(address) {
            throw .parameterInvalid400("email \"\(address)\" is not an email address", field: "email")
        }
        phone = try Self.string(body, "phone")
        name = try Self.string(body, "name")
        avatar = try Self.string(body, "avatar")
        ownerID = try Self.integer(body, "owner_id")
        signedUpAt = try Self.integer(body, "signed_up_at")
        lastSeenAt = try Self.integer(body, "last_seen_at")
        if let value = body["unsubscribed_from_emails"] {
            guard case .bool(let flag) = value else {
                throw .parameterInvalid400(
                    "unsubscribed_from_emails must be a boolean, got \(ItemValidator.describe(value))",
                    field: "unsubscribed_from_emails")
            }
            unsubscribedFromEmails = flag
        }
        if let value = body["custom_attributes"] {
            customAttributes = try catalog.validate(value, model: .contact)
        }
    }

    private static func string(_ body: JSONObject, _ field: String, nonEmpty: Bool = false) throws(APIError) -> String?? {
        guard let value = body[field] else { return nil }
        if value == .null { return .some(nil) }
        guard let text = value.stringValue, !(nonEmpty && text.isEmpty) else {
            throw .parameterInvalid400(
                "\(field) must be a\(nonEmpty ? " non-empty" : "") string or null, got \(ItemValidator.describe(value))",
                field: field)
        }
        return .some(text)
    }

    private static func integer(_ body: JSONObject, _ field: String) throws(APIError) -> Int?? {
        guard let value = body[field] else { return nil }
        if value == .null { return .some(nil) }
        guard value.isIntegerNumber, case .number(let text) = value, let number = Int(text) else {
            throw .parameterInvalid400(
                "\(field) must be an integer (unix seconds for dates) or null, got \(ItemValidator.describe(value))", field: field
            )
        }
        return .some(number)
    }

    /// Writes the given fields onto `contact`, leaving the others as they are.
    func apply(to contact: inout Contact) {
        if let role { contact.role = role }
        if let externalID { contact.externalID = externalID }
        if let email { contact.email = email }
        if let phone { contact.phone = phone }
        if let name { contact.name = name }
        if let avatar { contact.avatar = avatar }
        if let ownerID { contact.ownerID = ownerID }
        if let signedUpAt { contact.signedUpAt = signedUpAt }
        if let lastSeenAt { contact.lastSeenAt = lastSeenAt }
        if let unsubscribedFromEmails { contact.unsubscribedFromEmails = unsubscribedFromEmails }
        for (name, value) in customAttributes ?? [] {
            contact.customAttributes[name] = value == .null ? nil : value
        }
    }
}

extension Workspace {
    // MARK: create, update, read

    /// The contact that already holds this external id, or (for a user) this email.
    func conflictingContact(externalID: String?, email: String?, role: ContactRole, except: String? = nil) -> Contact? {
        if let externalID, let id = contactID(externalID: externalID), id != except, let contact = contacts[id] {
            return contact
        }
        if role == .user, let email {
            for id in contactIDs(email: email) where id != except {
                if let contact = contacts[id], contact.role == .user { return contact }
            }
        }
        return nil
    }

    /// `POST /contacts`.
    mutating func createContact(_ body: JSONObject, now: Double, searchLag: Double) throws(APIError) -> RESTAnswer {
        let contact = try createContact(ContactFields(body, catalog: attributes), now: now, searchableFrom: now + searchLag)
        return .ok(contactJSON(contact), changed: true)
    }

    mutating func createContact(_ fields: ContactFields, now: Double, searchableFrom: Double, archived: Bool = false)
        throws(APIError) -> Contact
    {
        let role = fields.role ?? .user
        let externalID = fields.externalID ?? nil
        let email = fields.email ?? nil
        if role == .user, externalID == nil, email == nil {
            throw .parameterInvalid400("A user needs an email or an external_id", field: "email")
        }
        if let existing = conflictingContact(externalID: externalID, email: email, role: role) {
            throw .conflict(existing)
        }
        let second = Int(now.rounded(.down))
        return insertContact { id, sequence in
            var contact = Contact(
                id: id, sequence: sequence, role: role, createdAt: second, updatedAt: second, searchableFrom: searchableFrom)
            fields.apply(to: &contact)
            contact.role = role
            contact.archived = archived
            return contact
        }
    }

    /// `PUT /contacts/{id}`: only the fields given change.
    mutating func updateContact(id: String, _ body: JSONObject, now: Double) throws(APIError) -> RESTAnswer {
        var contact = try writableContact(id: id)
        let fields = try ContactFields(body, catalog: attributes)
        if fields.role == .lead, contact.role == .user {
            throw .parameterInvalid400("A user cannot be turned into a lead", field: "role")
        }
        let role = fields.role ?? contact.role
        // Only what changes can clash: a new external id, or a new email (or a lead's email
        // when it becomes a user).
        let newExternalID: String? = fields.externalID ?? nil
        let becomesUser = fields.role == .user && contact.role == .lead
        let emailToCheck: String? = (fields.email ?? nil) ?? (becomesUser ? contact.email : nil)
        if let existing = conflictingContact(externalID: newExternalID, email: emailToCheck, role: role, except: id) {
            throw .conflict(existing)
        }
        fields.apply(to: &contact)
        contact.updatedAt = Int(now.rounded(.down))
        replaceContact(contact)
        return .ok(contactJSON(contact), changed: true)
    }

    /// `GET /contacts/{id}` (archived contacts can still be read).
    func getContact(id: String) throws(APIError) -> RESTAnswer {
        .ok(contactJSON(try liveContact(id: id)))
    }

    /// `GET /contacts/find_by_external_id/{external_id}`: sees a new contact at once.
    func findContact(externalID: String) throws(APIError) -> RESTAnswer {
        guard let id = contactID(externalID: externalID), let contact = contacts[id], !contact.archived else {
            throw .userNotFound
        }
        return .ok(contactJSON(contact))
    }

    /// `POST /contacts/{id}/archive` and `/unarchive`.
    mutating func setArchived(id: String, _ archived: Bool, now: Double) throws(APIError) -> RESTAnswer {
        var contact = try liveContact(id: id)
        if contact.archived != archived {
            contact.archived = archived
            contact.updatedAt = Int(now.rounded(.down))
            replaceContact(contact)
        }
        return .ok(
            .obj([
                ("id", .string(contact.id)),
                ("external_id", contact.externalID.map(JSONValue.string) ?? .null),
                ("type", .string("contact")),
                ("archived", .bool(archived)),
            ]), changed: true)
    }

    // MARK: companies of a contact

    /// `POST /contacts/{id}/companies {"id": "<Intercom company id>"}`.
    mutating func attachCompany(contactID: String, _ body: JSONObject, now: Double) throws(APIError) -> RESTAnswer {
        let contact = try writableContact(id: contactID)
        try body.expectOnly(["id"])
        guard let companyID = body["id"]?.stringValue, !companyID.isEmpty else {
            throw .parameterInvalid400("id (the Intercom id of the company) is required", field: "id")
        }
        guard company(id: companyID) != nil else { throw .companyNotFound }
        if !contact.companyIDs.contains(companyID) {
            guard contact.companyIDs.count < Self.contactCompanyLimit else {
                throw APIError(
                    status: .badRequest, code: "contact_company_limit_exceeded",
                    message: "A contact can be attached to at most \(Self.contactCompanyLimit) companies")
            }
            join(contactID: contactID, companyID: companyID, now: Int(now.rounded(.down)))
        }
        return .ok(companyJSON(companies[companyID]!), changed: true)
    }

    /// `DELETE /contacts/{id}/companies/{company id}`.
    mutating func detachCompany(contactID: String, companyID: String, now: Double) throws(APIError) -> RESTAnswer {
        _ = try writableContact(id: contactID)
        guard company(id: companyID) != nil else { throw .companyNotFound }
        guard leave(contactID: contactID, companyID: companyID, now: Int(now.rounded(.down))) else {
            throw APIError(
                status: .notFound, code: "company_not_found", message: "The contact is not attached to company \(companyID)")
        }
        return .ok(companyJSON(companies[companyID]!), changed: true)
    }

    /// `GET /contacts/{id}/companies?page=&per_page=`: paged by number, as Intercom does (a
    /// page past the end is empty, which is how clients know they are done).
    func listCompanies(contactID: String, query: [String: String]) throws(APIError) -> RESTAnswer {
        let contact = try liveContact(id: contactID)
        let page = try Self.positiveInteger(query, "page") ?? 1
        let perPage = min(try Self.positiveInteger(query, "per_page") ?? 15, 50)
        let all = contact.companyIDs.compactMap { companies[$0] }
        let slice = Self.page(page, of: all, perPage: perPage)
        let totalPages = max(1, (all.count + perPage - 1) / perPage)
        return .ok(
            .obj([
                ("type", .string("list")),
                ("companies", .array(slice.map(companyJSON))),
                ("total_count", .int(all.count)),
                (
                    "pages",
                    .obj([
                        ("type", .string("pages")),
                        (
                            "next",
                            page < totalPages
                                ? .string("/contacts/\(contactID)/companies?page=\(page + 1)&per_page=\(perPage)") : .null
                        ),
                        ("page", .int(page)),
                        ("per_page", .int(perPage)),
                        ("total_pages", .int(totalPages)),
                    ])
                ),
            ]))
    }

    /// Page `page` (from 1) of `all`. A page past the end is empty, however far: the offset is
    /// not computed when it would overflow (`?page=9223372036854775807` trapped).
    static func page<Element>(_ page: Int, of all: [Element], perPage: Int) -> ArraySlice<Element> {
        let (offset, overflow) = (page - 1).multipliedReportingOverflow(by: perPage)
        return overflow ? all[all.endIndex...] : all.dropFirst(offset).prefix(perPage)
    }

    static func positiveInteger(_ query: [String: String], _ name: String) throws(APIError) -> Int? {
        guard let text = query[name] else { return nil }
        guard let value = Int(text), value >= 1 else {
            throw .parameterInvalid400("\(name) must be a positive integer, got '\(text)'", field: name)
        }
        return value
    }

    // MARK: rendering

    /// The 2.14 contact object; fields the sandbox does not track are there with empty values so
    /// readers that expect them are not surprised.
    func contactJSON(_ contact: Contact) -> JSONValue {
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        func number(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
        let memberships = contact.companyIDs
        let attributes = contact.customAttributes.keys.sorted().map { ($0, contact.customAttributes[$0]!) }
        let emptyList: (String) -> JSONValue = { url in
            .obj([
                ("type", .string("list")), ("data", .array([])), ("url", .string(url)), ("total_count", .int(0)),
                ("has_more", .bool(false)),
            ])
        }
        return .obj([
            ("type", .string("contact")),
            ("id", .string(contact.id)),
            ("workspace_id", .string(workspaceID)),
            ("external_id", text(contact.externalID)),
            ("role", .string(contact.role.rawValue)),
            ("email", text(contact.email)),
            ("email_domain", text(contact.email.flatMap { $0.split(separator: "@").last.map(String.init) })),
            ("phone", text(contact.phone)),
            ("name", text(contact.name)),
            ("owner_id", number(contact.ownerID)),
            ("has_hard_bounced", .bool(false)),
            ("marked_email_as_spam", .bool(false)),
            ("unsubscribed_from_emails", .bool(contact.unsubscribedFromEmails)),
            ("created_at", .int(contact.createdAt)),
            ("updated_at", .int(contact.updatedAt)),
            ("signed_up_at", number(contact.signedUpAt)),
            ("last_seen_at", number(contact.lastSeenAt)),
            ("last_replied_at", .null),
            ("last_contacted_at", .null),
            ("last_email_opened_at", .null),
            ("last_email_clicked_at", .null),
            ("language_override", .null),
            ("browser", .null),
            ("browser_version", .null),
            ("browser_language", .null),
            ("os", .null),
            ("custom_attributes", .obj(attributes)),
            ("avatar", contact.avatar.map { .obj([("type", .string("avatar")), ("image_url", .string($0))]) } ?? .null),
            ("tags", emptyList("/contacts/\(contact.id)/tags")),
            ("notes", emptyList("/contacts/\(contact.id)/notes")),
            (
                "companies",
                .obj([
                    ("type", .string("list")),
                    (
                        "data",
                        .array(
                            memberships.prefix(10).map { id -> JSONValue in
                                .obj([("id", .string(id)), ("type", .string("company")), ("url", .string("/companies/\(id)"))])
                            })
                    ),
                    ("url", .string("/contacts/\(contact.id)/companies")),
                    ("total_count", .int(memberships.count)),
                    ("has_more", .bool(memberships.count > 10)),
                ])
            ),
            ("location", .obj([("type", .string("location")), ("country", .null), ("region", .null), ("city", .null)])),
            ("social_profiles", .obj([("type", .string("list")), ("data", .array([]))])),
        ])
    }
}
