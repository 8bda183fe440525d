import Foundation
import Logging
import NIOHTTP1
import Synchronization

/// Turns one operation into the fewest 2.x calls that give its final state (contract §8.3,
/// §8.4): `POST` first for a contact the store does not know (a `409` names the existing one),
/// only the fields that differ from what was last written, company upserts and joins only when
/// they change something. The store learns only what Intercom acknowledged.
struct ContactWriter: Sendable {
    let strategy = CreateStrategy()
    let caller: RESTCaller
    let store: StateStore
    let catalog: AttributeCatalog

    /// What one operation did: its calls, and the warnings of values left out.
    struct Tally {
        var calls = 0
        var warnings = ReasonCounts<MappingWarning>()
        /// Company fields handed to a later step: the items settle when it wrote them.
        var promises: [CompanyWritePromise] = []
        /// An event skipped because the same one was acknowledged before.
        var eventAlreadySent = false
        /// Items to note as applied once the promises are kept.
        var appliedLater: AppliedItems?
        /// Merged items that failed on their own (by their place in the operation).
        var failedParts: [Int: OperationOutcome] = [:]
    }

    /// Records that these items were applied: a re-run of them writes nothing.
    func note(_ applied: AppliedItems) throws {
        var fingerprints = FieldFingerprints(blob: try store.contactFields(contactID: applied.contactID))
        fingerprints.noteApplied(applied.hashes)
        try store.saveContact(id: applied.contactID, keys: [applied.key], fields: fingerprints.blob)
    }

    // MARK: events

    func send(_ event: EventChange, tally: inout Tally) async throws -> OperationOutcome {
        let fingerprint = event.body.withUnsafeBytes { StableHash.value(of: $0) }
        // Sent and acknowledged before a kill: Intercom has it (it would de-duplicate it, at a call's cost).
        if try store.wasEventSent(fingerprint) {
            tally.eventAlreadySent = true
            return .applied(unchanged: true)
        }
        tally.calls += 1
        switch try await caller.call(
            RESTCall(.POST, "/events", body: event.body, endpoint: "POST /events"), understood: \.acknowledgesEvent)
        {
        case .ok:
            try store.noteEventSent(fingerprint)
            return .applied(unchanged: false)
        case .refused(404, _, let message): return .failed(code: "user_not_found", message: message)
        case .refused(let status, let code, let message): return .failed(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why): return .gaveUp(why)
        }
    }

    // MARK: contacts

    /// Where an operation stands once its contact's calls are behind it.
    enum ContactPhase: Sendable {
        /// Nothing more to do: applied before (unchanged), failed, or given up.
        case ended(OperationOutcome)
        /// The contact is written; its company steps come next, each after the step before it
        /// in company order.
        case written(contactID: String)
    }

    /// The contact's calls of an operation. `parts`: the items merged into `change`, each on
    /// its own, in input order (empty when it carries one).
    func applyContact(_ change: ContactChange, parts: [ContactChange], tally: inout Tally) async throws -> ContactPhase {
        do {
            if let known = try store.contactID(forKey: change.key),
                FieldFingerprints(blob: try store.contactFields(contactID: known)).appliedAll(change.itemHashes)
            {
                // The same items were applied before (a re-run): what they wrote is there, companies and memberships too.
                return .ended(.applied(unchanged: true))
            }
            let warnings = tally.warnings
            do {
                return .written(contactID: try await upsert(change, tally: &tally))
            } catch let refused as RESTRefused where !parts.isEmpty && !Self.refusesTheContact(refused.code) {
                tally.warnings = warnings  // counted again below, item by item
                // Merging must not change what Intercom takes: one item's refused field (an email
                // another contact has) fails that item only, as the items one by one in input
                // order would. It costs the merged attempt's calls on top of theirs.
                var last: String?
                for (index, part) in parts.enumerated() {
                    do {
                        last = try await upsert(part, tally: &tally)
                    } catch let refused as RESTRefused {
                        tally.failedParts[index] = .failed(code: refused.code, message: refused.message)
                    }
                }
                guard let last else { throw refused }
                return .written(contactID: last)
            }
        } catch let refused as RESTRefused {
            return .ended(.failed(code: refused.code, message: refused.message))
        } catch let gaveUp as RESTGaveUp {
            return .ended(.gaveUp(gaveUp.reason))
        }
    }

    /// Company change `position` of `change`, once the step before `step` in company order has
    /// ended: nil to go on with the next, or how the whole operation ends.
    func applyCompany(
        at position: Int, of change: ContactChange, parts: [ContactChange], step: CompanyStep, contactID: String,
        tally: inout Tally
    ) async throws -> OperationOutcome? {
        do {
            defer { step.finished.fire() }
            let part = Self.part(ofCompanyAt: position, in: parts)
            // The company changes of an item that failed on its own are skipped, in company order.
            if let part, tally.failedParts[part] != nil {
                if let carried = step.close() { await flush(carried, step: step, tally: &tally) }
                return nil
            }
            do {
                try await applyCompany(change.companies[position], step: step, contactID: contactID, tally: &tally)
            } catch let refused as RESTRefused where part != nil {
                // A refused join (a contact's company limit) fails its own item, whose later
                // company changes are then skipped, as that item alone would stop there.
                tally.failedParts[part!] = .failed(code: refused.code, message: refused.message)
            }
            return nil
        } catch let refused as RESTRefused {
            return .failed(code: refused.code, message: refused.message)
        } catch let gaveUp as RESTGaveUp {
            return .gaveUp(gaveUp.reason)
        }
    }

    /// How an operation whose contact and company steps were applied ends. Only once every call
    /// of its items was acknowledged do they count as applied: now, or when the later upsert
    /// that carries their company fields has written them.
    func finishContact(_ change: ContactChange, parts: [ContactChange], contactID: String, tally: inout Tally) throws
        -> OperationOutcome
    {
        if !parts.isEmpty, tally.failedParts.count == parts.count, let failure = tally.failedParts[0] {
            return failure
        }
        let hashes =
            tally.failedParts.isEmpty
            ? change.itemHashes
            : parts.indices.filter { tally.failedParts[$0] == nil }.flatMap { parts[$0].itemHashes }
        let applied = AppliedItems(contactID: contactID, key: change.key, hashes: hashes)
        if tally.promises.isEmpty { try note(applied) } else { tally.appliedLater = applied }
        return .applied(unchanged: tally.calls == 0 && tally.promises.isEmpty)
    }

    /// Which of the merged items (by its place) company change `position` came from; nil when
    /// the operation carries one item.
    private static func part(ofCompanyAt position: Int, in parts: [ContactChange]) -> Int? {
        var end = 0
        for (index, part) in parts.enumerated() {
            end += part.companies.count
            if position < end { return index }
        }
        return nil
    }

    /// The contact of `change`, created or brought up to date; its Intercom id.
    private func upsert(_ change: ContactChange, tally: inout Tally) async throws -> String {
        let attributes = try await catalog.ready(change.attributes, model: .contact, warnings: &tally.warnings)
        var known = try store.contactID(forKey: change.key)
        var hops = 0
        while true {
            hops += 1
            guard hops <= 4 else {
                throw RESTRefused(code: "contact_unresolved", message: "the contact moved four times in one item")
            }
            if known == nil, strategy.looksUpFirst, change.externalID != nil,
                change.fields.contains(where: { $0.name == "email" })
            {
                known = try await find(externalID: change.externalID!, tally: &tally)
                if let known { try store.saveContact(id: known, keys: [change.key], fields: nil) }
            }
            guard let contactID = known else {
                let created = try await create(change, attributes: attributes, tally: &tally)
                strategy.note(existing: { if case .exists = created { return true } else { return false } }())
                switch created {
                case .created(let id): return id
                case .exists(let id, let needsExternalID):
                    try await update(
                        id, change, attributes: attributes, fingerprints: FieldFingerprints(), setExternalID: needsExternalID,
                        tally: &tally)
                    return id
                }
            }
            let fingerprints = FieldFingerprints(blob: try store.contactFields(contactID: contactID))
            switch try await update(
                contactID, change, attributes: attributes, fingerprints: fingerprints, setExternalID: false, tally: &tally)
            {
            case .done:
                return contactID
            case .gone:
                // Deleted in Intercom since we learnt it: forget it and create it again.
                try store.forgetContact(id: contactID)
                known = nil
            case .merged(let survivor):
                try store.forgetContact(id: contactID)
                try store.saveContact(id: survivor, keys: [change.key], fields: nil)
                known = survivor
            }
        }
    }

    /// Refusals about the contact, not an item's fields: every item of it would meet them.
    private static func refusesTheContact(_ code: String) -> Bool {
        ["contact_archived", "contact_merged", "contact_unresolved"].contains(code)
    }

    private enum Created {
        case created(String)
        /// A contact matching the item exists already; `needsExternalID` when it has none yet.
        case exists(String, needsExternalID: Bool)
    }

    private func create(_ change: ContactChange, attributes: [FieldValue], tally: inout Tally) async throws -> Created {
        var body = RESTBody()
        body.field("role", string: "user")
        if let externalID = change.externalID { body.field("external_id", string: externalID) }
        for field in change.fields { body.field(field.name, field.value) }
        body.attributes(attributes)
        tally.calls += 1
        switch try await caller.call(
            RESTCall(.POST, "/contacts", body: body.bytes, endpoint: "POST /contacts"), understood: { $0.objectID != nil })
        {
        case .ok(let response):
            let id = response.objectID!
            var fingerprints = FieldFingerprints()
            Self.record(change, attributes: attributes, externalID: true, into: &fingerprints)
            try store.saveContact(id: id, keys: [change.key], fields: fingerprints.blob)
            return .created(id)
        case .refused(409, _, let message):
            guard let id = Self.id(in: message) else {
                throw RESTRefused(code: "conflict", message: "HTTP 409 without a contact id: \(message)")
            }
            if message.lowercased().contains("archived") {
                throw RESTRefused(code: "contact_archived", message: "the contact \(id) is archived in Intercom")
            }
            // Without an email in the body, only the external id can have matched: no need to look.
            guard change.externalID != nil, change.fields.contains(where: { $0.name == "email" }) else {
                return .exists(id, needsExternalID: false)
            }
            // The 409 may name the email's contact: take it over only if it has no external id (§8.3a).
            switch try await externalID(of: id, tally: &tally) {
            case nil: return .exists(id, needsExternalID: true)
            case change.externalID?: return .exists(id, needsExternalID: false)
            case let other?:
                throw RESTRefused(
                    code: "conflict", message: "the email belongs to contact \(id), which has another external id (\(other))")
            }
        case .refused(let status, let code, let message):
            throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why):
            throw RESTGaveUp(reason: why)
        }
    }

    /// `GET /contacts/find_by_external_id/{id}`: the contact's id, nil when there is none.
    private func find(externalID: String, tally: inout Tally) async throws -> String? {
        tally.calls += 1
        let call = RESTCall(
            .GET, "/contacts/find_by_external_id/" + IntercomClient.pathSegment(externalID),
            endpoint: "GET /contacts/find_by_external_id/{id}")
        switch try await caller.call(call, understood: { $0.objectID != nil }) {
        case .ok(let response):
            strategy.note(existing: true)
            return response.objectID
        case .refused(404, _, _):
            strategy.note(existing: false)
            return nil
        case .refused(let status, let code, let message): throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why): throw RESTGaveUp(reason: why)
        }
    }

    /// The external id of contact `id` (nil: none).
    private func externalID(of id: String, tally: inout Tally) async throws -> String? {
        tally.calls += 1
        let call = RESTCall(.GET, "/contacts/" + IntercomClient.pathSegment(id), endpoint: "GET /contacts/{id}")
        switch try await caller.call(call, understood: { $0.objectID != nil }) {
        case .ok(let response): return response.jsonObject?["external_id"] as? String
        case .refused(let status, let code, let message): throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why): throw RESTGaveUp(reason: why)
        }
    }

    private enum Updated {
        case done
        case gone
        case merged(into: String)
    }

    /// `PUT /contacts/{id}` with the fields that differ from what was last written, or nothing.
    @discardableResult
    private func update(
        _ id: String, _ change: ContactChange, attributes: [FieldValue], fingerprints: FieldFingerprints, setExternalID: Bool,
        tally: inout Tally
    ) async throws -> Updated {
        var body = RESTBody()
        if setExternalID, let externalID = change.externalID { body.field("external_id", string: externalID) }
        for field in change.fields where !fingerprints.matches(field.name, namespace: "f", field.value) {
            body.field(field.name, field.value)
        }
        body.attributes(attributes.filter { !fingerprints.matches($0.name, namespace: "a", $0.value) })
        guard !body.isEmpty else { return .done }
        tally.calls += 1
        let call = RESTCall(
            .PUT, "/contacts/" + IntercomClient.pathSegment(id), body: body.bytes, endpoint: "PUT /contacts/{id}")
        switch try await caller.call(call, understood: { $0.objectID != nil }) {
        case .ok:
            var updated = fingerprints
            Self.record(change, attributes: attributes, externalID: setExternalID || change.externalID != nil, into: &updated)
            try store.saveContact(id: id, keys: [change.key], fields: updated.blob)
            return .done
        case .refused(404, _, _):
            return .gone
        case .refused(410, _, let message):
            guard let survivor = Self.id(in: message), survivor != id else {
                throw RESTRefused(code: "contact_merged", message: message)
            }
            return .merged(into: survivor)
        case .refused(let status, let code, let message):
            throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why):
            throw RESTGaveUp(reason: why)
        }
    }

    private static func record(
        _ change: ContactChange, attributes: [FieldValue], externalID: Bool, into fingerprints: inout FieldFingerprints
    ) {
        for field in change.fields { fingerprints.record(field.name, namespace: "f", field.value) }
        for field in attributes { fingerprints.record(field.name, namespace: "a", field.value) }
    }

    /// The id in "... already exists with id=ID" or "... merged into the contact with id=ID".
    static func id(in message: String) -> String? {
        guard let range = message.range(of: "id=") else { return nil }
        let id = message[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        return id.isEmpty ? nil : String(id)
    }

    // MARK: companies

    private func applyCompany(_ change: CompanyChange, step: CompanyStep, contactID: String, tally: inout Tally) async throws {
        var company = change
        var inherited = CarriedCompanyChange(change: change, promises: [], joins: [])
        if let earlier = step.takeCarried() {
            company.fields = earlier.change.fields
            ContactChange.overlay(&company.fields, change.fields)
            company.attributes = earlier.change.attributes
            ContactChange.overlay(&company.attributes, change.attributes)
            inherited = earlier
        }
        if company.remove {
            try await leave(company.companyID, contactID: contactID, tally: &tally)
            return
        }
        if let next = step.nextUpsert {
            // A later upsert of this company waits behind this one: it writes these fields too,
            // and this item settles when it has. A company Intercom does not have yet is made by
            // that upsert, which then also makes this contact's membership.
            let promise = CompanyWritePromise()
            let known = try store.company(companyID: company.companyID).flatMap { $0.intercomID.isEmpty ? nil : $0.intercomID }
            if let known {
                let handed = CarriedCompanyChange(
                    change: company, promises: inherited.promises + [promise], joins: inherited.joins)
                if next.carry(handed) {
                    tally.promises.append(promise)
                    _ = try await join(contactID: contactID, company: company, intercomID: known, tally: &tally)
                    return
                }
            } else {
                let handed = CarriedCompanyChange(
                    change: company, promises: inherited.promises, joins: inherited.joins + [(contactID, promise)])
                if next.carry(handed) {
                    tally.promises.append(promise)
                    return
                }
            }
        }
        inherited.change = company
        let intercomID = try await write(inherited, tally: &tally)
        _ = try await join(contactID: contactID, company: company, intercomID: intercomID, tally: &tally)
    }

    /// `DELETE /contacts/{id}/companies/{id}`; a company Intercom does not know is nothing to leave.
    private func leave(_ companyID: String, contactID: String, tally: inout Tally) async throws {
        guard let intercomID = try await self.companyID(of: companyID, tally: &tally) else { return }
        tally.calls += 1
        let call = RESTCall(
            .DELETE,
            "/contacts/" + IntercomClient.pathSegment(contactID) + "/companies/" + IntercomClient.pathSegment(intercomID),
            endpoint: "DELETE /contacts/{id}/companies/{id}")
        switch try await caller.call(call) {
        case .ok, .refused(404, _, _):
            try store.setMember(contactID: contactID, companyIntercomID: intercomID, false)
        case .refused(let status, let code, let message): throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why): throw RESTGaveUp(reason: why)
        }
    }

    /// Makes the membership unless the store knows it is there; the company's id (a company
    /// deleted since we learnt its id is upserted afresh).
    private func join(contactID: String, company: CompanyChange, intercomID: String, tally: inout Tally) async throws -> String {
        var intercomID = intercomID
        guard try !store.isMember(contactID: contactID, companyIntercomID: intercomID) else { return intercomID }
        for attempt in 1...2 {
            tally.calls += 1
            var body = RESTBody()
            body.field("id", string: intercomID)
            let call = RESTCall(
                .POST, "/contacts/" + IntercomClient.pathSegment(contactID) + "/companies", body: body.bytes,
                endpoint: "POST /contacts/{id}/companies")
            switch try await caller.call(call) {
            case .ok:
                try store.setMember(contactID: contactID, companyIntercomID: intercomID, true)
                return intercomID
            case .refused(404, "company_not_found", _) where attempt == 1:
                try store.saveCompany(companyID: company.companyID, intercomID: "", fields: [])
                intercomID = try await upsertCompany(company, tally: &tally)
            case .refused(let status, let code, let message):
                throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
            case .gaveUp(let why):
                throw RESTGaveUp(reason: why)
            }
        }
        return intercomID
    }

    /// Upserts the company with the fields handed to it, makes the memberships handed to it,
    /// and tells each item whose part it carries how that ended.
    private func write(_ carried: CarriedCompanyChange, tally: inout Tally) async throws -> String {
        let id: String
        do {
            id = try await upsertCompany(carried.change, tally: &tally)
        } catch {
            let outcome: OperationOutcome
            switch error {
            case let refused as RESTRefused: outcome = .failed(code: refused.code, message: refused.message)
            case let gaveUp as RESTGaveUp: outcome = .gaveUp(gaveUp.reason)
            default: outcome = .gaveUp("the run is stopping")
            }
            for promise in carried.promises + carried.joins.map(\.promise) { promise.resolve(outcome) }
            throw error
        }
        for promise in carried.promises { promise.resolve(.applied(unchanged: false)) }
        for (contactID, promise) in carried.joins {
            do {
                _ = try await join(contactID: contactID, company: carried.change, intercomID: id, tally: &tally)
                promise.resolve(.applied(unchanged: false))
            } catch let refused as RESTRefused {
                promise.resolve(.failed(code: refused.code, message: refused.message))
            } catch let gaveUp as RESTGaveUp {
                promise.resolve(.gaveUp(gaveUp.reason))
            } catch {
                promise.resolve(.gaveUp("the run is stopping"))
                throw error
            }
        }
        return id
    }

    /// Fields (and memberships) handed to a step whose item never reached it (it failed, it was
    /// applied before, the run is stopping): handed on to the next upsert of the company, or
    /// written now.
    func flush(_ carried: CarriedCompanyChange, step: CompanyStep, tally: inout Tally) async {
        if let next = step.nextUpsert, next.carry(carried) { return }
        _ = try? await write(carried, tally: &tally)
    }

    /// The company upserted with what differs from its last written state; its Intercom id.
    private func upsertCompany(_ company: CompanyChange, tally: inout Tally) async throws -> String {
        let attributes = try await catalog.ready(company.attributes, model: .company, warnings: &tally.warnings)
        let known = try store.company(companyID: company.companyID)
        let fingerprints = FieldFingerprints(blob: known?.fields)
        var body = RESTBody()
        body.field("company_id", string: company.companyID)
        var changes = 0
        for field in company.fields where !fingerprints.matches(field.name, namespace: "f", field.value) {
            body.field(field.name, field.value)
            changes += 1
        }
        let changedAttributes = attributes.filter { !fingerprints.matches($0.name, namespace: "a", $0.value) }
        body.attributes(changedAttributes)
        if let known, !known.intercomID.isEmpty, changes == 0, changedAttributes.isEmpty { return known.intercomID }
        tally.calls += 1
        let call = RESTCall(.POST, "/companies", body: body.bytes, endpoint: "POST /companies")
        switch try await caller.call(call, understood: { $0.objectID != nil }) {
        case .ok(let response):
            let id = response.objectID!
            var updated = known?.intercomID == id ? fingerprints : FieldFingerprints()
            for field in company.fields { updated.record(field.name, namespace: "f", field.value) }
            for field in attributes { updated.record(field.name, namespace: "a", field.value) }
            try store.saveCompany(companyID: company.companyID, intercomID: id, fields: updated.blob)
            return id
        case .refused(let status, let code, let message):
            throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why):
            throw RESTGaveUp(reason: why)
        }
    }

    /// The Intercom id of a company, from the store or by `company_id`; nil when Intercom has none.
    private func companyID(of companyID: String, tally: inout Tally) async throws -> String? {
        if let known = try store.company(companyID: companyID), !known.intercomID.isEmpty { return known.intercomID }
        tally.calls += 1
        var query = "company_id="
        query += companyID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let call = RESTCall(.GET, "/companies?" + query, endpoint: "GET /companies")
        switch try await caller.call(call, understood: { $0.objectID != nil }) {
        case .ok(let response):
            let id = response.objectID!
            try store.saveCompany(companyID: companyID, intercomID: id, fields: [])
            return id
        case .refused(404, _, _): return nil
        case .refused(let status, let code, let message): throw RESTRefused(code: code, message: "HTTP \(status): \(message)")
        case .gaveUp(let why): throw RESTGaveUp(reason: why)
        }
    }
}

/// User items applied to a contact, as the state store notes them.
struct AppliedItems: Sendable {
    var contactID: String
    var key: String
    var hashes: [UInt64]
}

/// `POST` first or look up first, for a contact the store does not know. Into a new workspace,
/// `POST` first costs one call a new contact; into one that has most of them already (a first
/// run with an empty state folder), a `409` and the check of whose email it was cost three
/// where a lookup and an update cost two. The share of contacts found existing decides.
final class CreateStrategy: Sendable {
    private let share = Mutex<(existing: Double, samples: Int)>((0, 0))

    var looksUpFirst: Bool { share.withLock { $0.samples >= 20 && $0.existing > 0.5 } }

    func note(existing: Bool) {
        share.withLock { state in
            state.samples += 1
            // The mean of the first 20, then a moving average: a backfill can move from known users to new ones.
            let weight = max(0.05, 1 / Double(state.samples))
            state.existing += ((existing ? 1 : 0) - state.existing) * weight
        }
    }
}

/// A JSON object body built field by field from values kept as text.
struct RESTBody {
    /// Always a whole object: each member is inserted before the closing brace.
    private(set) var bytes: [UInt8] = Array("{}".utf8)
    private var members = 0

    var isEmpty: Bool { members == 0 }

    private mutating func key(_ name: String) {
        bytes.removeLast()
        if members > 0 { bytes.append(UInt8(ascii: ",")) }
        members += 1
        var text = name
        text.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func field(_ name: String, _ value: JSONText) {
        key(name)
        bytes.append(contentsOf: value.bytes)
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func field(_ name: String, string: String) {
        key(name)
        var text = string
        text.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
        bytes.append(UInt8(ascii: "}"))
    }

    /// `"custom_attributes":{...}`, when there are any.
    mutating func attributes(_ values: [FieldValue]) {
        guard !values.isEmpty else { return }
        key("custom_attributes")
        bytes.append(UInt8(ascii: "{"))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            var text = value.name
            text.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
            bytes.append(UInt8(ascii: ":"))
            bytes.append(contentsOf: value.value.bytes)
        }
        bytes.append(contentsOf: Array("}}".utf8))
    }
}
