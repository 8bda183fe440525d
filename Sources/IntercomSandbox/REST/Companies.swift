/// Companies: upserted by the client's `company_id`, found by it or by Intercom's `id`.
extension Workspace {
    static let companyFields: Set<String> = [
        "company_id", "name", "plan", "monthly_spend", "remote_created_at", "size", "website",
        "industry", "custom_attributes",
    ]

    /// `POST /companies`: creates the company of `company_id`, or updates the fields given.
    mutating func upsertCompany(_ body: JSONObject, now: Double, createMissingAttributes: Bool = false) throws(APIError)
        -> Company
    {
        try body.expectOnly(Self.companyFields)
        guard let idValue = body["company_id"], let companyID = idValue.stringValue, !companyID.isEmpty else {
            throw .parameterInvalid400("company_id is required and must be a non-empty string", field: "company_id")
        }
        func text(_ field: String) throws(APIError) -> String?? {
            guard let value = body[field] else { return nil }
            if value == .null { return .some(nil) }
            guard let string = value.stringValue else {
                throw .parameterInvalid400(
                    "\(field) must be a string or null, got \(ItemValidator.describe(value))", field: field)
            }
            return .some(string)
        }
        func integer(_ field: String, truncating: Bool = false) throws(APIError) -> Int?? {
            guard let value = body[field] else { return nil }
            if value == .null { return .some(nil) }
            guard case .number(let source) = value, truncating || value.isIntegerNumber,
                let number = Double(source), number.isFinite, abs(number) < 9e15
            else {
                throw .parameterInvalid400(
                    "\(field) must be \(truncating ? "a number" : "an integer") or null, got \(ItemValidator.describe(value))",
                    field: field)
            }
            return .some(Int(number.rounded(.towardZero)))
        }
        let name = try text("name")
        let plan = try text("plan")
        let website = try text("website")
        let industry = try text("industry")
        let monthlySpend = try integer("monthly_spend", truncating: true)
        let remoteCreatedAt = try integer("remote_created_at")
        let size = try integer("size")
        var customAttributes: [(String, JSONValue)] = []
        if let value = body["custom_attributes"] {
            if createMissingAttributes, let object = value.objectValue {
                attributes.createMissing(object, model: .company, now: Int(now.rounded(.down)))
            }
            customAttributes = try attributes.validate(value, model: .company)
        }
        let second = Int(now.rounded(.down))
        func apply(_ company: inout Company) {
            if let name { company.name = name }
            if let plan { company.plan = plan }
            if let website { company.website = website }
            if let industry { company.industry = industry }
            if let monthlySpend { company.monthlySpend = monthlySpend }
            if let remoteCreatedAt { company.remoteCreatedAt = remoteCreatedAt }
            if let size { company.size = size }
            for (key, value) in customAttributes { company.customAttributes[key] = value == .null ? nil : value }
            company.updatedAt = second
        }
        if var existing = company(companyID: companyID) {
            apply(&existing)
            replaceCompany(existing)
            return existing
        }
        return insertCompany { id, sequence in
            var company = Company(id: id, sequence: sequence, companyID: companyID, createdAt: second, updatedAt: second)
            apply(&company)
            return company
        }
    }

    /// `GET /companies?company_id=` (or `?name=`), else the list of all companies.
    func findCompanies(query: [String: String]) throws(APIError) -> RESTAnswer {
        if let companyID = query["company_id"] {
            guard let company = company(companyID: companyID) else { throw .companyNotFound }
            return .ok(companyJSON(company))
        }
        if let name = query["name"] {
            guard let company = companiesInOrder.first(where: { $0.name == name }) else { throw .companyNotFound }
            return .ok(companyJSON(company))
        }
        let perPage = query["per_page"].flatMap(Int.init).map { min(max($0, 1), 60) } ?? 15
        let page = query["page"].flatMap(Int.init).map { max($0, 1) } ?? 1
        let all = companiesInOrder
        let slice = Self.page(page, of: all, perPage: perPage)
        return .ok(
            .obj([
                ("type", .string("list")),
                ("data", .array(slice.map(companyJSON))),
                ("total_count", .int(all.count)),
                (
                    "pages",
                    .obj([
                        ("type", .string("pages")), ("page", .int(page)), ("per_page", .int(perPage)),
                        ("total_pages", .int(max(1, (all.count + perPage - 1) / perPage))),
                    ])
                ),
            ]))
    }

    /// `GET /companies/{id}`.
    func getCompany(id: String) throws(APIError) -> RESTAnswer {
        guard let company = company(id: id) else { throw .companyNotFound }
        return .ok(companyJSON(company))
    }

    func companyJSON(_ company: Company) -> JSONValue {
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        let attributes = company.customAttributes.keys.sorted().map { ($0, company.customAttributes[$0]!) }
        return .obj([
            ("type", .string("company")),
            ("company_id", .string(company.companyID)),
            ("id", .string(company.id)),
            ("app_id", .string(workspaceID)),
            ("name", text(company.name)),
            ("remote_created_at", company.remoteCreatedAt.map(JSONValue.int) ?? .null),
            ("created_at", .int(company.createdAt)),
            ("updated_at", .int(company.updatedAt)),
            ("last_request_at", .null),
            ("monthly_spend", .int(company.monthlySpend ?? 0)),
            ("session_count", .int(0)),
            ("user_count", .int(company.userCount)),
            ("size", company.size.map(JSONValue.int) ?? .null),
            ("website", text(company.website)),
            ("industry", text(company.industry)),
            (
                "plan",
                company.plan.map { .obj([("type", .string("plan")), ("id", .string($0)), ("name", .string($0))]) } ?? .obj([])
            ),
            ("tags", .obj([("type", .string("tag.list")), ("tags", .array([]))])),
            ("segments", .obj([("type", .string("segment.list")), ("segments", .array([]))])),
            ("custom_attributes", .obj(attributes)),
        ])
    }
}
