import XCTest

@testable import IntercomBackfill

/// Contract §2: which bucket a record lands in, and the order of decisions.
final class RecordDecisionTests: XCTestCase {
    func test_invalidJSON_isRejected() {
        XCTAssertEqual(bucket("{\"type\":\"track\""), "rejected:invalid_json")
        XCTAssertEqual(bucket("not json"), "rejected:invalid_json")
    }

    func test_invalidUTF8_isRejectedAsInvalidJSON() {
        var mapper = RecordMapper()
        let bytes: [UInt8] = Array("{\"type\":\"identify\",\"userId\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        let outcome = bytes.withUnsafeBytes { mapper.map($0) }
        guard case .rejected(.invalidJSON, _) = outcome else { return XCTFail("\(outcome)") }
    }

    func test_nonObject_isRejectedNotAnObject() {
        XCTAssertEqual(bucket("[1,2]"), "rejected:not_an_object")
        XCTAssertEqual(bucket("\"identify\""), "rejected:not_an_object")
        XCTAssertEqual(bucket("42"), "rejected:not_an_object")
    }

    func test_missingOrNullType_isRejectedMissingType() {
        XCTAssertEqual(bucket("{\"userId\":\"u1\"}"), "rejected:missing_type")
        XCTAssertEqual(bucket("{\"type\":null,\"userId\":\"u1\"}"), "rejected:missing_type")
    }

    func test_pageScreenAlias_areSkippedUnsupported() {
        for type in ["page", "screen", "alias", "PAGE"] {
            XCTAssertEqual(bucket("{\"type\":\"\(type)\",\"userId\":\"u1\"}"), "skipped:unsupported_type", type)
        }
    }

    func test_unknownOrNonStringType_isRejectedUnknownType() {
        XCTAssertEqual(bucket("{\"type\":\"purchase\",\"userId\":\"u1\"}"), "rejected:unknown_type")
        XCTAssertEqual(bucket("{\"type\":7,\"userId\":\"u1\"}"), "rejected:unknown_type")
        XCTAssertEqual(bucket("{\"type\":\"\",\"userId\":\"u1\"}"), "rejected:unknown_type")
    }

    func test_type_isMatchedCaseInsensitively() {
        XCTAssertEqual(bucket("{\"type\":\"Identify\",\"userId\":\"u1\"}"), "user")
        XCTAssertEqual(bucket("{\"type\":\"TRACK\",\"event\":\"E\",\"userId\":\"u1\",\"timestamp\":\"2024-01-01\"}"), "event")
    }

    func test_integrationsIntercomFalse_isSkipped() {
        XCTAssertEqual(
            bucket("{\"type\":\"identify\",\"userId\":\"u1\",\"integrations\":{\"Intercom\":false}}"),
            "skipped:integrations_disabled")
    }

    func test_integrationsAllFalse_skipsUnlessIntercomEnabled() {
        let base = "{\"type\":\"identify\",\"userId\":\"u1\",\"integrations\":"
        XCTAssertEqual(bucket(base + "{\"All\":false}}"), "skipped:integrations_disabled")
        XCTAssertEqual(bucket(base + "{\"All\":false,\"Intercom\":false}}"), "skipped:integrations_disabled")
        XCTAssertEqual(bucket(base + "{\"All\":false,\"Intercom\":true}}"), "user")
        XCTAssertEqual(bucket(base + "{\"All\":false,\"Intercom\":{\"user_hash\":\"abc\"}}}"), "user")
        XCTAssertEqual(bucket(base + "{\"All\":true}}"), "user")
        XCTAssertEqual(bucket(base + "{\"Mixpanel\":false}}"), "user")
    }

    func test_noUserIdNorEmail_isSkippedAnonymous() {
        XCTAssertEqual(bucket("{\"type\":\"identify\",\"anonymousId\":\"a1\",\"traits\":{\"name\":\"X\"}}"), "skipped:anonymous")
        XCTAssertEqual(
            bucket("{\"type\":\"track\",\"event\":\"E\",\"anonymousId\":\"a\",\"timestamp\":\"2024-01-01\"}"), "skipped:anonymous"
        )
        XCTAssertEqual(bucket("{\"type\":\"group\",\"groupId\":\"g\",\"anonymousId\":\"a\"}"), "skipped:anonymous")
    }

    func test_orderOfDecisions_unsupportedBeforeUnknownBeforeIntegrationsBeforePerTypeBeforeAnonymous() {
        // page with integrations off: unsupported_type wins.
        XCTAssertEqual(bucket("{\"type\":\"page\",\"integrations\":{\"Intercom\":false}}"), "skipped:unsupported_type")
        // integrations off beats a missing event name.
        XCTAssertEqual(
            bucket("{\"type\":\"track\",\"userId\":\"u\",\"integrations\":{\"Intercom\":false}}"), "skipped:integrations_disabled"
        )
        // a per-type reject beats anonymous.
        XCTAssertEqual(
            bucket("{\"type\":\"track\",\"anonymousId\":\"a\",\"timestamp\":\"2024-01-01\"}"), "rejected:missing_event_name")
        XCTAssertEqual(bucket("{\"type\":\"group\",\"anonymousId\":\"a\"}"), "rejected:missing_group_id")
        // missing event name beats invalid timestamp.
        XCTAssertEqual(bucket("{\"type\":\"track\",\"userId\":\"u\",\"timestamp\":\"bad\"}"), "rejected:missing_event_name")
    }
}
