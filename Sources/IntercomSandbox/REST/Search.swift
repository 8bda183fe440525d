import Foundation

/// `POST /contacts/search`: a filter tree over contact fields, with cursor pagination.
///
/// A contact appears here only `searchLag` seconds after its creation, as Intercom's search index
/// lags its writes; archived and merged contacts never do.
indirect enum ContactQuery: Sendable {
    case filter(field: String, op: String, value: JSONValue)
    case and([ContactQuery])
    case or([ContactQuery])

    static let operators: Set<String> = ["=", "!=", "IN", "NIN", ">", "<", "~", "!~", "^", "$"]
    static let plainFields: Set<String> = [
        "id", "external_id", "email", "role", "name", "phone", "signed_up_at", "last_seen_at",
        "created_at", "updated_at", "unsubscribed_from_emails", "email_domain",
    ]

    init(_ value: JSONValue, catalog: DataAttributeCatalog, depth: Int = 0) throws(APIError) {
        guard let object = value.objectValue else {
            throw .parameterInvalid400("query must be an object, got \(value.typeName)", field: "query")
        }
        guard let op = object["operator"]?.stringValue else {
            throw .parameterInvalid400("every query needs an operator", field: "query.operator")
        }
        if op == "AND" || op == "OR" {
            guard depth < 2 else { throw .parameterInvalid400("queries nest at most two levels of AND/OR", field: "query") }
            guard case .array(let parts)? = object["value"], !parts.isEmpty else {
                throw .parameterInvalid400("\(op) takes a non-empty array of queries as its value", field: "query.value")
            }
            var queries: [ContactQuery] = []
            for part in parts { queries.append(try ContactQuery(part, catalog: catalog, depth: depth + 1)) }
            self = op == "AND" ? .and(queries) : .or(queries)
            return
        }
        guard Self.operators.contains(op) else {
            throw .parameterInvalid400(
                "operator '\(op)' is not one of AND, OR, \(Self.operators.sorted().joined(separator: ", "))",
                field: "query.operator")
        }
        guard let field = object["field"]?.stringValue else {
            throw .parameterInvalid400("a filter needs a field", field: "query.field")
        }
        if field.hasPrefix("custom_attributes.") {
            let name = String(field.dropFirst("custom_attributes.".count))
            guard catalog.customAttribute(name, model: .contact) != nil else {
                throw .parameterInvalid400("Custom attribute '\(name)' does not exist", field: "query.field")
            }
        } else if !Self.plainFields.contains(field) {
            throw .parameterInvalid400("'\(field)' is not a searchable contact field", field: "query.field")
        }
        guard let value = object["value"] else {
            throw .parameterInvalid400("a filter needs a value", field: "query.value")
        }
        if op == "IN" || op == "NIN" {
            guard case .array = value else { throw .parameterInvalid400("\(op) takes an array value", field: "query.value") }
        } else if !value.isScalar {
            throw .parameterInvalid400("operator '\(op)' takes a single value", field: "query.value")
        }
        self = .filter(field: field, op: op, value: value)
    }

    func matches(_ contact: Contact) -> Bool {
        switch self {
        case .and(let parts): return parts.allSatisfy { $0.matches(contact) }
        case .or(let parts): return parts.contains { $0.matches(contact) }
        case .filter(let field, let op, let value):
            let actual = Self.value(of: field, in: contact)
            let caseInsensitive = field == "email" || field == "email_domain"
            switch op {
            case "=": return Self.equal(actual, value, caseInsensitive)
            case "!=": return !Self.equal(actual, value, caseInsensitive)
            case "IN", "NIN":
                guard case .array(let options) = value else { return false }
                let found = options.contains { Self.equal(actual, $0, caseInsensitive) }
                return op == "IN" ? found : !found
            case ">", "<":
                guard let a = Self.number(actual), let b = Self.number(value) else { return false }
                return op == ">" ? a > b : a < b
            default:
                guard case .string(let text)? = actual, case .string(let needle) = value else { return false }
                let haystack = text.lowercased()
                let part = needle.lowercased()
                switch op {
                case "~": return haystack.contains(part)
                case "!~": return !haystack.contains(part)
                case "^": return haystack.hasPrefix(part)
                default: return haystack.hasSuffix(part)
                }
            }
        }
    }

    private static func value(of field: String, in contact: Contact) -> JSONValue? {
        func text(_ value: String?) -> JSONValue? { value.map(JSONValue.string) }
        func number(_ value: Int?) -> JSONValue? { value.map(JSONValue.int) }
        switch field {
        case "id": return .string(contact.id)
        case "external_id": return text(contact.externalID)
        case "email": return text(contact.email)
        case "email_domain": return text(contact.email.flatMap { $0.split(separator: "@").last.map(String.init) })
        case "role": return .string(contact.role.rawValue)
        case "name": return text(contact.name)
        case "phone": return text(contact.phone)
        case "signed_up_at": return number(contact.signedUpAt)
        case "last_seen_at": return number(contact.lastSeenAt)
        case "created_at": return .int(contact.createdAt)
        case "updated_at": return .int(contact.updatedAt)
        case "unsubscribed_from_emails": return .bool(contact.unsubscribedFromEmails)
        default: return contact.customAttributes[String(field.dropFirst("custom_attributes.".count))]
        }
    }

    private static func equal(_ actual: JSONValue?, _ expected: JSONValue, _ caseInsensitive: Bool) -> Bool {
        guard let actual, actual != .null else { return expected == .null }
        switch (actual, expected) {
        case (.string(let a), .string(let b)): return caseInsensitive ? a.lowercased() == b.lowercased() : a == b
        case (.number, .number): return number(actual) == number(expected)
        default: return actual == expected
        }
    }

    private static func number(_ value: JSONValue?) -> Double? {
        guard case .number(let text)? = value else { return nil }
        return Double(text)
    }
}

extension Workspace {
    static let searchDefaultPerPage = 50
    static let searchMaxPerPage = 150

    func searchContacts(_ body: JSONObject, now: Double) throws(APIError) -> RESTAnswer {
        try body.expectOnly(["query", "pagination", "sort"])
        guard let queryValue = body["query"] else {
            throw .parameterInvalid400("query is required", field: "query")
        }
        let query = try ContactQuery(queryValue, catalog: attributes)
        var perPage = Self.searchDefaultPerPage
        var offset = 0
        if let pagination = body["pagination"], pagination != .null {
            guard let object = pagination.objectValue else {
                throw .parameterInvalid400("pagination must be an object", field: "pagination")
            }
            if let value = object["per_page"] {
                guard value.isIntegerNumber, case .number(let text) = value, let number = Int(text),
                    (1...Self.searchMaxPerPage).contains(number)
                else {
                    throw .parameterInvalid400(
                        "per_page must be an integer from 1 to \(Self.searchMaxPerPage)", field: "pagination.per_page")
                }
                perPage = number
            }
            if let cursor = object["starting_after"], cursor != .null {
                guard let text = cursor.stringValue, let decoded = Self.decodeCursor(text) else {
                    throw .parameterInvalid400(
                        "starting_after is not a cursor this search returned", field: "pagination.starting_after")
                }
                offset = decoded
            }
        }
        let matches = contactsInOrder.filter { contact in
            contact.mergedInto == nil && !contact.archived && contact.searchableFrom <= now && query.matches(contact)
        }
        return .ok(contactPage(matches, offset: offset, perPage: perPage))
    }

    /// `GET /contacts?per_page=&starting_after=`: every contact that is neither archived nor
    /// merged, in creation order (a list, not a search: no lag).
    func listContacts(query: [String: String]) throws(APIError) -> RESTAnswer {
        let perPage = min(try Self.positiveInteger(query, "per_page") ?? Self.searchDefaultPerPage, Self.searchMaxPerPage)
        var offset = 0
        if let cursor = query["starting_after"] {
            guard let decoded = Self.decodeCursor(cursor) else {
                throw .parameterInvalid400("starting_after is not a cursor this list returned", field: "starting_after")
            }
            offset = decoded
        }
        let contacts = contactsInOrder.filter { $0.mergedInto == nil && !$0.archived }
        return .ok(contactPage(contacts, offset: offset, perPage: perPage))
    }

    /// One page of contacts with Intercom's cursor `pages` object.
    private func contactPage(_ matches: [Contact], offset: Int, perPage: Int) -> JSONValue {
        let page = matches.dropFirst(offset).prefix(perPage)
        let totalPages = max(1, (matches.count + perPage - 1) / perPage)
        var pages: [(String, JSONValue)] = [
            ("type", .string("pages")),
            // A cursor's offset can be up to Int.max; its page number saturates there.
            ("page", .int((offset / perPage).addingReportingOverflow(1).overflow ? Int.max : offset / perPage + 1)),
            ("per_page", .int(perPage)),
            ("total_pages", .int(totalPages)),
        ]
        let next = offset + page.count
        if next < matches.count {
            pages.append(("next", .obj([("per_page", .int(perPage)), ("starting_after", .string(Self.encodeCursor(next)))])))
        }
        return .obj([
            ("type", .string("list")),
            ("data", .array(page.map(contactJSON))),
            ("total_count", .int(matches.count)),
            ("pages", .obj(pages)),
        ])
    }

    /// Opaque to clients, as Intercom's are; it holds the offset of the next page.
    static func encodeCursor(_ offset: Int) -> String {
        Data("sandbox-offset:\(offset)".utf8).base64EncodedString()
    }

    static func decodeCursor(_ text: String) -> Int? {
        guard let data = Data(base64Encoded: text), let decoded = String(data: data, encoding: .utf8),
            decoded.hasPrefix("sandbox-offset:"), let offset = Int(decoded.dropFirst("sandbox-offset:".count)), offset >= 0
        else { return nil }
        return offset
    }
}
