// Fuzz target: the sandbox's 2.x request handling (Sources/IntercomSandbox/REST/), driven as
// SandboxEngine drives it once a request is authorized: the route from method and path
// (`RESTRoute.match`), the query and body (`RESTRoute.prepare`), then `Workspace.handle`; plus
// the admin routes `POST /sandbox/seed` and `GET /sandbox/state`. Each input is a sequence of
// requests applied to one fresh Workspace.
//
// Input: one request a line. A line's first 4 bytes choose the call (byte 0), the method,
// Content-Type and body-size flag (byte 1), and the path ids (bytes 2 and 3); the rest of the
// line is the body for calls that take one, else the query string (for the raw-path call, the
// path and query itself).
//
// Checks, after every request:
// - no trap; the answer's status is in 200..<600, an error's in 400..<500 (the 2.x layer has no
//   5xx of its own: those are injected faults), and only `202` (an event) has no body;
// - every body the sandbox would send reads back through `JSONReader` to the same value; a `405`
//   names only methods other than the one sent;
// - an error, or a success that says it changed nothing, leaves the workspace state as it was
//   (`--record` notes only changed calls, so a replay relies on it);
// - the workspace: non-merged contacts have distinct external ids and the index finds each one;
//   non-merged users have distinct emails (case-insensitive: no bulk API here, which allows
//   repeats); each contact's companies exist, appear once, merged contacts have none, and every
//   company's `user_count` is the number of contacts holding it; `company_id`s are distinct and
//   indexed;
// - a `200` create or update is found again by GET with the same body: a contact by its id and
//   its external id, a company by its id and its `company_id`, a data attribute in the list; an
//   attach or detach shows in the contact's companies.
import Foundation

@testable import IntercomSandbox

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzREST(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var session = Session()
    for (index, line) in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).prefix(32).enumerated() {
        session.run(Array(line), now: 1_700_000_000 + Double(index))
    }
    return 0
}

/// The calls a line chooses from; `{c}` is a contact id, `{k}` a company id, `{x}` an external id.
private let calls: [(method: String, path: String)] = [
    ("GET", "/data_attributes"), ("POST", "/data_attributes"),
    ("POST", "/contacts"), ("GET", "/contacts"), ("GET", "/contacts/{c}"), ("PUT", "/contacts/{c}"),
    ("GET", "/contacts/find_by_external_id/{x}"), ("POST", "/contacts/search"),
    ("POST", "/contacts/{c}/archive"), ("POST", "/contacts/{c}/unarchive"),
    ("GET", "/contacts/{c}/companies"), ("POST", "/contacts/{c}/companies"), ("DELETE", "/contacts/{c}/companies/{k}"),
    ("POST", "/companies"), ("GET", "/companies"), ("GET", "/companies/{k}"),
    ("POST", "/events"), ("POST", "/sandbox/seed"), ("GET", "/sandbox/state"),
    ("", ""),  // the rest of the line is the path and query
]
private let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", "OPTIONS"]
private let contentTypes: [String?] = ["text/plain", nil, " Application/JSON ; x=y", "application/jsonx"]
private let literalIDs = [
    "search", "", "x", "archive", "companies", "%2F", "a%20b", "%", "0000000000000001", "%30000000000000001", "..",
    "find_by_external_id", "0000000000000002", "a/b", "%E9", "0000000000000003",
]

/// `REST_FUZZ_TRACE=1` prints each request and its status, to read a finding.
private let trace = ProcessInfo.processInfo.environment["REST_FUZZ_TRACE"] != nil

private struct Session {
    var workspace = Workspace(workspaceID: "fuzz", idPrefix: "")
    var stats = SandboxStats()
    let searchLag = 2.0
    let maxBodyBytes = 1_048_576

    mutating func run(_ line: [UInt8], now: Double) {
        let head = Array(line.prefix(4)) + Array(repeating: 0, count: max(0, 4 - line.count))
        let rest = Array(line.dropFirst(4))
        let call = calls[Int(head[0]) % calls.count]
        let flags = head[1]
        var method = call.method
        if call.method.isEmpty || flags & 7 >= 6 { method = methods[Int(flags >> 5)] }
        let contentType: String? =
            (flags >> 3) & 3 == 3
            ? contentTypes[Int(flags >> 5) & 3] : (flags & 0x08 == 0 ? "application/json" : "application/json; charset=utf-8")
        let bodyTooLarge = flags & 0xE7 == 0xE0

        var uri = call.path
        uri = uri.replacingOccurrences(of: "{c}", with: pathID(head[2], kind: .contact))
        uri = uri.replacingOccurrences(of: "{x}", with: pathID(head[2], kind: .external))
        uri = uri.replacingOccurrences(of: "{k}", with: pathID(head[3], kind: .company))
        if call.path.isEmpty {
            uri = String(decoding: rest, as: UTF8.self)
        }
        var body: [UInt8] = []
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)

        // The admin routes, as SandboxEngine answers them (no auth, no body checks but JSON).
        if segments == ["sandbox", "seed"] && method == "POST" {
            seed(call.path.isEmpty ? [] : rest, now: now)
            return
        }
        if segments == ["sandbox", "state"] && method == "GET" {
            checkJSON(workspace.stateJSON, "the state")
            return
        }
        guard let match = RESTRoute.match(method: method, segments: segments) else {
            if trace { print("\(method) \(uri) -> 404 (no route)") }
            return
        }
        let route: RESTRoute
        switch match {
        case .methodNotAllowed(let allowed):
            if trace { print("\(method) \(uri) -> 405 \(allowed)") }
            let named = allowed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            check(!named.isEmpty && named.allSatisfy { ["GET", "POST", "PUT", "DELETE"].contains($0) }, "Allow: \(allowed)")
            check(!named.contains(method), "\(method) \(path) is refused, yet allowed (\(allowed))")
            return
        case .route(let matched):
            route = matched
        }
        if !call.path.isEmpty {
            if route.takesBody { body = rest } else if !rest.isEmpty { uri += "?" + String(decoding: rest, as: UTF8.self) }
        }

        let (query, object): ([String: String], JSONObject)
        switch route.prepare(
            uri: uri, contentType: contentType, body: body, bodyTooLarge: bodyTooLarge, maxBodyBytes: maxBodyBytes)
        {
        case .rejected(let error):
            if trace { print("\(method) \(uri) -> \(error.status.code) \(error.message)") }
            checkError(error, "preparing \(method) \(uri)")
            return
        case .ready(let readyObject, let readyQuery, let bodyText):
            query = readyQuery
            object = readyObject
            if let bodyText { check(route.takesBody && (try? JSONReader.parse(Array(bodyText.utf8))) != nil, "bodyText") }
        }

        let before = workspace.stateJSON.serialized
        let answer: RESTAnswer
        do throws(APIError) {
            answer = try workspace.handle(route, body: object, query: query, now: now, searchLag: searchLag, stats: &stats)
        } catch {
            if trace { print("\(method) \(uri) -> \(error.status.code) \(error.message)") }
            checkError(error, "\(method) \(uri)")
            check(workspace.stateJSON.serialized == before, "\(method) \(uri) failed (\(error.code)) but changed the workspace")
            checkWorkspace()
            return
        }
        if trace { print("\(method) \(uri) -> \(answer.status.code) \(answer.body?.serialized.prefix(120) ?? "")") }
        check((200..<300).contains(answer.status.code), "\(method) \(uri) answered \(answer.status.code) without an error")
        check(
            (answer.body == nil) == (answer.status == .accepted),
            "\(method) \(uri): \(answer.status.code) with body \(answer.body != nil)")
        if let value = answer.body { checkJSON(value, "the answer to \(method) \(uri)") }
        if !answer.changed {
            check(workspace.stateJSON.serialized == before, "\(method) \(uri) said it changed nothing, but did")
        }
        checkWorkspace()
        checkFoundAgain(route, answer, body: object)
    }

    // MARK: path ids

    enum IDKind { case contact, company, external }

    /// Byte `b`: its low 2 bits pick known contact ids, company ids, external ids and emails, or
    /// a literal; the next bit percent-encodes a known one; the rest index the list.
    func pathID(_ b: UInt8, kind: IDKind) -> String {
        let n = Int(b >> 3)
        let known: [String]
        switch b & 3 {
        case 0: known = workspace.contactsInOrder.map(\.id)
        case 1: known = workspace.companiesInOrder.map(\.id)
        case 2: known = workspace.contactsInOrder.flatMap { [$0.externalID, $0.email].compactMap { $0 } }
        default: return literalIDs[n % literalIDs.count]
        }
        guard !known.isEmpty else { return kind == .company ? "0000000000000001" : literalIDs[n % literalIDs.count] }
        let id = known[n % known.count]
        return b & 4 != 0 ? percentEncoded(id) : id
    }

    // MARK: admin

    /// `POST /sandbox/seed` as SandboxEngine answers it: parsed, then applied to a copy.
    mutating func seed(_ body: [UInt8], now: Double) {
        guard let value = try? JSONReader.parse(body), let object = value.objectValue else { return }  // the engine's 400
        var copy = workspace
        do throws(APIError) {
            let answer = try copy.seed(object, now: now)
            if trace { print("POST /sandbox/seed -> 200 \(answer.serialized.prefix(120))") }
            workspace = copy
            checkJSON(answer, "the seed's answer")
            checkWorkspace()
            if case .array(let seeded)? = answer.objectValue?["companies"] {
                for case .object(let entry) in seeded {
                    let id = entry["id"]?.stringValue ?? ""
                    check(workspace.company(id: id) != nil, "seeded company \(id) is not found")
                }
            }
        } catch {
            if trace { print("POST /sandbox/seed -> \(error.status.code) \(error.message)") }
            checkError(error, "the seed")
        }
    }

    // MARK: checks

    func checkError(_ error: APIError, _ what: String) {
        check((400..<500).contains(error.status.code), "\(what): error status \(error.status.code)")
        let text = error.body(requestID: "req_fuzz")
        check((try? JSONReader.parse(Array(text.utf8))) != nil, "\(what): the error body is not JSON: \(text)")
    }

    func checkWorkspace() {
        var byExternalID: [String: String] = [:]
        var userByEmail: [String: String] = [:]
        var holders: [String: Int] = [:]
        for contact in workspace.contactsInOrder {
            check(Set(contact.companyIDs).count == contact.companyIDs.count, "contact \(contact.id) has a company twice")
            for company in contact.companyIDs {
                check(workspace.company(id: company) != nil, "contact \(contact.id) belongs to a missing company \(company)")
                holders[company, default: 0] += 1
            }
            guard contact.mergedInto == nil else {
                check(contact.companyIDs.isEmpty, "merged contact \(contact.id) still has companies")
                continue
            }
            if let external = contact.externalID {
                if let other = byExternalID.updateValue(contact.id, forKey: external) {
                    check(false, "contacts \(other) and \(contact.id) share external_id \(external)")
                }
                check(workspace.contactID(externalID: external) == contact.id, "external_id \(external) is not indexed")
            }
            if let email = contact.email {
                check(workspace.contactIDs(email: email).contains(contact.id), "email \(email) is not indexed")
                if contact.role == .user, let other = userByEmail.updateValue(contact.id, forKey: email.lowercased()) {
                    check(false, "users \(other) and \(contact.id) share email \(email)")
                }
            }
        }
        var companyIDs: Set<String> = []
        for company in workspace.companiesInOrder {
            check(company.userCount == holders[company.id, default: 0], "company \(company.id) counts \(company.userCount) users")
            check(companyIDs.insert(company.companyID).inserted, "company_id \(company.companyID) twice")
            check(
                workspace.company(companyID: company.companyID)?.id == company.id, "company_id \(company.companyID) not indexed")
        }
    }

    /// After a `200` write: reading the object back answers the same.
    mutating func checkFoundAgain(_ route: RESTRoute, _ answer: RESTAnswer, body: JSONObject) {
        guard answer.status == .ok, let value = answer.body, let object = value.objectValue else { return }
        switch route {
        case .createContact, .updateContact:
            guard let id = object["id"]?.stringValue else { return check(false, "a contact answer has no id") }
            expectSame(get("GET", "/contacts/" + percentEncoded(id)), value, "GET of contact \(id)")
            if let external = object["external_id"]?.stringValue {
                expectSame(
                    get("GET", "/contacts/find_by_external_id/" + percentEncoded(external)), value,
                    "find_by_external_id \(external)")
            }
        case .upsertCompany:
            guard let id = object["id"]?.stringValue, let companyID = object["company_id"]?.stringValue else {
                return check(false, "a company answer has no id")
            }
            expectSame(get("GET", "/companies/" + percentEncoded(id)), value, "GET of company \(id)")
            expectSame(get("GET", "/companies?company_id=" + percentEncoded(companyID)), value, "GET ?company_id=\(companyID)")
        case .createDataAttribute:
            guard case .array(let list)? = get("GET", "/data_attributes")?.objectValue?["data"] else {
                return check(false, "the data attributes do not list")
            }
            check(list.contains(value), "created data attribute \(value.serialized) is not listed")
        case .attachCompany(let contact), .detachCompany(let contact, _):
            guard let company = object["id"]?.stringValue, let stored = workspace.contact(id: contact) else {
                return check(false, "attach/detach answered 200 for a missing contact or company")
            }
            let attached: Bool
            if case .attachCompany = route { attached = true } else { attached = false }
            check(stored.companyIDs.contains(company) == attached, "company \(company) attached: \(!attached)")
        default:
            break
        }
    }

    /// A read through the route table, on a copy (reads change nothing; the check above says so).
    func get(_ method: String, _ uri: String) -> JSONValue? {
        let path = String(uri.prefix { $0 != "?" })
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard case .route(let route)? = RESTRoute.match(method: method, segments: segments) else {
            check(false, "\(method) \(uri) does not route")
            return nil
        }
        guard
            case .ready(let object, let query, _) = route.prepare(
                uri: uri, contentType: nil, body: [], bodyTooLarge: false, maxBodyBytes: 0)
        else {
            check(false, "\(method) \(uri) is rejected")
            return nil
        }
        var copy = workspace
        var stats = SandboxStats()
        do throws(APIError) {
            let answer = try copy.handle(route, body: object, query: query, now: 1e10, searchLag: 0, stats: &stats)
            check(answer.status == .ok, "\(method) \(uri) answered \(answer.status.code)")
            return answer.body
        } catch {
            check(false, "\(method) \(uri) failed: \(error.status.code) \(error.message)")
            return nil
        }
    }

    func expectSame(_ read: JSONValue?, _ written: JSONValue, _ what: String) {
        guard let read else { return }
        check(read == written, "\(what) reads \(read.serialized), the write answered \(written.serialized)")
    }

    func checkJSON(_ value: JSONValue, _ what: String) {
        let text = value.serialized
        guard let again = try? JSONReader.parse(Array(text.utf8)) else { return check(false, "\(what) is not JSON: \(text)") }
        check(again == value, "\(what) does not read back as the same value: \(text)")
    }
}

/// Every byte but the unreserved ones as `%XX`, so the path and query decode back to `text`.
private func percentEncoded(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }
    }
    return out
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    fatalError("rest: \(message())")
}
