// The one workspace behind both APIs: the bulk API (1.x) and the REST calls (2.x) read and write
// the same contacts, companies, data attributes and events, so a bulk run and a REST run over
// the same input can be compared state for state (`GET /sandbox/state`).
//
// A plain value owned by the engine's locked state: every method runs under that lock.

/// A contact (user or lead) as the workspace stores it.
struct Contact: Sendable {
    let id: String
    /// Creation order, for stable listings.
    let sequence: Int
    var externalID: String?
    var role: ContactRole
    var email: String?
    var phone: String?
    var name: String?
    var avatar: String?
    var ownerID: Int?
    var signedUpAt: Int?
    var lastSeenAt: Int?
    var unsubscribedFromEmails = false
    var customAttributes: [String: JSONValue] = [:]
    var createdAt: Int
    var updatedAt: Int
    /// When `POST /contacts/search` starts to see it (creation time plus the search lag).
    var searchableFrom: Double
    var archived = false
    var mergedInto: String?
    /// Intercom ids of the companies it belongs to, in joining order.
    var companyIDs: [String] = []
}

enum ContactRole: String, Sendable {
    case user
    case lead
}

/// A company, keyed by Intercom's `id` and by the client's `company_id`.
struct Company: Sendable {
    let id: String
    let sequence: Int
    let companyID: String
    var name: String?
    var plan: String?
    var website: String?
    var industry: String?
    /// Intercom keeps the integer part of what it is sent.
    var monthlySpend: Int?
    var remoteCreatedAt: Int?
    var size: Int?
    var customAttributes: [String: JSONValue] = [:]
    var createdAt: Int
    var updatedAt: Int
    var userCount = 0
}

/// An event as stored: who it was sent for (as sent) and the contact it resolved to.
struct StoredEvent: Sendable {
    var eventName: String
    var createdAt: Int
    var userID: String?
    var email: String?
    var contactID: String?
    var metadata: JSONValue?
}

struct Workspace: Sendable {
    /// Intercom caps a contact's companies at this many.
    static let contactCompanyLimit = 1000

    let workspaceID: String
    private let idPrefix: String
    private var idCounter = 0
    private(set) var contacts: [String: Contact] = [:]
    private(set) var companies: [String: Company] = [:]
    private(set) var events: [StoredEvent] = []
    var attributes = DataAttributeCatalog()

    private var contactByExternalID: [String: String] = [:]
    /// Lowercased email -> contact ids in creation order (the bulk API allows one email for
    /// several users with different user ids).
    private var contactsByEmail: [String: [String]] = [:]
    private var companyByCompanyID: [String: String] = [:]
    private var eventKeys: Set<String> = []

    init(workspaceID: String, idPrefix: String) {
        self.workspaceID = workspaceID
        self.idPrefix = idPrefix
    }

    // MARK: ids

    private mutating func nextID() -> (id: String, sequence: Int) {
        idCounter += 1
        return (idPrefix + hex(UInt64(idCounter), width: 16), idCounter)
    }

    // MARK: contacts

    /// A contact by id, following nothing: merged and archived ones included.
    func contact(id: String) -> Contact? { contacts[id] }

    /// The contact a request names by id: `404` when unknown, `410 contact_merged` when merged.
    func liveContact(id: String) throws(APIError) -> Contact {
        guard let contact = contacts[id] else { throw .userNotFound }
        if contact.mergedInto != nil { throw .contactMerged(id: id, into: survivor(of: id)) }
        return contact
    }

    /// Like `liveContact`, and an archived contact is not found either (it cannot be written to).
    func writableContact(id: String) throws(APIError) -> Contact {
        let contact = try liveContact(id: id)
        if contact.archived { throw .userNotFound }
        return contact
    }

    /// The contact a merge chain ends at.
    func survivor(of id: String) -> String {
        var current = id
        var hops = 0
        while let next = contacts[current]?.mergedInto, hops < 1000 {
            current = next
            hops += 1
        }
        return current
    }

    func contactID(externalID: String) -> String? { contactByExternalID[externalID] }

    /// Contacts holding this email (any case), oldest first; merged ones are not indexed.
    func contactIDs(email: String) -> [String] { contactsByEmail[email.lowercased()] ?? [] }

    /// Inserts a new contact and indexes it.
    mutating func insertContact(_ build: (String, Int) -> Contact) -> Contact {
        let (id, sequence) = nextID()
        let contact = build(id, sequence)
        contacts[id] = contact
        index(contact)
        return contact
    }

    /// Replaces a stored contact, keeping the indexes in step with its external id and email.
    mutating func replaceContact(_ contact: Contact) {
        if let old = contacts[contact.id] { unindex(old) }
        contacts[contact.id] = contact
        if contact.mergedInto == nil { index(contact) }
    }

    private mutating func index(_ contact: Contact) {
        if let external = contact.externalID { contactByExternalID[external] = contact.id }
        if let email = contact.email {
            // Kept in creation order, so the oldest holder of an email is the one a conflict names.
            var ids = contactsByEmail[email.lowercased(), default: []]
            let position = ids.firstIndex { (contacts[$0]?.sequence ?? 0) > contact.sequence } ?? ids.endIndex
            ids.insert(contact.id, at: position)
            contactsByEmail[email.lowercased()] = ids
        }
    }

    private mutating func unindex(_ contact: Contact) {
        if let external = contact.externalID, contactByExternalID[external] == contact.id {
            contactByExternalID[external] = nil
        }
        if let email = contact.email?.lowercased(), var ids = contactsByEmail[email] {
            ids.removeAll { $0 == contact.id }
            contactsByEmail[email] = ids.isEmpty ? nil : ids
        }
    }

    /// Contacts in creation order.
    var contactsInOrder: [Contact] { contacts.values.sorted { $0.sequence < $1.sequence } }

    // MARK: companies

    func company(id: String) -> Company? { companies[id] }

    func company(companyID: String) -> Company? { companyByCompanyID[companyID].flatMap { companies[$0] } }

    var companiesInOrder: [Company] { companies.values.sorted { $0.sequence < $1.sequence } }

    mutating func insertCompany(_ build: (String, Int) -> Company) -> Company {
        let (id, sequence) = nextID()
        let company = build(id, sequence)
        companies[id] = company
        companyByCompanyID[company.companyID] = id
        return company
    }

    mutating func replaceCompany(_ company: Company) {
        companies[company.id] = company
    }

    /// Adds the membership; false when it already existed.
    @discardableResult
    mutating func join(contactID: String, companyID: String, now: Int) -> Bool {
        guard var contact = contacts[contactID], var company = companies[companyID],
            !contact.companyIDs.contains(companyID)
        else { return false }
        contact.companyIDs.append(companyID)
        contact.updatedAt = now
        company.userCount += 1
        contacts[contactID] = contact
        companies[companyID] = company
        return true
    }

    /// Removes the membership; false when there was none.
    @discardableResult
    mutating func leave(contactID: String, companyID: String, now: Int) -> Bool {
        guard var contact = contacts[contactID], let position = contact.companyIDs.firstIndex(of: companyID) else { return false }
        contact.companyIDs.remove(at: position)
        contact.updatedAt = now
        contacts[contactID] = contact
        if var company = companies[companyID] {
            company.userCount = max(0, company.userCount - 1)
            companies[companyID] = company
        }
        return true
    }

    // MARK: events

    /// Stores an event unless one with the same user, name and second is there (Intercom's
    /// de-duplication); returns false for such a duplicate.
    mutating func recordEvent(_ event: StoredEvent) -> Bool {
        let user: String
        if let contactID = event.contactID {
            user = "c:" + contactID
        } else if let userID = event.userID {
            user = "u:" + userID
        } else {
            user = "e:" + (event.email ?? "").lowercased()
        }
        let key = user + "\u{0}" + event.eventName + "\u{0}" + String(event.createdAt)
        guard eventKeys.insert(key).inserted else { return false }
        events.append(event)
        return true
    }

    // MARK: merging

    /// Merges `from` into `into`: `from` answers `410` from now on, and its memberships move over.
    mutating func merge(from: String, into: String, now: Int) throws(APIError) {
        guard from != into else { throw .parameterInvalid400("a contact cannot be merged into itself", field: "merge") }
        _ = try liveContact(id: from)
        _ = try liveContact(id: into)
        let memberships = contacts[from]?.companyIDs ?? []
        for company in memberships {
            leave(contactID: from, companyID: company, now: now)
            join(contactID: into, companyID: company, now: now)
        }
        guard var merged = contacts[from] else { return }
        merged.mergedInto = into
        merged.updatedAt = now
        replaceContact(merged)
    }
}

extension APIError {
    static let userNotFound = APIError(status: .notFound, code: "not_found", message: "User Not Found")
    static let companyNotFound = APIError(status: .notFound, code: "company_not_found", message: "Company Not Found")

    static func contactMerged(id: String, into survivor: String) -> APIError {
        APIError(status: .gone, code: "contact_merged", message: "Contact \(id) was merged into the contact with id=\(survivor)")
    }

    /// `400 parameter_invalid`, what the 2.x API answers (the bulk API's is a `422`).
    static func parameterInvalid400(_ message: String, field: String? = nil) -> APIError {
        APIError(status: .badRequest, code: "parameter_invalid", message: message, field: field)
    }

    static func conflict(_ contact: Contact) -> APIError {
        let message =
            contact.archived
            ? "An archived contact matching those details already exists with id=\(contact.id)"
            : "A contact matching those details already exists with id=\(contact.id)"
        return APIError(status: .conflict, code: "conflict", message: message)
    }
}

/// `value` in lower-case hex, zero-padded to `width` digits (ids of the workspace and the engine).
func hex(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
