import Foundation
import Logging

/// The workspace's custom data attributes (contract §8.3, §8.3a). In 2.x an attribute must
/// exist, with the right type, before a contact or company can carry it: the run lists them at
/// the start, decides the type of a new name from its first non-null value in input order
/// (items are planned here in the order the reader closed them, whatever the parallelism of the
/// upload), and creates it on first use, once, however many calls need it at the same moment.
actor AttributeCatalog {
    enum Model: String, Sendable, CaseIterable {
        case contact, company

        var other: Model { self == .contact ? .company : .contact }
    }

    private enum Entry {
        case exists(String)
        case planned(String)
        case creating(String, [CheckedContinuation<Bool?, Never>])
        case refused
    }

    private struct Key: Hashable {
        var model: Model
        var name: String
    }

    private var entries: [Key: Entry] = [:]
    /// Names of standard attributes, which a custom one cannot take (of either model).
    private var standard: Set<String> = []
    private var loaded = false
    private let caller: RESTCaller
    private let store: StateStore
    private let logger: Logger

    init(caller: RESTCaller, store: StateStore, logger: Logger) {
        self.caller = caller
        self.store = store
        self.logger = logger
    }

    // MARK: the start of the run

    /// Lists both models' attributes (2 calls a run). When the list cannot be had (retries
    /// spent), what the store remembers from the last run stands in.
    func load() async throws {
        if loaded { return }
        loaded = true
        for model in Model.allCases {
            let call = RESTCall(.GET, "/data_attributes?model=\(model.rawValue)", endpoint: "GET /data_attributes")
            switch try await caller.call(call, understood: { $0.jsonObject?["data"] is [Any] }) {
            case .ok(let response):
                var custom: [(name: String, dataType: String)] = []
                for case let attribute as [String: Any] in response.jsonObject?["data"] as? [Any] ?? [] {
                    guard let name = attribute["name"] as? String, let type = attribute["data_type"] as? String else { continue }
                    if attribute["custom"] as? Bool == true {
                        custom.append((name, type))
                        entries[Key(model: model, name: name)] = .exists(type)
                    } else {
                        standard.insert(name)
                    }
                }
                try? store.replaceAttributes(model: model.rawValue, with: custom)
            case .refused, .gaveUp:
                logger.warning("could not list the workspace's \(model.rawValue) attributes; using those the state store knows")
                for (name, type) in (try? store.attributes(model: model.rawValue)) ?? [] {
                    entries[Key(model: model, name: name)] = .exists(type)
                }
            }
        }
    }

    // MARK: planning, in input order

    /// Decides the attributes of a user item as it is registered: a new name takes the type of
    /// its first non-null value; a value of the wrong type, or one for a name Intercom refuses,
    /// is left out with a warning; a null for a name that does not exist is left out.
    func plan(_ change: inout ContactChange, warnings: inout ReasonCounts<MappingWarning>) {
        change.attributes = plan(change.attributes, model: .contact, warnings: &warnings)
        for index in change.companies.indices {
            change.companies[index].attributes = plan(change.companies[index].attributes, model: .company, warnings: &warnings)
        }
    }

    private func plan(_ values: [FieldValue], model: Model, warnings: inout ReasonCounts<MappingWarning>) -> [FieldValue] {
        values.filter { field in
            let key = Key(model: model, name: field.name)
            switch entries[key] {
            case .exists(let type), .planned(let type), .creating(let type, _):
                if field.value.fits(type) { return true }
                warnings.add(.attributeTypeMismatch)
                return false
            case .refused:
                warnings.add(.attributeNotCreated)
                return false
            case nil:
                guard let type = field.value.attributeType else {
                    // A null for a name that does not exist clears nothing; an object or array is no attribute value.
                    if field.value.kind != .null { warnings.add(.attributeTypeMismatch) }
                    return false
                }
                guard acceptable(field.name, model: model) else {
                    entries[key] = .refused
                    logger.warning(
                        "custom \(model.rawValue) attribute '\(field.name)' cannot be created (Intercom takes letters, digits, '_', '-' and spaces, and no name of a standard attribute or of the other model's): its values are left out"
                    )
                    warnings.add(.attributeNotCreated)
                    return false
                }
                entries[key] = .planned(type)
                return true
            }
        }
    }

    /// Intercom's rules for a new name, checked here so a refused one costs no call.
    private func acceptable(_ name: String, model: Model) -> Bool {
        let scalars = name.unicodeScalars
        guard !name.isEmpty, scalars.count <= 190, name.trimmingCharacters(in: .whitespaces) == name,
            scalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_- ".unicodeScalars.contains($0) })
        else { return false }
        if standard.contains(name) { return false }
        switch entries[Key(model: model.other, name: name)] {
        case .exists, .planned, .creating: return false
        case .refused, nil: return true
        }
    }

    // MARK: first use

    /// The values of `fields` whose attributes exist now, creating planned ones first; a
    /// creation Intercom refuses leaves its values out (`attribute_not_created`).
    func ready(_ fields: [FieldValue], model: Model, warnings: inout ReasonCounts<MappingWarning>) async throws -> [FieldValue] {
        var result: [FieldValue] = []
        for field in fields {
            if try await exists(field.name, model: model) {
                result.append(field)
            } else {
                warnings.add(.attributeNotCreated)
            }
        }
        return result
    }

    private func exists(_ name: String, model: Model) async throws -> Bool {
        let key = Key(model: model, name: name)
        switch entries[key] {
        case .exists: return true
        case .refused, nil: return false
        case .creating(let type, var waiters):
            let created = await withCheckedContinuation { continuation in
                waiters.append(continuation)
                entries[key] = .creating(type, waiters)
            }
            guard let created else { throw RESTGaveUp(reason: "custom attribute '\(name)' could not be created yet") }
            return created
        case .planned(let type):
            entries[key] = .creating(type, [])
            let outcome: Bool?
            do {
                outcome = try await create(name, model: model, type: type)
            } catch {
                outcome = nil
                settle(key, type: type, created: nil)
                throw error
            }
            settle(key, type: type, created: outcome)
            guard let created = outcome else { throw RESTGaveUp(reason: "custom attribute '\(name)' could not be created yet") }
            if created { try? store.saveAttribute(model: model.rawValue, name: name, dataType: type) }
            return created
        }
    }

    /// Ends a creation: exists, refused, or (not known: retries spent, a stop) planned again,
    /// so the next item that needs it tries again. Waiters learn the same.
    private func settle(_ key: Key, type: String, created: Bool?) {
        guard case .creating(_, let waiters) = entries[key] else { return }
        switch created {
        case true?: entries[key] = .exists(type)
        case false?: entries[key] = .refused
        case nil: entries[key] = .planned(type)
        }
        for waiter in waiters { waiter.resume(returning: created) }
    }

    /// True when created, false when Intercom refused, nil when it is not known (retries spent, a stop).
    private func create(_ name: String, model: Model, type: String) async throws -> Bool? {
        var body: [UInt8] = []
        JSONWriter.append("{\"name\":", to: &body)
        var text = name
        text.withUTF8 { _ = JSONWriter.appendQuoted(UnsafeRawBufferPointer($0), to: &body) }
        JSONWriter.append(",\"model\":\"", to: &body)
        body.append(contentsOf: model.rawValue.utf8)
        JSONWriter.append("\",\"data_type\":\"", to: &body)
        body.append(contentsOf: type.utf8)
        JSONWriter.append("\"}", to: &body)
        let call = RESTCall(.POST, "/data_attributes", body: body, endpoint: "POST /data_attributes")
        switch try await caller.call(call, understood: { $0.jsonObject?["name"] is String }) {
        case .ok:
            return true
        case .refused(let status, let code, let message):
            logger.warning(
                "Intercom did not create custom \(model.rawValue) attribute '\(name)' (HTTP \(status) \(code): \(message)): its values are left out"
            )
            return false
        case .gaveUp(let why):
            logger.debug("custom \(model.rawValue) attribute '\(name)' was not created: \(why)")
            return nil
        }
    }
}
