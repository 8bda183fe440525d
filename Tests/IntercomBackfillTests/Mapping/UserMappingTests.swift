import XCTest

@testable import IntercomBackfill

/// Contract §3: identify -> /bulk/users.
final class UserMappingTests: XCTestCase {
    func test_identify_fullItemInContractKeyOrder() {
        let line = """
            {"type":"identify","userId":"u1","timestamp":"2024-01-01T00:00:10Z","traits":{"email":"a@b.io","name":"Ada","phone":"+47",\
            "createdAt":"2023-01-01","plan":"pro","logins":3},"context":{"ip":"10.0.0.1","userAgent":"UA/1"}}
            """
        XCTAssertEqual(
            mappedData(line),
            """
            {"user_id":"u1","email":"a@b.io","name":"Ada","phone":"+47","signed_up_at":1672531200,"last_request_at":1704067210,\
            "last_seen_ip":"10.0.0.1","last_seen_user_agent":"UA/1","custom_attributes":{"plan":"pro","logins":3}}
            """)
    }

    func test_name_fromFirstAndLastName_trimmed() {
        XCTAssertEqual(
            object(
                mappedData(
                    "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"firstName\":\" Ada\",\"lastName\":\"Lovelace \"}}"))[
                    "name"] as? String, "Ada Lovelace")
        XCTAssertEqual(
            object(mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"lastName\":\"Lovelace\"}}"))["name"]
                as? String, "Lovelace")
        XCTAssertNil(object(mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"firstName\":\"  \"}}"))["name"])
    }

    func test_lastRequestAt_fromTraitsElseRecordTimestamp() {
        let a = object(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"timestamp\":\"2024-01-01\",\"traits\":{\"lastRequestAt\":\"2024-02-01\"}}"
            ))
        XCTAssertEqual(a["last_request_at"] as? Int, 1_706_745_600)
        let b = object(mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"timestamp\":\"2024-01-01\"}"))
        XCTAssertEqual(b["last_request_at"] as? Int, 1_704_067_200)
    }

    func test_contextActiveFalse_leavesOutActivityFields() {
        let data = object(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"timestamp\":\"2024-01-01\",\"context\":{\"active\":false,\"ip\":\"1.2.3.4\",\"userAgent\":\"UA\"}}"
            ))
        XCTAssertNil(data["last_request_at"])
        XCTAssertNil(data["last_seen_ip"])
        XCTAssertNil(data["last_seen_user_agent"])
    }

    func test_unsubscribed_contextIntercomFlagWinsOverTrait() {
        let a = object(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"unsubscribedFromEmails\":false},\"context\":{\"Intercom\":{\"unsubscribedFromEmails\":true}}}"
            ))
        XCTAssertEqual(a["unsubscribed_from_emails"] as? Bool, true)
        let b = object(mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"unsubscribedFromEmails\":true}}"))
        XCTAssertEqual(b["unsubscribed_from_emails"] as? Bool, true)
        XCTAssertNil(a["custom_attributes"], "the trait is reserved, never a custom attribute")
    }

    func test_invalidCreatedAt_isLeftOutAndWarned() {
        var mapper = RecordMapper()
        let (_, data) = mapRecord(
            "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"createdAt\":\"last week\",\"lastRequestAt\":\"soon\"}}",
            mapper: &mapper)
        XCTAssertEqual(data, "{\"user_id\":\"u\"}")
        XCTAssertEqual(mapper.warnings[.invalidCreatedAt], 1)
        XCTAssertEqual(mapper.warnings[.invalidLastRequestAt], 1)
    }

    func test_reservedNullTraits_areMissingWithoutWarning() {
        var mapper = RecordMapper()
        let (_, data) = mapRecord(
            "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"createdAt\":null,\"name\":null,\"phone\":null,\"company\":null}}",
            mapper: &mapper)
        XCTAssertEqual(data, "{\"user_id\":\"u\"}")
        XCTAssertEqual(mapper.warnings.total, 0)
    }

    func test_emptyStrings_areNeverSent() {
        let data = object(
            mappedData(
                "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"name\":\"\",\"phone\":\"\"},\"context\":{\"ip\":\"\"}}"))
        XCTAssertNil(data["name"])
        XCTAssertNil(data["phone"])
        XCTAssertNil(data["last_seen_ip"])
    }
}
