import Foundation

// Data attributes: Intercom's standard ones (listed, never created) and the workspace's custom
// ones. In 2.x a custom attribute must exist, with the right type, before a contact or company
// can carry it.

enum AttributeModel: String, Sendable, CaseIterable {
    case contact
    case company
}

enum AttributeType: String, Sendable, CaseIterable {
    case string
    case integer
    case float
    case boolean
    case date

    /// Whether `value` fits an attribute of this type (`null` always does: it clears).
    func accepts(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (_, .null): return true
        case (.string, .string): return true
        case (.integer, .number), (.date, .number): return value.isIntegerNumber
        case (.float, .number): return true
        case (.boolean, .bool): return true
        default: return false
        }
    }

    /// The type a first value gives a new attribute (bulk API and seeding create them this way).
    static func inferred(from value: JSONValue) -> AttributeType? {
        switch value {
        case .string: return .string
        case .bool: return .boolean
        case .number: return value.isIntegerNumber ? .integer : .float
        default: return nil
        }
    }
}

struct DataAttribute: Sendable {
    var id: Int
    var name: String
    var model: AttributeModel
    var dataType: AttributeType
    var custom: Bool
    var description: String?
    var createdAt: Int

    var fullName: String { custom ? "custom_attributes." + name : name }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string("data_attribute")),
            ("name", .string(name)),
            ("full_name", .string(fullName)),
            ("label", .string(name)),
            ("description", .string(description ?? "")),
            ("data_type", .string(dataType.rawValue)),
            ("api_writable", .bool(custom || DataAttributeCatalog.writableStandard.contains(name))),
            ("messenger_writable", .bool(false)),
            ("ui_writable", .bool(custom)),
            ("custom", .bool(custom)),
            ("archived", .bool(false)),
            ("model", .string(model.rawValue)),
        ]
        if custom {
            members.insert(("id", .int(id)), at: 1)
            members.append(("created_at", .int(createdAt)))
            members.append(("updated_at", .int(createdAt)))
        }
        return .obj(members)
    }
}

struct DataAttributeCatalog: Sendable {
    /// Intercom limits the custom attributes of a model; the sandbox uses this figure.
    static let customLimitPerModel = 250

    static let standardContact: [(String, AttributeType)] = [
        ("name", .string), ("email", .string), ("phone", .string), ("external_id", .string),
        ("role", .string), ("avatar", .string), ("owner_id", .integer), ("signed_up_at", .date),
        ("last_seen_at", .date), ("created_at", .date), ("updated_at", .date),
        ("unsubscribed_from_emails", .boolean), ("last_contacted_at", .date),
        ("last_replied_at", .date), ("last_email_opened_at", .date), ("last_email_clicked_at", .date),
        ("language_override", .string), ("browser", .string), ("os", .string),
        ("location.country", .string), ("location.city", .string), ("companies", .string),
        ("tags", .string), ("segments", .string), ("user_id", .string), ("id", .string),
    ]
    static let standardCompany: [(String, AttributeType)] = [
        ("name", .string), ("company_id", .string), ("plan", .string), ("monthly_spend", .float),
        ("size", .integer), ("website", .string), ("industry", .string), ("remote_created_at", .date),
        ("created_at", .date), ("updated_at", .date), ("last_request_at", .date),
        ("session_count", .integer), ("user_count", .integer), ("tags", .string), ("id", .string),
    ]
    static let writableStandard: Set<String> = [
        "name", "email", "phone", "external_id", "role", "avatar", "owner_id", "signed_up_at",
        "last_seen_at", "unsubscribed_from_emails", "company_id", "plan", "monthly_spend", "size",
        "website", "industry", "remote_created_at", "language_override",
    ]

    private var custom: [AttributeModel: [String: DataAttribute]] = [.contact: [:], .company: [:]]
    private var counter = 0

    func customAttribute(_ name: String, model: AttributeModel) -> DataAttribute? {
        custom[model]?[name]
    }

    /// Custom attributes of both models, contact first, each by name.
    var customAttributes: [DataAttribute] {
        AttributeModel.allCases.flatMap { model in
            (custom[model] ?? [:]).values.sorted { $0.name < $1.name }
        }
    }

    /// Standard then custom attributes of one model (both when nil), in a stable order.
    func list(model: AttributeModel?) -> [DataAttribute] {
        let models = model.map { [$0] } ?? AttributeModel.allCases
        return models.flatMap { model -> [DataAttribute] in
            let standard = (model == .contact ? Self.standardContact : Self.standardCompany).map { name, type -> DataAttribute in
                DataAttribute(id: 0, name: name, model: model, dataType: type, custom: false, createdAt: 0)
            }
            let customs = (custom[model] ?? [:]).values.sorted { $0.id < $1.id }
            return standard + customs
        }
    }

    static func isStandard(_ name: String, model: AttributeModel) -> Bool {
        (model == .contact ? standardContact : standardCompany).contains { $0.0 == name }
    }

    /// Letters, digits, `_`, `-` and spaces, as Intercom allows.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.count <= 190
            && name.trimmingCharacters(in: .whitespaces) == name
            && name.unicodeScalars.allSatisfy { scalar in
                scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-" || scalar == " "
            }
    }

    /// Creates a custom attribute after Intercom's checks; the error names what is wrong.
    mutating func create(name: String, model: AttributeModel, dataType: AttributeType, description: String?, now: Int)
        throws(APIError) -> DataAttribute
    {
        guard Self.isValidName(name) else {
            throw .parameterInvalid400(
                "Your name for this attribute must only contain alphanumeric characters, currency symbols, and hyphens",
                field: "name")
        }
        if custom[model]?[name] != nil {
            throw .parameterInvalid400(
                "You already have '\(name)' in your workspace. Please choose a different name.", field: "name")
        }
        if Self.isStandard(name, model: model) {
            throw .parameterInvalid400(
                "'\(name)' is a standard \(model.rawValue) attribute; choose a different name", field: "name")
        }
        let other: AttributeModel = model == .contact ? .company : .contact
        if custom[other]?[name] != nil || Self.isStandard(name, model: other) {
            throw .parameterInvalid400(
                "'\(name)' is already used by a \(other.rawValue) attribute; choose a different name", field: "name")
        }
        if (custom[model]?.count ?? 0) >= Self.customLimitPerModel {
            throw .parameterInvalid400(
                "You have reached the limit of \(Self.customLimitPerModel) custom \(model.rawValue) attributes", field: "name")
        }
        counter += 1
        let attribute = DataAttribute(
            id: counter, name: name, model: model, dataType: dataType, custom: true, description: description, createdAt: now)
        custom[model, default: [:]][name] = attribute
        return attribute
    }

    /// Checks a whole `custom_attributes` object for a 2.x write: every name must exist for this
    /// model and every value fit its type, else the call fails as a whole.
    func validate(_ value: JSONValue, model: AttributeModel) throws(APIError) -> [(String, JSONValue)] {
        guard let object = value.objectValue else {
            throw .parameterInvalid400("custom_attributes must be an object, got \(value.typeName)", field: "custom_attributes")
        }
        for (name, attribute) in object.members {
            guard let definition = custom[model]?[name] else {
                throw .parameterInvalid400("Custom attribute '\(name)' does not exist", field: "custom_attributes")
            }
            guard attribute.isScalar else {
                throw .parameterInvalid400(
                    "Custom attribute '\(name)' takes a \(definition.dataType.rawValue), got \(attribute.typeName)",
                    field: "custom_attributes")
            }
            guard definition.dataType.accepts(attribute) else {
                throw .parameterInvalid400(
                    "Custom attribute '\(name)' is of type \(definition.dataType.rawValue); \(ItemValidator.describe(attribute)) is not a valid value",
                    field: "custom_attributes")
            }
            if case .string(let text) = attribute, text.unicodeScalars.count > ItemValidator.maxCustomAttributeLength {
                throw .parameterInvalid400(
                    "Custom attribute '\(name)' is \(text.unicodeScalars.count) characters long; at most \(ItemValidator.maxCustomAttributeLength)",
                    field: "custom_attributes")
            }
        }
        return object.members.map { ($0.key, $0.value) }
    }

    /// What the bulk API and seeding do: a name not seen yet becomes an attribute of the type of
    /// its first non-null value (a name Intercom would refuse is kept on the record all the same).
    mutating func createMissing(_ object: JSONObject, model: AttributeModel, now: Int) {
        for (name, value) in object.members where custom[model]?[name] == nil {
            guard let type = AttributeType.inferred(from: value) else { continue }
            counter += 1
            custom[model, default: [:]][name] = DataAttribute(
                id: counter, name: name, model: model, dataType: type, custom: true, createdAt: now)
        }
    }
}

extension Workspace {
    /// `GET /data_attributes?model=contact|company`.
    func listDataAttributes(query: [String: String]) throws(APIError) -> RESTAnswer {
        var model: AttributeModel?
        if let raw = query["model"] {
            guard let parsed = AttributeModel(rawValue: raw) else {
                throw .parameterInvalid400("model must be contact or company, got '\(raw)'", field: "model")
            }
            model = parsed
        }
        let data = attributes.list(model: model).map(\.json)
        return .ok(.obj([("type", .string("list")), ("data", .array(data))]))
    }

    /// `POST /data_attributes {"name","model","data_type","description"?}`.
    mutating func createDataAttribute(_ body: JSONObject, now: Int) throws(APIError) -> RESTAnswer {
        try body.expectOnly(["name", "model", "data_type", "description", "options", "messenger_writable"])
        guard let name = body["name"]?.stringValue else {
            throw .parameterInvalid400("name is required and must be a string", field: "name")
        }
        guard let modelText = body["model"]?.stringValue, let model = AttributeModel(rawValue: modelText) else {
            throw .parameterInvalid400("model must be contact or company", field: "model")
        }
        guard let typeText = body["data_type"]?.stringValue, let dataType = AttributeType(rawValue: typeText) else {
            throw .parameterInvalid400("data_type must be one of string, integer, float, boolean, date", field: "data_type")
        }
        let description = body["description"]?.stringValue
        let attribute = try attributes.create(name: name, model: model, dataType: dataType, description: description, now: now)
        return .ok(attribute.json, changed: true)
    }
}
