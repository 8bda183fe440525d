import XCTest

@testable import IntercomBackfill

/// The one-pass root lookup must decide exactly as `JSONView.member` did.
final class RootFieldsTests: XCTestCase {
    func test_rootKeysWrittenWithEscapes_areFoundAsTheirDecodedNames() {
        let data = mappedData(
            #"{"\u0074ype":"track","ev\u0065nt":"Signed Up","user\u0049d":"u1","timestamp":"2024-01-01T00:00:00Z"}"#)
        XCTAssertEqual(data, #"{"event_name":"Signed Up","created_at":1704067200,"user_id":"u1"}"#)
    }

    func test_aRepeatedRootKey_givesItsLastValue() {
        XCTAssertEqual(bucket(#"{"type":"page","type":"track","event":"E","userId":"u","timestamp":1}"#), "event")
        XCTAssertEqual(bucket(#"{"type":"track","\u0074ype":"page"}"#), "skipped:unsupported_type")
    }

    func test_recordType_isMatchedIgnoringCase_whateverItsLengthOrEscapes() {
        XCTAssertEqual(bucket(#"{"type":"IDENTIFY","userId":"u"}"#), "user")
        XCTAssertEqual(bucket(#"{"type":"Scr\u0065en"}"#), "skipped:unsupported_type")
        XCTAssertEqual(bucket(#"{"type":"tracks"}"#), "rejected:unknown_type")
        XCTAssertEqual(bucket(#"{"type":7}"#), "rejected:unknown_type")
    }

    func test_attributeNamesFromEscapedKeys_areWrittenEscaped() {
        let data = mappedData(#"{"type":"identify","userId":"u","traits":{"a\"b":1,"c\\d":2,"e.f":3}}"#)
        XCTAssertEqual(data, #"{"user_id":"u","custom_attributes":{"a\"b":1,"c\\d":2,"e_f":3}}"#)
    }
}
