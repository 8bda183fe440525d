import Foundation
import IntercomSandbox
import XCTest

final class RESTDataAttributeTests: XCTestCase {
    func test_create_validatesNameAndType_andRefusesTakenNames() async throws {
        try await withSandbox { sandbox in
            let ok = try await sandbox.rest(
                .POST, "/data_attributes", #"{"name":"Favourite colour","model":"contact","data_type":"string"}"#)
            XCTAssertEqual(ok.status, 200, ok.text)
            let created = try ok.object()
            XCTAssertEqual(created["full_name"] as? String, "custom_attributes.Favourite colour")
            XCTAssertEqual(created["custom"] as? Bool, true)

            let refused = [
                #"{"name":"Favourite colour","model":"contact","data_type":"string"}"#,  // exists
                #"{"name":"Favourite colour","model":"company","data_type":"string"}"#,  // the other model has it
                #"{"name":"email","model":"contact","data_type":"string"}"#,  // standard
                #"{"name":"plan","model":"contact","data_type":"string"}"#,  // a standard company attribute
                #"{"name":"a.b","model":"contact","data_type":"string"}"#,
                #"{"name":"a$","model":"contact","data_type":"string"}"#,
                #"{"name":"","model":"contact","data_type":"string"}"#,
                #"{"name":"ok_name","model":"contact","data_type":"datetime_ish"}"#,
                #"{"name":"ok_name","model":"user","data_type":"string"}"#,
            ]
            for body in refused {
                let reply = try await sandbox.rest(.POST, "/data_attributes", body)
                XCTAssertEqual(reply.status, 400, body)
                XCTAssertEqual(try reply.errorCode(), "parameter_invalid", body)
            }
            for type in ["integer", "float", "boolean", "date"] {
                let reply = try await sandbox.rest(
                    .POST, "/data_attributes", #"{"name":"a-\#(type) 1","model":"company","data_type":"\#(type)"}"#)
                XCTAssertEqual(reply.status, 200, reply.text)
            }
        }
    }

    func test_list_hasStandardAndCustomAttributesOfTheModelAsked() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.rest(.POST, "/data_attributes", #"{"name":"plan_name","model":"contact","data_type":"string"}"#)
            _ = try await sandbox.rest(.POST, "/data_attributes", #"{"name":"tier","model":"company","data_type":"string"}"#)
            let reply = try await sandbox.rest(.GET, "/data_attributes?model=contact")
            XCTAssertEqual(reply.status, 200)
            let data = try XCTUnwrap(try reply.object()["data"] as? [[String: Any]])
            XCTAssertTrue(data.contains { $0["name"] as? String == "email" && $0["custom"] as? Bool == false })
            XCTAssertTrue(
                data.contains {
                    $0["name"] as? String == "plan_name" && $0["custom"] as? Bool == true
                        && $0["data_type"] as? String == "string"
                })
            XCTAssertFalse(data.contains { $0["name"] as? String == "tier" })
            XCTAssertTrue(data.allSatisfy { $0["model"] as? String == "contact" })
            let bad = try await sandbox.rest(.GET, "/data_attributes?model=users")
            XCTAssertEqual(bad.status, 400)
        }
    }
}

final class RESTEventTests: XCTestCase {
    func test_event_is202WithAnEmptyBody_404ForAnUnknownUser_andDedupedByUserNameAndSecond() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.createContact(#"{"external_id":"u1","email":"u1@example.com"}"#)
            let body = #"{"event_name":"paid","created_at":1700000000,"user_id":"u1","metadata":{"plan":"pro"}}"#
            let first = try await sandbox.rest(.POST, "/events", body)
            XCTAssertEqual(first.status, 202)
            XCTAssertEqual(first.body.count, 0, "no body")
            let again = try await sandbox.rest(.POST, "/events", body)
            XCTAssertEqual(again.status, 202)
            let byEmailSameSecond = try await sandbox.rest(
                .POST, "/events", #"{"event_name":"paid","created_at":1700000000,"email":"u1@example.com"}"#)
            XCTAssertEqual(byEmailSameSecond.status, 202)
            let nextSecond = try await sandbox.rest(
                .POST, "/events", #"{"event_name":"paid","created_at":1700000001,"user_id":"u1"}"#)
            XCTAssertEqual(nextSecond.status, 202)

            let unknown = try await sandbox.rest(
                .POST, "/events", #"{"event_name":"paid","created_at":1700000000,"user_id":"ghost"}"#)
            XCTAssertEqual(unknown.status, 404)
            XCTAssertEqual(try unknown.errorCode(), "not_found")
            let badTime = try await sandbox.rest(
                .POST, "/events", #"{"event_name":"paid","created_at":"2024-01-01","user_id":"u1"}"#)
            XCTAssertEqual(badTime.status, 400)

            let storedEvents = try await sandbox.workspaceState()["events"] as? [[String: Any]]
            let events = try XCTUnwrap(storedEvents)
            XCTAssertEqual(
                events.map { $0["created_at"] as? Int }, [1_700_000_000, 1_700_000_001],
                "the same user, name and second is one event")
            XCTAssertEqual(sandbox.server.stats().duplicates, 2)
        }
    }
}

final class RESTCompanyTests: XCTestCase {
    func test_companies_areUpsertedByCompanyID_foundByEitherID() async throws {
        try await withSandbox { sandbox in
            let first = try await sandbox.rest(
                .POST, "/companies", #"{"company_id":"acme","name":"Acme","plan":"pro","monthly_spend":99.9,"size":10}"#)
            XCTAssertEqual(first.status, 200, first.text)
            let id = try XCTUnwrap(try first.object()["id"] as? String)
            let second = try await sandbox.rest(.POST, "/companies", #"{"company_id":"acme","size":12}"#)
            XCTAssertEqual(try second.object()["id"] as? String, id, "the same company")
            let found = try await sandbox.rest(.GET, "/companies?company_id=acme")
            let company = try found.object()
            XCTAssertEqual(company["name"] as? String, "Acme", "not given: kept")
            XCTAssertEqual(company["size"] as? Int, 12)
            XCTAssertEqual(company["monthly_spend"] as? Int, 99, "Intercom keeps the integer part")
            let byIntercomID = try await sandbox.rest(.GET, "/companies/\(id)").status
            XCTAssertEqual(byIntercomID, 200)
            let missing = try await sandbox.rest(.GET, "/companies?company_id=nope")
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual(try missing.errorCode(), "company_not_found")
            let unknownAttribute = try await sandbox.rest(
                .POST, "/companies", #"{"company_id":"acme","custom_attributes":{"tier":"gold"}}"#)
            XCTAssertEqual(try unknownAttribute.errorMessage(), "Custom attribute 'tier' does not exist")
        }
    }

    func test_contact_joinsListsAndLeavesCompanies() async throws {
        try await withSandbox { sandbox in
            let contact = try await sandbox.createContact(#"{"external_id":"u1"}"#)
            let companyID = try await sandbox.rest(.POST, "/companies", #"{"company_id":"acme"}"#).object()["id"] as? String
            let company = try XCTUnwrap(companyID)
            let join = try await sandbox.rest(.POST, "/contacts/\(contact)/companies", #"{"id":"\#(company)"}"#)
            XCTAssertEqual(join.status, 200, join.text)
            XCTAssertEqual(try join.object()["user_count"] as? Int, 1)
            let list = try await sandbox.rest(.GET, "/contacts/\(contact)/companies")
            XCTAssertEqual(
                (try list.object()["companies"] as? [[String: Any]])?.compactMap { $0["company_id"] as? String }, ["acme"])
            let pastTheEnd = try await sandbox.rest(.GET, "/contacts/\(contact)/companies?page=2")
            XCTAssertEqual(
                (try pastTheEnd.object()["companies"] as? [Any])?.count, 0,
                "a page past the end is empty, so page-number clients stop")
            let read = try await sandbox.rest(.GET, "/contacts/\(contact)")
            XCTAssertEqual(((try read.object()["companies"] as? [String: Any])?["total_count"] as? Int), 1)

            let unknown = try await sandbox.rest(.POST, "/contacts/\(contact)/companies", #"{"id":"nope"}"#)
            XCTAssertEqual(unknown.status, 404)
            let leave = try await sandbox.rest(.DELETE, "/contacts/\(contact)/companies/\(company)")
            XCTAssertEqual(leave.status, 200)
            let leaveAgain = try await sandbox.rest(.DELETE, "/contacts/\(contact)/companies/\(company)")
            XCTAssertEqual(leaveAgain.status, 404, "not a member")
            let stored = try await sandbox.stateContacts().first
            let state = try XCTUnwrap(stored)
            XCTAssertEqual((state["companies"] as? [Any])?.count, 0)
        }
    }

    /// Found while writing the `rest` fuzz target: the page's offset, `(page - 1) * per_page`, overflowed
    /// and trapped (the whole sandbox went down).
    func test_aPageNumberFarPastTheEnd_isAnEmptyPage() async throws {
        try await withSandbox { sandbox in
            let contact = try await sandbox.createContact(#"{"external_id":"u1"}"#)
            _ = try await sandbox.rest(.POST, "/companies", #"{"company_id":"acme"}"#)
            let farPage = "page=\(Int.max)&per_page=50"
            for path in ["/contacts/\(contact)/companies?\(farPage)", "/companies?\(farPage)"] {
                let reply = try await sandbox.rest(.GET, path)
                XCTAssertEqual(reply.status, 200, "\(path): \(reply.text)")
                let list = try reply.object()
                XCTAssertEqual(((list["companies"] ?? list["data"]) as? [Any])?.count, 0, path)
                XCTAssertEqual((list["pages"] as? [String: Any])?["page"] as? Int, Int.max, path)
            }
        }
    }

    func test_join_the1001stCompany_isContactCompanyLimitExceeded() async throws {
        try await withSandbox { sandbox in
            let ids = (0..<1001).map { "c\($0)" }
            let companies = ids.map { #"{"company_id":"\#($0)"}"# }.joined(separator: ",")
            let members = ids.prefix(1000).map { "\"\($0)\"" }.joined(separator: ",")
            let seeded = try await sandbox.seed(
                #"{"companies":[\#(companies)],"contacts":[{"external_id":"busy","companies":[\#(members)]}]}"#)
            let contact = try XCTUnwrap((seeded["contacts"] as? [[String: Any]])?.first?["id"] as? String)
            let last = try XCTUnwrap((seeded["companies"] as? [[String: Any]])?.last?["id"] as? String)
            let reply = try await sandbox.rest(.POST, "/contacts/\(contact)/companies", #"{"id":"\#(last)"}"#)
            XCTAssertEqual(reply.status, 400)
            XCTAssertEqual(try reply.errorCode(), "contact_company_limit_exceeded")
            let first = try XCTUnwrap((seeded["companies"] as? [[String: Any]])?.first?["id"] as? String)
            let rejoin = try await sandbox.rest(.POST, "/contacts/\(contact)/companies", #"{"id":"\#(first)"}"#)
            XCTAssertEqual(rejoin.status, 200, "joining a company it is in is no new membership")
        }
    }
}

final class APIVersionAndAuthTests: XCTestCase {
    private func headers(version: String?, auth: String = "Bearer \(Harness.token)") -> [(String, String)] {
        var list = [("Authorization", auth), ("Accept", "application/json"), ("Content-Type", "application/json")]
        if let version { list.append(("Intercom-Version", version)) }
        return list
    }

    func test_bulkOnlyUnder1x_restOnlyUnder2x_noHeaderMeansTheWorkspaceVersion() async throws {
        try await withSandbox { sandbox in
            let bulkUnder2 = try await sandbox.bulk("user", [user("u1")], headers: headers(version: "2.14"))
            XCTAssertEqual(bulkUnder2.status, 400)
            XCTAssertEqual(try bulkUnder2.errorCode(), "intercom_version_invalid")
            XCTAssertEqual(try bulkUnder2.errorMessage(), "Requested resource is not available in current API version")
            let jobUnderDefault = try await sandbox.get("/jobs/job_x", headers: headers(version: nil)).status
            XCTAssertEqual(jobUnderDefault, 400, "no header: 2.14")
            let restUnder1 = try await sandbox.rest(
                .POST, "/contacts", #"{"external_id":"u1"}"#, headers: headers(version: "1.4"))
            XCTAssertEqual(restUnder1.status, 400)
            XCTAssertEqual(try restUnder1.errorCode(), "intercom_version_invalid")
            let createUnderDefault = try await sandbox.rest(
                .POST, "/contacts", #"{"external_id":"u1"}"#, headers: headers(version: nil)
            ).status
            XCTAssertEqual(createUnderDefault, 200)
            let findUnder213 = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1", headers: headers(version: "2.13"))
                .status
            XCTAssertEqual(findUnder213, 200)
            let invalid = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1", headers: headers(version: "3.0"))
            XCTAssertEqual(invalid.status, 400)
            XCTAssertEqual(try invalid.errorCode(), "intercom_version_invalid")
        }
        try await withSandbox({ $0.defaultVersion = "1.4" }) { sandbox in
            let bulkUnderDefault14 = try await sandbox.bulk("user", [user("u1")], headers: headers(version: nil)).status
            XCTAssertEqual(bulkUnderDefault14, 202)
        }
    }

    func test_noBulk_makesTheBulkAPIUnavailableUnderEveryVersion() async throws {
        try await withSandbox({ $0.bulkAvailable = false }) { sandbox in
            for version in ["1.4", "1.0", "2.14"] {
                let reply = try await sandbox.bulk("user", [user("u1")], headers: headers(version: version))
                XCTAssertEqual(reply.status, 400, version)
                XCTAssertEqual(try reply.errorCode(), "intercom_version_invalid")
            }
            let restCreate = try await sandbox.rest(.POST, "/contacts", #"{"external_id":"u1"}"#).status
            XCTAssertEqual(restCreate, 200)
        }
    }

    func test_auth_basicTokenWithEmptyPassword_andBasicAppIDKey_workForBothAPIs() async throws {
        try await withSandbox({
            $0.appID = "app"
            $0.apiKey = "key"
        }) { sandbox in
            let tokenBasic = "Basic " + Data("\(Harness.token):".utf8).base64EncodedString()
            let pairBasic = "Basic " + Data("app:key".utf8).base64EncodedString()
            let bulkWithTokenBasic = try await sandbox.bulk(
                "user", [user("u1")], headers: headers(version: "1.4", auth: tokenBasic)
            ).status
            XCTAssertEqual(bulkWithTokenBasic, 202)
            let restWithTokenBasic = try await sandbox.rest(
                .GET, "/contacts/find_by_external_id/u1", headers: headers(version: "2.14", auth: tokenBasic)
            ).status
            XCTAssertEqual(restWithTokenBasic, 200)
            let restWithPairBasic = try await sandbox.rest(
                .GET, "/contacts/find_by_external_id/u1", headers: headers(version: "2.14", auth: pairBasic)
            ).status
            XCTAssertEqual(restWithPairBasic, 200)
            let wrong = "Basic " + Data("not-the-token:".utf8).base64EncodedString()
            let refused = try await sandbox.rest(
                .GET, "/contacts/find_by_external_id/u1", headers: headers(version: "2.14", auth: wrong))
            XCTAssertEqual(refused.status, 401)
            XCTAssertEqual(try refused.errorMessage(), "Access Token Invalid")
            XCTAssertNil(refused.headers.first(name: "X-RateLimit-Remaining"), "no budget headers without auth")
        }
    }

    func test_rateLimit_oneBudgetForBothAPIs_andBulkCostItems() async throws {
        let clock = SandboxManualClock()
        try await withSandbox({
            $0.clock = clock.clock
            $0.rateLimitPerWindow = 3
        }) { sandbox in
            let bulk = try await sandbox.bulk("user", [user("u1"), user("u2")]).status
            XCTAssertEqual(bulk, 202)
            let rest = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1")
            XCTAssertEqual(rest.headers.first(name: "X-RateLimit-Remaining"), "1")
            let attributes = try await sandbox.rest(.GET, "/data_attributes").status
            XCTAssertEqual(attributes, 200)
            let limited = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1")
            XCTAssertEqual(limited.status, 429)
            XCTAssertEqual(try limited.errorCode(), "rate_limit_exceeded")
        }
        try await withSandbox({
            $0.clock = clock.clock
            $0.rateLimitPerWindow = 5
            $0.bulkCost = .items
        }) { sandbox in
            let bulk = try await sandbox.bulk("user", [user("u1"), user("u2"), user("u3")])
            XCTAssertEqual(bulk.status, 202)
            XCTAssertEqual(bulk.headers.first(name: "X-RateLimit-Remaining"), "2", "three items, three units")
            let secondBulk = try await sandbox.bulk("user", [user("u4"), user("u5"), user("u6")]).status
            XCTAssertEqual(secondBulk, 429, "three more do not fit")
            let remaining = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1").headers.first(
                name: "X-RateLimit-Remaining")
            XCTAssertEqual(remaining, "1")
        }
    }

    func test_faults_hitRESTWritesAndNotReads() async throws {
        try await withSandbox({
            $0.failRate = 1
            $0.seed = 3
        }) { sandbox in
            var statuses: [Int] = []
            for index in 0..<12 {
                do {
                    statuses.append(try await sandbox.rest(.POST, "/contacts", #"{"external_id":"f\#(index)"}"#).status)
                } catch {
                    statuses.append(0)
                }
            }
            XCTAssertTrue(statuses.allSatisfy { [0, 500, 503].contains($0) }, "\(statuses)")
            XCTAssertTrue(statuses.contains(0) && statuses.contains(500), "\(statuses)")
            let contactCount = try await sandbox.stateContacts().count
            XCTAssertEqual(contactCount, 0, "a faulted call applies nothing")
            let read = try await sandbox.rest(.GET, "/contacts/find_by_external_id/f1").status
            XCTAssertEqual(read, 404, "reads answer")
        }
    }
}

final class OneWorkspaceTests: XCTestCase {
    func test_bulkUsersCompaniesAndEvents_areWhatTheRESTCallsSee() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.bulkJob(
                "user",
                [
                    user(
                        "u1",
                        extra:
                            #""email":"u1@example.com","name":"Ada","last_request_at":1700000000,"custom_attributes":{"plan":"pro"},"companies":[{"company_id":"acme","name":"Acme","custom_attributes":{"tier":"gold"}}]"#
                    )
                ])
            _ = try await sandbox.bulkJob("event", [event("u1", "paid", at: 1_700_000_100)])

            let found = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1")
            XCTAssertEqual(found.status, 200, found.text)
            let contact = try found.object()
            XCTAssertEqual(contact["name"] as? String, "Ada")
            XCTAssertEqual(contact["last_seen_at"] as? Int, 1_700_000_000, "last_request_at is last_seen_at")
            XCTAssertTrue(sameJSON(contact["custom_attributes"], #"{"plan":"pro"}"#))
            let id = try XCTUnwrap(contact["id"] as? String)
            let companies = try await sandbox.rest(.GET, "/contacts/\(id)/companies")
            XCTAssertEqual((try companies.object()["companies"] as? [[String: Any]])?.first?["company_id"] as? String, "acme")
            // The bulk API created the attributes it used; 2.x calls may now use them.
            let attributes = try await sandbox.rest(.GET, "/data_attributes?model=company")
            XCTAssertTrue(
                (try attributes.object()["data"] as? [[String: Any]])?.contains { $0["name"] as? String == "tier" } ?? false)
            // The same event sent again through 2.x is a duplicate of the bulk one.
            let resent = try await sandbox.rest(
                .POST, "/events", #"{"event_name":"paid","created_at":1700000100,"user_id":"u1"}"#
            ).status
            XCTAssertEqual(resent, 202)
            let storedEvents = try await sandbox.workspaceState()["events"] as? [[String: Any]]
            let events = try XCTUnwrap(storedEvents)
            XCTAssertEqual(events.count, 1)
            XCTAssertEqual(events.first?["contact_id"] as? String, id)
            let conflict = try await sandbox.rest(.POST, "/contacts", #"{"email":"u1@example.com"}"#)
            XCTAssertEqual(try conflict.errorMessage(), "A contact matching those details already exists with id=\(id)")

            // The 1.x way to read a user back, under 1.x only.
            let legacy = try await sandbox.get("/users?user_id=u1")
            XCTAssertEqual(legacy.status, 200, legacy.text)
            let legacyUser = try legacy.object()
            XCTAssertEqual(legacyUser["type"] as? String, "user")
            XCTAssertEqual(legacyUser["id"] as? String, id)
            XCTAssertEqual(legacyUser["last_request_at"] as? Int, 1_700_000_000)
            XCTAssertEqual(
                ((legacyUser["companies"] as? [String: Any])?["companies"] as? [[String: Any]])?.first?["company_id"] as? String,
                "acme")
            let byEmail = try await sandbox.get("/users?email=u1@example.com")
            XCTAssertEqual(byEmail.status, 200)
            let unknown = try await sandbox.get("/users?user_id=nobody")
            XCTAssertEqual(unknown.status, 404)
            let under2x = try await sandbox.get("/users?user_id=u1", headers: Harness.restHeaders)
            XCTAssertEqual(under2x.status, 400)
        }
    }

    func test_aBulkRunAndARESTRun_ofTheSameItems_leaveTheSameState() async throws {
        func comparable(_ state: [String: Any]) -> NSDictionary {
            func strip(_ list: Any?, _ keys: [String]) -> [NSDictionary] {
                ((list as? [[String: Any]]) ?? []).map { entry in
                    var copy = entry
                    for key in keys { copy[key] = nil }
                    return copy as NSDictionary
                }
            }
            return [
                "contacts": strip(state["contacts"], ["id", "created_at", "updated_at"]),
                "companies": strip(state["companies"], ["id", "created_at", "updated_at"]),
                "events": strip(state["events"], ["contact_id"]),
            ] as NSDictionary
        }
        var bulkState: [String: Any] = [:]
        try await withSandbox { sandbox in
            _ = try await sandbox.bulkJob(
                "user",
                [
                    user(
                        "u2",
                        extra:
                            #""email":"b@example.com","custom_attributes":{"seats":3},"companies":[{"company_id":"c1","name":"One"}]"#
                    ),
                    user("u1", extra: #""name":"Ada""#),
                ])
            _ = try await sandbox.bulkJob("event", [event("u1", "paid", at: 5), event("u2", "left", at: 6)])
            bulkState = try await sandbox.workspaceState()
        }
        try await withSandbox { sandbox in
            _ = try await sandbox.rest(.POST, "/data_attributes", #"{"name":"seats","model":"contact","data_type":"integer"}"#)
            _ = try await sandbox.createContact(#"{"role":"user","external_id":"u1","name":"Ada"}"#)
            let u2 = try await sandbox.createContact(
                #"{"role":"user","external_id":"u2","email":"b@example.com","custom_attributes":{"seats":3}}"#)
            let companyID =
                try await sandbox.rest(.POST, "/companies", #"{"company_id":"c1","name":"One"}"#).object()["id"] as? String
            let company = try XCTUnwrap(companyID)
            let join = try await sandbox.rest(.POST, "/contacts/\(u2)/companies", #"{"id":"\#(company)"}"#).status
            XCTAssertEqual(join, 200)
            let leftEvent = try await sandbox.rest(.POST, "/events", #"{"event_name":"left","created_at":6,"user_id":"u2"}"#)
                .status
            XCTAssertEqual(leftEvent, 202)
            let paidEvent = try await sandbox.rest(.POST, "/events", #"{"event_name":"paid","created_at":5,"user_id":"u1"}"#)
                .status
            XCTAssertEqual(paidEvent, 202)
            let restState = try await sandbox.workspaceState()
            XCTAssertEqual(comparable(restState), comparable(bulkState))
            XCTAssertTrue(sameJSON(restState["data_attributes"], #"[{"name":"seats","model":"contact","data_type":"integer"}]"#))
        }
    }
}

final class AdminRouteTests: XCTestCase {
    func test_seed_isAllOrNothing_andNeedsNoAuth() async throws {
        try await withSandbox { sandbox in
            let bad = try await sandbox.post(
                "/sandbox/seed", #"{"contacts":[{"external_id":"a"},{"external_id":"a"}]}"#, headers: [])
            XCTAssertEqual(bad.status, 409, "the second contact clashes with the first")
            let contactCount = try await sandbox.stateContacts().count
            XCTAssertEqual(contactCount, 0, "nothing of a refused seed stays")
            let unknownKey = try await sandbox.post("/sandbox/seed", #"{"users":[]}"#, headers: [])
            XCTAssertEqual(unknownKey.status, 400)
            try await sandbox.seed(#"{"contacts":[{"external_id":"a","custom_attributes":{"n":1}}]}"#)
            let seededAttributes = try await sandbox.workspaceState()["data_attributes"] as? [[String: Any]]
            let attributes = try XCTUnwrap(seededAttributes)
            XCTAssertEqual(attributes.first?["data_type"] as? String, "integer", "a seeded value creates its attribute")
        }
    }

    func test_record_coversRESTWrites_andStateIsOrderedByData() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sandbox-rest-record-\(UUID().uuidString).ndjson"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await withSandbox({ $0.recordPath = path }) { sandbox in
            _ = try await sandbox.createContact(#"{"external_id":"zed"}"#)
            _ = try await sandbox.createContact(#"{"external_id":"amy"}"#)
            _ = try await sandbox.rest(.GET, "/contacts/find_by_external_id/amy")
            _ = try await sandbox.rest(.POST, "/contacts", #"{"external_id":"amy"}"#)  // 409: not a change
            let order = try await sandbox.stateContacts().compactMap { $0["external_id"] as? String }
            XCTAssertEqual(order, ["amy", "zed"])
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "\(lines)")
        XCTAssertTrue(
            sameJSON(
                try JSONSerialization.jsonObject(with: Data(lines[0].utf8)),
                #"{"method":"POST","path":"/contacts","status":200,"body":{"external_id":"zed"}}"#), String(lines[0]))
    }
}
