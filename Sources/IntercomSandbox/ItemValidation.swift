// Item rules of the legacy bulk API (contract §1 and §6). A request that is well formed is
// accepted whole; each item that breaks a rule here goes to the job's error feed instead of being
// applied, with code `parameter_invalid` and a message naming the field.

/// The two kinds of bulk item, named as in `data_type` and in the path.
enum ItemKind: String, Sendable {
    case user
    case event
}

/// Why one item failed, as the error feed reports it.
struct ItemFailure: Error, Sendable {
    var code: String
    var message: String

    static func invalid(_ message: String) -> ItemFailure {
        ItemFailure(code: "parameter_invalid", message: message)
    }

    static let mediaTypeNotAcceptable = ItemFailure(
        code: "media_type_not_acceptable",
        message: "The Accept header must be application/json"
    )

    /// The error-feed entry of `item` without its `id`, which is assigned later under the
    /// engine's lock: `"method":...,"data_type":...,"data":...,"error":{...}}`.
    func errorFeedEntryTail(of item: JSONObject) -> String {
        var tail = "\"method\":"
        (item["method"] ?? .null).write(into: &tail)
        tail += ",\"data_type\":"
        (item["data_type"] ?? .null).write(into: &tail)
        tail += ",\"data\":"
        (item["data"] ?? .null).write(into: &tail)
        tail += ",\"error\":"
        JSONValue.obj([("code", .string(code)), ("message", .string(message))]).write(into: &tail)
        tail += "}"
        return tail
    }
}

/// An item that passed every rule, ready to apply.
struct ValidItem: Sendable {
    var kind: ItemKind
    /// The item's `data`, compact JSON.
    var dataJSON: String
    /// Users: the upsert key (`u:` user_id, else `e:` email). Events: user, name and second.
    var key: String
    /// The item's `data`, parsed, for applying it to the workspace.
    var data: JSONObject
}

enum ItemValidator {
    static let maxMetadataKeys = 10
    static let maxCustomAttributeLength = 255

    static func validate(_ item: JSONObject, as kind: ItemKind) -> Result<ValidItem, ItemFailure> {
        do throws(ItemFailure) {
            guard let method = item["method"] else {
                throw .invalid("method is missing; bulk items need \"method\": \"post\"")
            }
            guard method.stringValue == "post" else {
                throw .invalid("method must be \"post\", got \(describe(method))")
            }
            guard let dataType = item["data_type"] else {
                throw .invalid(
                    "data_type is missing; items sent to /bulk/\(kind.rawValue)s need \"data_type\": \"\(kind.rawValue)\"")
            }
            guard dataType.stringValue == kind.rawValue else {
                throw .invalid("data_type must be \"\(kind.rawValue)\" on /bulk/\(kind.rawValue)s, got \(describe(dataType))")
            }
            guard let dataValue = item["data"] else { throw .invalid("data is missing") }
            guard let data = dataValue.objectValue else {
                throw .invalid("data must be an object, got \(dataValue.typeName)")
            }
            let key: String
            switch kind {
            case .user: key = try validateUser(data)
            case .event: key = try validateEvent(data)
            }
            return .success(ValidItem(kind: kind, dataJSON: dataValue.serialized, key: key, data: data))
        } catch {
            return .failure(error)
        }
    }

    // MARK: users

    private static func validateUser(_ data: JSONObject) throws(ItemFailure) -> String {
        let userKey = try identity(data)
        for field in ["name", "phone", "last_seen_ip", "last_seen_user_agent"] {
            try expect(data[field], field, "a string or null") { $0.stringValue != nil || $0 == .null }
        }
        for field in ["signed_up_at", "last_request_at"] {
            try expect(data[field], field, "an integer (unix seconds) or null") { $0.isIntegerNumber || $0 == .null }
        }
        try expect(data["unsubscribed_from_emails"], "unsubscribed_from_emails", "a boolean or null") {
            if case .bool = $0 { return true }
            return $0 == .null
        }
        if let attributes = data["custom_attributes"] {
            try customAttributes(attributes, field: "custom_attributes")
        }
        if let companies = data["companies"] {
            guard case .array(let list) = companies else {
                throw .invalid("companies must be an array of company objects, got \(companies.typeName)")
            }
            for (index, entry) in list.enumerated() {
                try company(entry, field: "companies[\(index)]")
            }
        }
        return userKey
    }

    private static func company(_ value: JSONValue, field: String) throws(ItemFailure) {
        guard let company = value.objectValue else {
            throw .invalid("\(field) must be an object with a company_id, got \(value.typeName)")
        }
        guard let id = company["company_id"] else {
            throw .invalid("\(field).company_id is missing; every company needs one")
        }
        guard let idText = id.stringValue, !idText.isEmpty else {
            throw .invalid("\(field).company_id must be a non-empty string, got \(describe(id))")
        }
        try expect(company["remove"], "\(field).remove", "a boolean") {
            if case .bool = $0 { return true }
            return false
        }
        for name in ["name", "plan", "website", "industry"] {
            try expect(company[name], "\(field).\(name)", "a string or null") { $0.stringValue != nil || $0 == .null }
        }
        try expect(company["monthly_spend"], "\(field).monthly_spend", "a number or null") {
            if case .number = $0 { return true }
            return $0 == .null
        }
        for name in ["remote_created_at", "size"] {
            try expect(company[name], "\(field).\(name)", "an integer or null") { $0.isIntegerNumber || $0 == .null }
        }
        if let attributes = company["custom_attributes"] {
            try customAttributes(attributes, field: "\(field).custom_attributes")
        }
    }

    private static func customAttributes(_ value: JSONValue, field: String) throws(ItemFailure) {
        guard let attributes = value.objectValue else {
            throw .invalid("\(field) must be an object, got \(value.typeName)")
        }
        for (name, attribute) in attributes.members {
            try attributeName(name, field: field)
            guard attribute.isScalar else {
                throw .invalid(
                    "\(field).\(name) is \(attribute.typeName); custom attributes take only strings, numbers, booleans and null")
            }
            if case .string(let text) = attribute, text.unicodeScalars.count > maxCustomAttributeLength {
                throw .invalid(
                    "\(field).\(name) is \(text.unicodeScalars.count) characters long; custom attribute strings hold at most \(maxCustomAttributeLength)"
                )
            }
        }
    }

    // MARK: events

    private static func validateEvent(_ data: JSONObject) throws(ItemFailure) -> String {
        guard let name = data["event_name"] else { throw .invalid("event_name is missing") }
        guard let eventName = name.stringValue, !eventName.isEmpty else {
            throw .invalid("event_name must be a non-empty string, got \(describe(name))")
        }
        guard let createdAt = data["created_at"] else {
            throw .invalid("created_at is missing; events need their time as integer unix seconds")
        }
        guard createdAt.isIntegerNumber, case .number(let second) = createdAt else {
            throw .invalid("created_at must be an integer (unix seconds), got \(describe(createdAt))")
        }
        let userKey = try identity(data)
        if let metadata = data["metadata"] {
            try self.metadata(metadata)
        }
        return userKey + "\u{0}" + eventName + "\u{0}" + second
    }

    /// The metadata rules of an event, shared with `POST /events`.
    static func checkMetadata(_ value: JSONValue) throws(ItemFailure) {
        try metadata(value)
    }

    private static func metadata(_ value: JSONValue) throws(ItemFailure) {
        guard let metadata = value.objectValue else {
            throw .invalid("metadata must be an object, got \(value.typeName)")
        }
        guard metadata.members.count <= maxMetadataKeys else {
            throw .invalid("metadata has \(metadata.members.count) keys; events take at most \(maxMetadataKeys)")
        }
        for (name, entry) in metadata.members {
            try attributeName(name, field: "metadata")
            if entry.isScalar { continue }
            if let rich = entry.objectValue, isRichValue(rich) { continue }
            throw .invalid(
                "metadata.\(name) is \(entry.typeName); metadata takes strings, numbers, booleans, null, {\"amount\",\"currency\"} or {\"url\",\"value\"}"
            )
        }
    }

    /// `{amount: integer, currency: string}` (a price in cents) or `{url: string, value: string}`
    /// (a link), exactly those keys.
    private static func isRichValue(_ object: JSONObject) -> Bool {
        let keys = Set(object.keys)
        guard keys.count == object.members.count else { return false }
        if keys == ["amount", "currency"] {
            return object["amount"]?.isIntegerNumber == true && object["currency"]?.stringValue != nil
        }
        if keys == ["url", "value"] {
            return object["url"]?.stringValue != nil && object["value"]?.stringValue != nil
        }
        return false
    }

    // MARK: shared

    /// The user an item is about: `user_id`, else `email`; returns the upsert key.
    private static func identity(_ data: JSONObject) throws(ItemFailure) -> String {
        var userID: String?
        if let value = data["user_id"] {
            guard let text = value.stringValue else {
                throw .invalid("user_id must be a string, got \(describe(value))")
            }
            userID = text.isEmpty ? nil : text
        }
        var email: String?
        if let value = data["email"] {
            guard let text = value.stringValue else {
                throw .invalid("email must be a string, got \(describe(value))")
            }
            guard looksLikeEmail(text) else {
                throw .invalid("email \(describe(value)) is not an email address (one @ with text on both sides)")
            }
            email = text
        }
        if let userID { return "u:" + userID }
        if let email { return "e:" + email }
        throw .invalid("the item names no user: give user_id or email")
    }

    /// One `@` with text on both sides.
    static func looksLikeEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty
    }

    private static func attributeName(_ name: String, field: String) throws(ItemFailure) {
        if name.contains(".") || name.contains("$") {
            throw .invalid(
                "\(field) name \(describe(.string(name))) holds '.' or '$', which Intercom does not allow in attribute names")
        }
    }

    /// Checks an optional field's value when it is present.
    private static func expect(
        _ value: JSONValue?,
        _ field: String,
        _ expected: String,
        _ isValid: (JSONValue) -> Bool
    ) throws(ItemFailure) {
        guard let value else { return }
        if !isValid(value) {
            throw .invalid("\(field) must be \(expected), got \(describe(value))")
        }
    }

    /// A value for a message: short JSON text, or its type when long.
    static func describe(_ value: JSONValue) -> String {
        let text = value.serialized
        if text.count <= 60 { return text }
        return value.typeName
    }
}
