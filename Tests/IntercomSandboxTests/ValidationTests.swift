import AsyncHTTPClient
import Foundation
import IntercomSandbox
import XCTest

/// The request-level rules (a malformed body is refused whole) and the item-level rules (a
/// well-formed request is accepted and each bad item goes to the job's error feed).
final class ValidationTests: XCTestCase {
    // MARK: whole requests

    func test_body_notJSON_is400BadRequest() async throws {
        try await withSandbox { sandbox in
            for body in ["{\"items\": [", "not json", "", "{\"items\":[]} trailing"] {
                let reply = try await sandbox.post("/bulk/users", body)
                XCTAssertEqual(reply.status, 400, "body \(body): \(reply.text)")
                XCTAssertEqual(try reply.errorCode(), "bad_request")
            }
            let notObject = try await sandbox.post("/bulk/users", "[1,2]")
            XCTAssertEqual(notObject.status, 400)
            XCTAssertEqual(try notObject.errorCode(), "bad_request")
        }
    }

    func test_body_withoutItemsArray_is422ParameterInvalid() async throws {
        try await withSandbox { sandbox in
            for body in [#"{}"#, #"{"items": {"a": 1}}"#, #"{"items": "x"}"#, #"{"items": []}"#] {
                let reply = try await sandbox.post("/bulk/users", body)
                XCTAssertEqual(reply.status, 422, body)
                let error = try reply.firstError()
                XCTAssertEqual(error["code"] as? String, "parameter_invalid")
                XCTAssertEqual(error["field"] as? String, "items")
            }
        }
    }

    func test_body_moreThan100Items_is422_and100IsFine() async throws {
        try await withSandbox { sandbox in
            let tooMany = try await sandbox.bulk("user", (0..<101).map { user("u\($0)") })
            XCTAssertEqual(tooMany.status, 422)
            XCTAssertEqual(try tooMany.errorCode(), "parameter_invalid")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0)

            let hundred = try await sandbox.bulk("user", (0..<100).map { user("u\($0)") })
            XCTAssertEqual(hundred.status, 202)
            XCTAssertEqual(sandbox.server.acceptedItems().count, 100)
        }
    }

    func test_body_itemThatIsNotAnObject_is422() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.post(
                "/bulk/users", #"{"items":[{"method":"post","data_type":"user","data":{"user_id":"a"}}, 5]}"#)
            XCTAssertEqual(reply.status, 422)
            let error = try reply.firstError()
            XCTAssertEqual(error["code"] as? String, "parameter_invalid")
            XCTAssertEqual(error["field"] as? String, "items[1]")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0, "a refused request applies none of its items")
        }
    }

    func test_body_malformedJobReference_is422() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.post(
                "/bulk/users", #"{"items":[{"method":"post","data_type":"user","data":{"user_id":"a"}}],"job":{"id":7}}"#)
            XCTAssertEqual(reply.status, 422)
            XCTAssertEqual(try reply.firstError()["field"] as? String, "job.id")
        }
    }

    func test_contentType_missingOrNotJSON_is415() async throws {
        try await withSandbox { sandbox in
            let body = bulkBody("user", [user("u1")])
            let withoutType = Harness.standardHeaders.filter { $0.0 != "Content-Type" }
            for headers in [
                withoutType, withoutType + [("Content-Type", "text/plain")],
                withoutType + [("Content-Type", "application/x-www-form-urlencoded")],
            ] {
                let reply = try await sandbox.post("/bulk/users", body, headers: headers)
                XCTAssertEqual(reply.status, 415)
                XCTAssertEqual(try reply.errorCode(), "unsupported_media_type")
            }
            let withCharset = try await sandbox.post(
                "/bulk/users", body, headers: withoutType + [("Content-Type", "application/json; charset=utf-8")])
            XCTAssertEqual(withCharset.status, 202, "parameters after the media type are fine")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 1)
        }
    }

    func test_body_overTheSizeLimit_is413_andTheConnectionStaysUsable() async throws {
        try await withSandbox({ $0.maxBodyBytes = 1_000 }) { sandbox in
            let big = try await sandbox.bulk("user", (0..<50).map { user("user-\($0)") })
            XCTAssertEqual(big.status, 413)
            XCTAssertEqual(try big.errorCode(), "request_entity_too_large")
            let small = try await sandbox.bulk("user", [user("u1")])
            XCTAssertEqual(small.status, 202)
        }
    }

    func test_unknownPath_is404_andWrongMethodIs405() async throws {
        try await withSandbox { sandbox in
            let unknown = try await sandbox.get("/conversations")
            XCTAssertEqual(unknown.status, 404)
            XCTAssertEqual(try unknown.errorCode(), "not_found")
            let wrong = try await sandbox.get("/bulk/users")
            XCTAssertEqual(wrong.status, 405)
            XCTAssertEqual(wrong.headers.first(name: "Allow"), "POST")
        }
    }

    // MARK: the Accept header

    func test_accept_missingOrWrong_failsEveryItemWithMediaTypeNotAcceptable() async throws {
        try await withSandbox { sandbox in
            let withoutAccept = Harness.standardHeaders.filter { $0.0 != "Accept" }
            for headers in [withoutAccept, withoutAccept + [("Accept", "text/html")], withoutAccept + [("Accept", "*/*")]] {
                let reply = try await sandbox.bulk("user", [user("u1"), user("u2")], headers: headers)
                XCTAssertEqual(reply.status, 202, "the request is accepted; its items fail")
                let jobID = try XCTUnwrap(reply.object()["id"] as? String)
                let errors = try await sandbox.errorItems(jobID)
                XCTAssertEqual(errors.count, 2)
                for item in errors {
                    XCTAssertEqual((item["error"] as? [String: Any])?["code"] as? String, "media_type_not_acceptable")
                }
            }
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0)
            XCTAssertEqual(sandbox.server.stats().itemsFailedByCode["media_type_not_acceptable"], 6)

            let listed = try await sandbox.bulk(
                "user", [user("u3")], headers: withoutAccept + [("Accept", "text/plain, application/json;q=0.9")])
            let jobID = try XCTUnwrap(listed.object()["id"] as? String)
            let errors = try await sandbox.errorItems(jobID)
            XCTAssertEqual(errors.count, 0, "application/json among others is acceptable")
        }
    }

    // MARK: items, one rule a case

    private struct Case {
        var rule: String
        var type: String
        /// The whole item, so item-level fields can be broken too.
        var item: String
        /// The echoed `data` to find the item in the error feed (the item's data as sent).
        var data: String
        /// nil: the item must be accepted.
        var code: String?

        init(_ rule: String, _ type: String, data: String, fails: Bool) {
            self.rule = rule
            self.type = type
            self.item = #"{"method":"post","data_type":"\#(type)","data":\#(data)}"#
            self.data = data
            self.code = fails ? "parameter_invalid" : nil
        }

        init(_ rule: String, _ type: String, item: String, data: String) {
            self.rule = rule
            self.type = type
            self.item = item
            self.data = data
            self.code = "parameter_invalid"
        }
    }

    private var cases: [Case] {
        let long255 = String(repeating: "é", count: 255)
        let long256 = String(repeating: "é", count: 256)
        let tenKeys = (1...10).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        let elevenKeys = (1...11).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        return [
            // item level
            Case(
                "method must be post", "user", item: #"{"method":"delete","data_type":"user","data":{"user_id":"m1"}}"#,
                data: #"{"user_id":"m1"}"#),
            Case(
                "method is required", "user", item: #"{"data_type":"user","data":{"user_id":"m2"}}"#, data: #"{"user_id":"m2"}"#),
            Case(
                "data_type must match the path", "user", item: #"{"method":"post","data_type":"event","data":{"user_id":"m3"}}"#,
                data: #"{"user_id":"m3"}"#),
            Case(
                "data_type must match the path (events)", "event",
                item: #"{"method":"post","data_type":"user","data":{"user_id":"m4","event_name":"e","created_at":1}}"#,
                data: #"{"user_id":"m4","event_name":"e","created_at":1}"#),
            Case("data must be an object", "user", item: #"{"method":"post","data_type":"user","data":"m5"}"#, data: #""m5""#),
            // users
            Case("user with user_id", "user", data: #"{"user_id":"ok1"}"#, fails: false),
            Case("user with email only", "user", data: #"{"email":"ok2@example.com"}"#, fails: false),
            Case("user needs user_id or email", "user", data: #"{"name":"Nobody"}"#, fails: true),
            Case("empty user_id and no email", "user", data: #"{"user_id":"","name":"Empty"}"#, fails: true),
            Case("user_id must be a string", "user", data: #"{"user_id":42}"#, fails: true),
            Case("email without @", "user", data: #"{"user_id":"e1","email":"no-at-sign"}"#, fails: true),
            Case("email with two @", "user", data: #"{"user_id":"e2","email":"a@b@c"}"#, fails: true),
            Case("email with nothing before @", "user", data: #"{"email":"@example.com"}"#, fails: true),
            Case("email with nothing after @", "user", data: #"{"email":"someone@"}"#, fails: true),
            Case(
                "scalar custom attributes", "user",
                data: #"{"user_id":"ca1","custom_attributes":{"plan":"pro","seats":3,"ratio":2.50,"vip":true,"gone":null}}"#,
                fails: false),
            Case(
                "custom attribute string of 255 characters", "user",
                data: #"{"user_id":"ca2","custom_attributes":{"bio":"\#(long255)"}}"#, fails: false),
            Case(
                "custom attribute string over 255 characters", "user",
                data: #"{"user_id":"ca3","custom_attributes":{"bio":"\#(long256)"}}"#, fails: true),
            Case(
                "custom attribute nested object", "user",
                data: #"{"user_id":"ca4","custom_attributes":{"address":{"city":"Oslo"}}}"#, fails: true),
            Case(
                "custom attribute array", "user", data: #"{"user_id":"ca5","custom_attributes":{"tags":["a","b"]}}"#, fails: true),
            Case(
                "custom attribute name with a dot", "user", data: #"{"user_id":"ca6","custom_attributes":{"a.b":1}}"#, fails: true
            ),
            Case(
                "custom attribute name with a dollar", "user", data: #"{"user_id":"ca7","custom_attributes":{"$set":1}}"#,
                fails: true),
            Case("custom_attributes must be an object", "user", data: #"{"user_id":"ca8","custom_attributes":[1]}"#, fails: true),
            Case("signed_up_at must be an integer", "user", data: #"{"user_id":"f1","signed_up_at":"2024-01-01"}"#, fails: true),
            Case(
                "companies with company_id", "user",
                data:
                    #"{"user_id":"c1","companies":[{"company_id":"acme","name":"Acme","monthly_spend":12.5,"size":40,"custom_attributes":{"tier":"gold"}}]}"#,
                fails: false),
            Case(
                "company removal", "user", data: #"{"user_id":"c2","companies":[{"company_id":"acme","remove":true}]}"#,
                fails: false),
            Case("companies must be an array", "user", data: #"{"user_id":"c3","companies":{"company_id":"acme"}}"#, fails: true),
            Case("company needs company_id", "user", data: #"{"user_id":"c4","companies":[{"name":"Acme"}]}"#, fails: true),
            Case("company must be an object", "user", data: #"{"user_id":"c5","companies":["acme"]}"#, fails: true),
            Case(
                "company custom attribute nested", "user",
                data: #"{"user_id":"c6","companies":[{"company_id":"acme","custom_attributes":{"hq":{"city":"Oslo"}}}]}"#,
                fails: true),
            Case(
                "company custom attribute over 255", "user",
                data: #"{"user_id":"c7","companies":[{"company_id":"acme","custom_attributes":{"note":"\#(long256)"}}]}"#,
                fails: true),
            Case(
                "company remove must be a boolean", "user",
                data: #"{"user_id":"c8","companies":[{"company_id":"acme","remove":"yes"}]}"#, fails: true),
            // events
            Case(
                "event with user_id", "event", data: #"{"user_id":"v1","event_name":"paid","created_at":1700000001}"#,
                fails: false),
            Case(
                "event with email only", "event",
                data: #"{"email":"v2@example.com","event_name":"paid","created_at":1700000002}"#, fails: false),
            Case("event needs event_name", "event", data: #"{"user_id":"v3","created_at":1700000003}"#, fails: true),
            Case(
                "event_name must be non-empty", "event", data: #"{"user_id":"v4","event_name":"","created_at":1700000004}"#,
                fails: true),
            Case("event needs created_at", "event", data: #"{"user_id":"v5","event_name":"paid"}"#, fails: true),
            Case(
                "created_at must be an integer, not a string", "event",
                data: #"{"user_id":"v6","event_name":"paid","created_at":"1700000006"}"#, fails: true),
            Case(
                "created_at must be an integer, not a fraction", "event",
                data: #"{"user_id":"v7","event_name":"paid","created_at":1700000007.5}"#, fails: true),
            Case("event needs a user", "event", data: #"{"event_name":"paid","created_at":1700000008}"#, fails: true),
            Case(
                "event email must look like an email", "event",
                data: #"{"email":"v9","event_name":"paid","created_at":1700000009}"#, fails: true),
            Case(
                "metadata scalars and rich values", "event",
                data:
                    #"{"user_id":"md1","event_name":"paid","created_at":1700000010,"metadata":{"price":{"amount":1999,"currency":"usd"},"invoice":{"url":"https://x.test/i/1","value":"Invoice 1"},"n":1,"s":"x","b":false,"z":null}}"#,
                fails: false),
            Case(
                "metadata with 10 keys", "event",
                data: #"{"user_id":"md2","event_name":"paid","created_at":1700000011,"metadata":{\#(tenKeys)}}"#, fails: false),
            Case(
                "metadata with 11 keys", "event",
                data: #"{"user_id":"md3","event_name":"paid","created_at":1700000012,"metadata":{\#(elevenKeys)}}"#, fails: true),
            Case(
                "metadata nested object that is not a rich value", "event",
                data: #"{"user_id":"md4","event_name":"paid","created_at":1700000013,"metadata":{"address":{"city":"Oslo"}}}"#,
                fails: true),
            Case(
                "metadata rich value with an extra key", "event",
                data:
                    #"{"user_id":"md5","event_name":"paid","created_at":1700000014,"metadata":{"price":{"amount":1,"currency":"usd","tax":0}}}"#,
                fails: true),
            Case(
                "metadata array", "event",
                data: #"{"user_id":"md6","event_name":"paid","created_at":1700000015,"metadata":{"tags":["a"]}}"#, fails: true),
            Case(
                "metadata name with a dollar", "event",
                data: #"{"user_id":"md7","event_name":"paid","created_at":1700000016,"metadata":{"$x":1}}"#, fails: true),
            Case(
                "metadata name with a dot", "event",
                data: #"{"user_id":"md8","event_name":"paid","created_at":1700000017,"metadata":{"a.b":1}}"#, fails: true),
            Case(
                "metadata string longer than 255 is fine", "event",
                data: #"{"user_id":"md9","event_name":"paid","created_at":1700000018,"metadata":{"note":"\#(long256)"}}"#,
                fails: false),
        ]
    }

    func test_items_eachRule_failsOrPassesWithTheRightCode() async throws {
        let cases = self.cases
        try await withSandbox { sandbox in
            for type in ["user", "event"] {
                let selected = cases.filter { $0.type == type }
                let body = #"{"items":["# + selected.map(\.item).joined(separator: ",") + "]}"
                let reply = try await sandbox.post("/bulk/\(type)s", body)
                XCTAssertEqual(reply.status, 202, "a well-formed request is accepted even with bad items: \(reply.text)")
                let jobID = try XCTUnwrap(reply.object()["id"] as? String)
                let errors = try await sandbox.errorItems(jobID)
                let accepted = sandbox.server.acceptedItems().filter { $0.jobID == jobID }

                for rule in selected {
                    let failures = errors.filter { sameJSON($0["data"], rule.data) }
                    let acceptances = accepted.filter { sameJSON(jsonValue($0.dataJSON), rule.data) }
                    if let code = rule.code {
                        XCTAssertEqual(failures.count, 1, "\(rule.rule): expected one failure in the error feed")
                        XCTAssertEqual(acceptances.count, 0, "\(rule.rule): a failed item must not be applied")
                        let error = failures.first?["error"] as? [String: Any]
                        XCTAssertEqual(error?["code"] as? String, code, rule.rule)
                        XCTAssertFalse(
                            (error?["message"] as? String ?? "").isEmpty, "\(rule.rule): a message explains the failure")
                    } else {
                        XCTAssertEqual(failures.count, 0, "\(rule.rule): expected acceptance, got \(failures)")
                        XCTAssertEqual(acceptances.count, 1, rule.rule)
                    }
                }
                XCTAssertEqual(errors.count + accepted.count, selected.count, "every item is either applied or in the error feed")
            }
        }
    }
}
