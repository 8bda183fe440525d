import Foundation

/// The 2.x calls the sandbox serves (contract §8.2), matched from method and path.
enum RESTRoute: Sendable, Equatable {
    case listDataAttributes
    case createDataAttribute
    case createContact
    case listContacts
    case getContact(String)
    case updateContact(String)
    case findContactByExternalID(String)
    case searchContacts
    case archiveContact(String)
    case unarchiveContact(String)
    case listContactCompanies(String)
    case attachCompany(String)
    case detachCompany(contact: String, company: String)
    case upsertCompany
    case findCompanies
    case getCompany(String)
    case createEvent

    enum Match: Sendable, Equatable {
        case route(RESTRoute)
        case methodNotAllowed(String)
    }

    /// nil when the path is not one of the 2.x paths. `method` is the request's method as sent
    /// (NIOHTTP1's `HTTPMethod.rawValue`: "GET", "POST", ...).
    static func match(method: String, segments: [String]) -> Match? {
        func pick(_ options: [(String, RESTRoute)]) -> Match {
            if let hit = options.first(where: { $0.0 == method }) { return .route(hit.1) }
            return .methodNotAllowed(options.map { $0.0 }.joined(separator: ", "))
        }
        let ids = segments.map { $0.removingPercentEncoding ?? $0 }
        switch ids.count {
        case 1 where ids[0] == "data_attributes":
            return pick([("GET", .listDataAttributes), ("POST", .createDataAttribute)])
        case 1 where ids[0] == "contacts":
            return pick([("POST", .createContact), ("GET", .listContacts)])
        case 1 where ids[0] == "companies":
            return pick([("POST", .upsertCompany), ("GET", .findCompanies)])
        case 1 where ids[0] == "events":
            return pick([("POST", .createEvent)])
        case 2 where ids[0] == "contacts" && ids[1] == "search":
            return pick([("POST", .searchContacts)])
        case 2 where ids[0] == "contacts" && !ids[1].isEmpty:
            return pick([("GET", .getContact(ids[1])), ("PUT", .updateContact(ids[1]))])
        case 2 where ids[0] == "companies" && !ids[1].isEmpty:
            return pick([("GET", .getCompany(ids[1]))])
        case 3 where ids[0] == "contacts" && ids[1] == "find_by_external_id" && !ids[2].isEmpty:
            return pick([("GET", .findContactByExternalID(ids[2]))])
        case 3 where ids[0] == "contacts" && !ids[1].isEmpty && ids[2] == "archive":
            return pick([("POST", .archiveContact(ids[1]))])
        case 3 where ids[0] == "contacts" && !ids[1].isEmpty && ids[2] == "unarchive":
            return pick([("POST", .unarchiveContact(ids[1]))])
        case 3 where ids[0] == "contacts" && !ids[1].isEmpty && ids[2] == "companies":
            return pick([("GET", .listContactCompanies(ids[1])), ("POST", .attachCompany(ids[1]))])
        case 4 where ids[0] == "contacts" && !ids[1].isEmpty && ids[2] == "companies" && !ids[3].isEmpty:
            return pick([("DELETE", .detachCompany(contact: ids[1], company: ids[3]))])
        default:
            return nil
        }
    }

    /// Calls that take a JSON object body.
    var takesBody: Bool {
        switch self {
        case .createDataAttribute, .createContact, .updateContact, .searchContacts, .attachCompany, .upsertCompany, .createEvent:
            return true
        default:
            return false
        }
    }

    /// Reads never meet injected faults, as with the bulk API.
    var isWrite: Bool {
        switch self {
        case .listDataAttributes, .listContacts, .getContact, .findContactByExternalID, .listContactCompanies, .findCompanies,
            .getCompany:
            return false
        default:
            return true
        }
    }
}

/// A 2.x request made ready for the workspace, outside the engine's lock.
enum PreparedREST: Sendable {
    case rejected(APIError)
    /// The body object (empty for calls that take none), the query, and the body as sent
    /// (for `--record`).
    case ready(JSONObject, [String: String], String?)
}

extension RESTRoute {
    /// Reads the query and, for a call that takes a body, checks its media type and parses it.
    /// Takes the request's parts rather than NIO's types, so it builds without NIO.
    func prepare(uri: String, contentType: String?, body: [UInt8], bodyTooLarge: Bool, maxBodyBytes: Int) -> PreparedREST {
        let query = parseQuery(uri)
        guard takesBody else { return .ready(JSONObject(), query, nil) }
        guard isJSONMediaType(contentType) else {
            return .rejected(
                APIError(
                    status: .unsupportedMediaType, code: "unsupported_media_type",
                    message: "Content-Type must be application/json"))
        }
        if bodyTooLarge {
            return .rejected(
                APIError(
                    status: .payloadTooLarge, code: "request_entity_too_large",
                    message: "The request body is larger than \(maxBodyBytes) bytes"))
        }
        guard !body.isEmpty else {
            return .rejected(
                APIError(
                    status: .badRequest, code: "bad_request", message: "The request body is empty; this call takes a JSON object")
            )
        }
        let value: JSONValue
        do {
            value = try JSONReader.parse(body)
        } catch {
            return .rejected(
                APIError(status: .badRequest, code: "bad_request", message: "The request body is not valid JSON: \(error)"))
        }
        guard let object = value.objectValue else {
            return .rejected(
                APIError(
                    status: .badRequest, code: "bad_request",
                    message: "The request body must be a JSON object, got \(value.typeName)"))
        }
        return .ready(object, query, value.serialized)
    }
}

/// Whether a `Content-Type` (or one entry of `Accept`) is `application/json`, parameters aside.
func isJSONMediaType(_ value: String?) -> Bool {
    guard let value else { return false }
    let mediaType = value.split(separator: ";", maxSplits: 1).first.map {
        $0.trimmingCharacters(in: .whitespaces).lowercased()
    }
    return mediaType == "application/json"
}

/// Which API an `Intercom-Version` belongs to.
enum APIFamily: Sendable {
    /// 1.0 to 1.4: the bulk API and jobs.
    case legacy
    /// 2.0 to 2.14 and Unstable: the REST calls.
    case rest

    init?(version: String) {
        let text = version.trimmingCharacters(in: .whitespaces)
        if text.caseInsensitiveCompare("Unstable") == .orderedSame {
            self = .rest
            return
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]),
            parts[1].allSatisfy(\.isNumber), parts[1].count <= 2
        else { return nil }
        switch (major, minor) {
        case (1, 0...4): self = .legacy
        case (2, 0...14): self = .rest
        default: return nil
        }
    }
}

/// `?a=1&b=x%20y` as a dictionary (the last of a repeated name wins).
func parseQuery(_ uri: String) -> [String: String] {
    guard let mark = uri.firstIndex(of: "?") else { return [:] }
    var result: [String: String] = [:]
    for pair in uri[uri.index(after: mark)...].split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        func decode(_ text: Substring) -> String {
            let spaced = text.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        result[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
    }
    return result
}

extension Workspace {
    /// Runs one 2.x call against the workspace.
    mutating func handle(
        _ route: RESTRoute, body: JSONObject, query: [String: String], now: Double, searchLag: Double, stats: inout SandboxStats
    ) throws(APIError) -> RESTAnswer {
        let second = Int(now.rounded(.down))
        switch route {
        case .listDataAttributes: return try listDataAttributes(query: query)
        case .createDataAttribute: return try createDataAttribute(body, now: second)
        case .createContact: return try createContact(body, now: now, searchLag: searchLag)
        case .listContacts: return try listContacts(query: query)
        case .getContact(let id): return try getContact(id: id)
        case .updateContact(let id): return try updateContact(id: id, body, now: now)
        case .findContactByExternalID(let id): return try findContact(externalID: id)
        case .searchContacts: return try searchContacts(body, now: now)
        case .archiveContact(let id): return try setArchived(id: id, true, now: now)
        case .unarchiveContact(let id): return try setArchived(id: id, false, now: now)
        case .listContactCompanies(let id): return try listCompanies(contactID: id, query: query)
        case .attachCompany(let id): return try attachCompany(contactID: id, body, now: now)
        case .detachCompany(let contact, let company): return try detachCompany(contactID: contact, companyID: company, now: now)
        case .upsertCompany: return .ok(companyJSON(try upsertCompany(body, now: now)), changed: true)
        case .findCompanies: return try findCompanies(query: query)
        case .getCompany(let id): return try getCompany(id: id)
        case .createEvent:
            let isNew = try createEvent(body)
            if isNew { stats.itemsAccepted.events += 1 } else { stats.duplicates += 1 }
            return RESTAnswer(status: .accepted, body: nil, changed: isNew)
        }
    }
}
