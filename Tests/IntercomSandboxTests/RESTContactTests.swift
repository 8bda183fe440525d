import Foundation
import IntercomSandbox
import XCTest

final class RESTContactTests: XCTestCase {
    func test_create_answers200WithAnID_andTheContactCanBeReadBack() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.rest(
                .POST, "/contacts",
                #"{"role":"user","external_id":"u1","email":"u1@example.com","name":"Ada","signed_up_at":1600000000}"#)
            XCTAssertEqual(reply.status, 200, reply.text)
            let created = try reply.object()
            let id = try XCTUnwrap(created["id"] as? String)
            XCTAssertEqual(created["type"] as? String, "contact")
            XCTAssertEqual(created["role"] as? String, "user")
            XCTAssertEqual(created["workspace_id"] as? String, "sandbox")
            XCTAssertNotNil(created["custom_attributes"] as? [String: Any])

            let byID = try await sandbox.rest(.GET, "/contacts/\(id)")
            XCTAssertEqual(byID.status, 200)
            XCTAssertEqual(try byID.object()["email"] as? String, "u1@example.com")
            let byExternal = try await sandbox.rest(.GET, "/contacts/find_by_external_id/u1")
            XCTAssertEqual(try byExternal.object()["id"] as? String, id)
            XCTAssertEqual(try byExternal.object()["signed_up_at"] as? Int, 1_600_000_000)

            let listed = try await sandbox.rest(.GET, "/contacts?per_page=10")
            XCTAssertEqual((try listed.object()["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }, [id])

            let missing = try await sandbox.rest(.GET, "/contacts/find_by_external_id/nobody")
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual(try missing.errorCode(), "not_found")
        }
    }

    func test_secondCreate_sameExternalIDOrUserEmail_is409NamingTheExistingContact() async throws {
        try await withSandbox { sandbox in
            let id = try await sandbox.createContact(#"{"role":"user","external_id":"u1","email":"a@example.com"}"#)
            for body in [
                #"{"role":"user","external_id":"u1"}"#, #"{"role":"user","external_id":"u2","email":"A@example.com"}"#,
                #"{"email":"a@example.com"}"#,
            ] {
                let reply = try await sandbox.rest(.POST, "/contacts", body)
                XCTAssertEqual(reply.status, 409, body)
                XCTAssertEqual(try reply.errorCode(), "conflict")
                XCTAssertEqual(try reply.errorMessage(), "A contact matching those details already exists with id=\(id)")
            }
            // Leads are not unique by email.
            let lead = try await sandbox.rest(.POST, "/contacts", #"{"role":"lead","email":"a@example.com"}"#)
            XCTAssertEqual(lead.status, 200, lead.text)
            XCTAssertEqual(try lead.object()["role"] as? String, "lead")
            let contactCount = try await sandbox.stateContacts().count
            XCTAssertEqual(contactCount, 2)
        }
    }

    func test_create_ofAnArchivedContactsDetails_is409WithTheArchivedMessage_untilUnarchived() async throws {
        try await withSandbox { sandbox in
            let seeded = try await sandbox.seed(
                #"{"contacts":[{"external_id":"old","email":"old@example.com","archived":true}]}"#)
            let id = try XCTUnwrap((seeded["contacts"] as? [[String: Any]])?.first?["id"] as? String)
            let reply = try await sandbox.rest(.POST, "/contacts", #"{"role":"user","external_id":"old"}"#)
            XCTAssertEqual(reply.status, 409)
            XCTAssertEqual(try reply.errorMessage(), "An archived contact matching those details already exists with id=\(id)")
            let find = try await sandbox.rest(.GET, "/contacts/find_by_external_id/old")
            XCTAssertEqual(find.status, 404, "an archived contact is not found by external id")

            let unarchived = try await sandbox.rest(.POST, "/contacts/\(id)/unarchive")
            XCTAssertEqual(unarchived.status, 200, unarchived.text)
            XCTAssertEqual(try unarchived.object()["archived"] as? Bool, false)
            let again = try await sandbox.rest(.POST, "/contacts", #"{"role":"user","email":"old@example.com"}"#)
            XCTAssertEqual(try again.errorMessage(), "A contact matching those details already exists with id=\(id)")

            let archived = try await sandbox.rest(.POST, "/contacts/\(id)/archive")
            XCTAssertEqual(try archived.object()["archived"] as? Bool, true)
            let update = try await sandbox.rest(.PUT, "/contacts/\(id)", #"{"name":"x"}"#)
            XCTAssertEqual(update.status, 404, "an archived contact takes no writes")
        }
    }

    func test_put_changesOnlyTheFieldsGiven_andNullClears() async throws {
        try await withSandbox { sandbox in
            try await sandbox.seed(
                #"{"data_attributes":[{"name":"plan_name","model":"contact","data_type":"string"},{"name":"seats","model":"contact","data_type":"integer"}]}"#
            )
            let id = try await sandbox.createContact(
                #"{"external_id":"u1","email":"u1@example.com","name":"Ada","phone":"123","custom_attributes":{"plan_name":"pro","seats":3}}"#
            )
            let reply = try await sandbox.rest(
                .PUT, "/contacts/\(id)", #"{"name":"Ada L","phone":null,"custom_attributes":{"seats":4}}"#)
            XCTAssertEqual(reply.status, 200, reply.text)
            let stored = try await sandbox.stateContacts().first
            let contact = try XCTUnwrap(stored)
            XCTAssertEqual(contact["name"] as? String, "Ada L")
            XCTAssertEqual(contact["email"] as? String, "u1@example.com", "not given: kept")
            XCTAssertTrue(contact["phone"] is NSNull, "null clears")
            XCTAssertTrue(sameJSON(contact["custom_attributes"], #"{"plan_name":"pro","seats":4}"#), "\(contact)")

            let unknown = try await sandbox.rest(.PUT, "/contacts/nope", #"{"name":"x"}"#)
            XCTAssertEqual(unknown.status, 404)
            let badField = try await sandbox.rest(.PUT, "/contacts/\(id)", #"{"last_request_at":5}"#)
            XCTAssertEqual(badField.status, 400, "a field 2.x does not have is refused")
            XCTAssertEqual(try badField.errorCode(), "parameter_invalid")
            let toLead = try await sandbox.rest(.PUT, "/contacts/\(id)", #"{"role":"lead"}"#)
            XCTAssertEqual(toLead.status, 400)
        }
    }

    func test_put_toAnotherContactsExternalIDOrEmail_is409() async throws {
        try await withSandbox { sandbox in
            let first = try await sandbox.createContact(#"{"external_id":"u1","email":"one@example.com"}"#)
            let second = try await sandbox.createContact(#"{"external_id":"u2","email":"two@example.com"}"#)
            let clash = try await sandbox.rest(.PUT, "/contacts/\(second)", #"{"email":"one@example.com"}"#)
            XCTAssertEqual(clash.status, 409)
            XCTAssertEqual(try clash.errorMessage(), "A contact matching those details already exists with id=\(first)")
            let same = try await sandbox.rest(.PUT, "/contacts/\(first)", #"{"email":"one@example.com","external_id":"u1"}"#)
            XCTAssertEqual(same.status, 200, "its own details are no clash")
        }
    }

    func test_customAttributes_mustExistWithTheRightType_elseTheWholeCallIs400() async throws {
        try await withSandbox { sandbox in
            let missing = try await sandbox.rest(
                .POST, "/contacts", #"{"external_id":"u1","name":"Ada","custom_attributes":{"plan_name":"pro"}}"#)
            XCTAssertEqual(missing.status, 400)
            XCTAssertEqual(try missing.errorCode(), "parameter_invalid")
            XCTAssertEqual(try missing.errorMessage(), "Custom attribute 'plan_name' does not exist")
            let contactCount = try await sandbox.stateContacts().count
            XCTAssertEqual(contactCount, 0, "nothing of the call applied")

            for (name, type) in [("plan_name", "string"), ("seats", "integer"), ("score", "float"), ("vip", "boolean")] {
                let reply = try await sandbox.rest(
                    .POST, "/data_attributes", #"{"name":"\#(name)","model":"contact","data_type":"\#(type)"}"#)
                XCTAssertEqual(reply.status, 200, reply.text)
            }
            let companyOnly = try await sandbox.rest(
                .POST, "/data_attributes", #"{"name":"tier","model":"company","data_type":"string"}"#)
            XCTAssertEqual(companyOnly.status, 200)
            let id = try await sandbox.createContact(
                #"{"external_id":"u1","custom_attributes":{"plan_name":"pro","seats":2,"score":3,"vip":true}}"#)

            for body in [
                #"{"custom_attributes":{"seats":"2"}}"#, #"{"custom_attributes":{"seats":2.5}}"#,
                #"{"custom_attributes":{"vip":1}}"#, #"{"custom_attributes":{"plan_name":5}}"#,
                #"{"name":"B","custom_attributes":{"tier":"gold"}}"#,
            ] {
                let reply = try await sandbox.rest(.PUT, "/contacts/\(id)", body)
                XCTAssertEqual(reply.status, 400, body)
                XCTAssertEqual(try reply.errorCode(), "parameter_invalid", body)
            }
            let stored = try await sandbox.stateContacts().first
            let contact = try XCTUnwrap(stored)
            XCTAssertTrue(contact["name"] is NSNull, "a refused call changes nothing")
            XCTAssertTrue(
                sameJSON(contact["custom_attributes"], #"{"plan_name":"pro","score":3,"seats":2,"vip":true}"#), "\(contact)")
        }
    }

    func test_mergedContact_answers410PointingAtTheSurvivor() async throws {
        try await withSandbox { sandbox in
            let seeded = try await sandbox.seed(
                #"{"contacts":[{"role":"lead","email":"lead@example.com"},{"external_id":"u1","email":"u1@example.com"}],"merge":[{"from":"lead@example.com","into":"u1"}]}"#
            )
            let ids = try XCTUnwrap(seeded["contacts"] as? [[String: Any]]).compactMap { $0["id"] as? String }
            for reply in [
                try await sandbox.rest(.GET, "/contacts/\(ids[0])"),
                try await sandbox.rest(.PUT, "/contacts/\(ids[0])", #"{"name":"x"}"#),
            ] {
                XCTAssertEqual(reply.status, 410, reply.text)
                XCTAssertEqual(try reply.errorCode(), "contact_merged")
                XCTAssertTrue(try XCTUnwrap(reply.errorMessage()).hasSuffix("id=\(ids[1])"), reply.text)
            }
            let survivor = try await sandbox.rest(.GET, "/contacts/\(ids[1])")
            XCTAssertEqual(survivor.status, 200)
        }
    }
}

final class RESTSearchTests: XCTestCase {
    private func searchIDs(_ sandbox: Harness, _ body: String, file: StaticString = #filePath, line: UInt = #line) async throws
        -> (ids: [String], total: Int, next: String?)
    {
        let reply = try await sandbox.rest(.POST, "/contacts/search", body)
        XCTAssertEqual(reply.status, 200, reply.text, file: file, line: line)
        let object = try reply.object()
        XCTAssertEqual(object["type"] as? String, "list", file: file, line: line)
        let data = try XCTUnwrap(object["data"] as? [[String: Any]], file: file, line: line)
        let next = ((object["pages"] as? [String: Any])?["next"] as? [String: Any])?["starting_after"] as? String
        return (data.compactMap { $0["external_id"] as? String }, object["total_count"] as? Int ?? -1, next)
    }

    func test_search_equalsOnExternalIDAndEmail_andOr_andPagination() async throws {
        try await withSandbox { sandbox in
            for index in 1...5 {
                _ = try await sandbox.createContact(
                    #"{"external_id":"u\#(index)","email":"u\#(index)@example.com","name":"\#(index % 2 == 0 ? "even" : "odd")"}"#
                )
            }
            let byID = try await searchIDs(sandbox, #"{"query":{"field":"external_id","operator":"=","value":"u3"}}"#)
            XCTAssertEqual(byID.ids, ["u3"])
            XCTAssertEqual(byID.total, 1)
            let byEmail = try await searchIDs(sandbox, #"{"query":{"field":"email","operator":"=","value":"U4@example.com"}}"#)
            XCTAssertEqual(byEmail.ids, ["u4"])
            let or = try await searchIDs(
                sandbox,
                #"{"query":{"operator":"OR","value":[{"field":"external_id","operator":"=","value":"u1"},{"field":"email","operator":"=","value":"u5@example.com"}]}}"#
            )
            XCTAssertEqual(or.ids, ["u1", "u5"])
            let and = try await searchIDs(
                sandbox,
                #"{"query":{"operator":"AND","value":[{"field":"name","operator":"=","value":"odd"},{"field":"external_id","operator":"!=","value":"u1"}]}}"#
            )
            XCTAssertEqual(and.ids, ["u3", "u5"])

            var seen: [String] = []
            var cursor: String?
            var pagesRead = 0
            repeat {
                pagesRead += 1
                let pagination =
                    cursor.map { #","pagination":{"per_page":2,"starting_after":"\#($0)"}"# } ?? #","pagination":{"per_page":2}"#
                let page = try await searchIDs(
                    sandbox, #"{"query":{"field":"email","operator":"~","value":"example.com"}"# + pagination + "}")
                XCTAssertEqual(page.total, 5)
                XCTAssertLessThanOrEqual(page.ids.count, 2)
                seen += page.ids
                cursor = page.next
            } while cursor != nil && pagesRead < 10
            XCTAssertEqual(pagesRead, 3, "five contacts, two a page")
            XCTAssertEqual(seen, ["u1", "u2", "u3", "u4", "u5"], "every contact once, in order")

            let badField = try await sandbox.rest(
                .POST, "/contacts/search", #"{"query":{"field":"nope","operator":"=","value":1}}"#)
            XCTAssertEqual(badField.status, 400)
            let badCursor = try await sandbox.rest(
                .POST, "/contacts/search",
                #"{"query":{"field":"email","operator":"=","value":"x"},"pagination":{"starting_after":"garbage"}}"#)
            XCTAssertEqual(badCursor.status, 400)
        }
    }

    /// Found while writing the `rest` fuzz target: a cursor decoding to offset Int.max made the page
    /// number `offset / per_page + 1` overflow and trap.
    func test_aCursorAtTheLargestOffset_isAnEmptyPage() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.createContact(#"{"external_id":"u1"}"#)
            let cursor = Data("sandbox-offset:\(Int.max)".utf8).base64EncodedString()
            let listed = try await sandbox.rest(.GET, "/contacts?per_page=1&starting_after=\(cursor)")
            XCTAssertEqual(listed.status, 200, listed.text)
            XCTAssertEqual((try listed.object()["data"] as? [Any])?.count, 0)
            XCTAssertEqual((try listed.object()["pages"] as? [String: Any])?["page"] as? Int, Int.max)
            let searched = try await searchIDs(
                sandbox,
                #"{"query":{"field":"external_id","operator":"=","value":"u1"},"pagination":{"per_page":1,"starting_after":"\#(cursor)"}}"#
            )
            XCTAssertEqual(searched.ids, [])
            XCTAssertEqual(searched.total, 1)
            XCTAssertNil(searched.next)
        }
    }

    func test_searchLag_hidesNewContactsFromSearchOnly_untilTheClockPasses() async throws {
        let clock = SandboxManualClock()
        try await withSandbox({
            $0.clock = clock.clock
            $0.searchLagSeconds = 60
        }) { sandbox in
            let id = try await sandbox.createContact(#"{"external_id":"fresh","email":"fresh@example.com"}"#)
            let query = #"{"query":{"field":"external_id","operator":"=","value":"fresh"}}"#
            let hidden = try await searchIDs(sandbox, query)
            XCTAssertEqual(hidden.ids, [], "search lags")
            XCTAssertEqual(hidden.total, 0)
            let found = try await sandbox.rest(.GET, "/contacts/find_by_external_id/fresh")
            XCTAssertEqual(try found.object()["id"] as? String, id, "find_by_external_id sees it at once")
            let conflict = try await sandbox.rest(.POST, "/contacts", #"{"external_id":"fresh"}"#)
            XCTAssertEqual(conflict.status, 409, "so does the conflict check")

            clock.advance(seconds: 59)
            let beforeTheLag = try await searchIDs(sandbox, query).ids
            XCTAssertEqual(beforeTheLag, [])
            clock.advance(seconds: 1)
            let afterTheLag = try await searchIDs(sandbox, query).ids
            XCTAssertEqual(afterTheLag, ["fresh"])
        }
    }
}
