import XCTest

@testable import IntercomBackfill

/// Contract §2: user identity and the user's traits.
final class IdentityTests: XCTestCase {
    func test_userId_comesFromTopLevelFirst() {
        let data = object(mappedData("{\"type\":\"identify\",\"userId\":\"top\",\"traits\":{\"userId\":\"t\",\"id\":\"i\"}}"))
        XCTAssertEqual(data["user_id"] as? String, "top")
    }

    func test_userId_fallsBackToTraitsUserIdThenId() {
        XCTAssertEqual(
            object(mappedData("{\"type\":\"identify\",\"traits\":{\"userId\":\"t\",\"id\":\"i\"}}"))["user_id"] as? String, "t")
        XCTAssertEqual(object(mappedData("{\"type\":\"identify\",\"traits\":{\"id\":\"i\"}}"))["user_id"] as? String, "i")
    }

    func test_numericUserId_becomesItsSourceText() {
        XCTAssertEqual(
            mappedData("{\"type\":\"identify\",\"userId\":12345678901234567890}"), "{\"user_id\":\"12345678901234567890\"}")
    }

    func test_emptyOrNonStringId_isMissingAndNextSourceIsTried() {
        XCTAssertEqual(
            object(mappedData("{\"type\":\"identify\",\"userId\":\"\",\"traits\":{\"id\":\"i\"}}"))["user_id"] as? String, "i")
        XCTAssertEqual(
            object(mappedData("{\"type\":\"identify\",\"userId\":true,\"traits\":{\"id\":\"i\"}}"))["user_id"] as? String, "i")
    }

    func test_email_fromTraitsThenContextTraits() {
        let a = object(
            mappedData(
                "{\"type\":\"identify\",\"traits\":{\"email\":\"a@x.io\"},\"context\":{\"traits\":{\"email\":\"c@x.io\"}}}"))
        XCTAssertEqual(a["email"] as? String, "a@x.io")
        let b = object(
            mappedData(
                "{\"type\":\"identify\",\"traits\":{\"email\":\"\",\"name\":\"N\"},\"context\":{\"traits\":{\"email\":\"c@x.io\"}}}"
            ))
        XCTAssertEqual(b["email"] as? String, "c@x.io")
    }

    func test_trackEmail_fallsBackToPropertiesEmailWhichStaysInMetadata() {
        let data = object(
            mappedData("{\"type\":\"track\",\"event\":\"E\",\"timestamp\":\"2024-01-01\",\"properties\":{\"email\":\"p@x.io\"}}"))
        XCTAssertEqual(data["email"] as? String, "p@x.io")
        XCTAssertEqual((data["metadata"] as? [String: Any])?["email"] as? String, "p@x.io")
    }

    func test_identifyUsesContextTraitsWhenTraitsMissingOrEmptyOrNotObject() {
        for traits in ["", ",\"traits\":{}", ",\"traits\":\"x\""] {
            let line = "{\"type\":\"identify\"\(traits),\"context\":{\"traits\":{\"email\":\"c@x.io\",\"plan\":\"pro\"}}}"
            let data = object(mappedData(line))
            XCTAssertEqual(data["email"] as? String, "c@x.io", line)
            XCTAssertEqual((data["custom_attributes"] as? [String: Any])?["plan"] as? String, "pro", line)
        }
    }

    func test_trackUsesContextTraits_notProperties() {
        let data = object(
            mappedData(
                "{\"type\":\"track\",\"event\":\"E\",\"timestamp\":\"2024-01-01\",\"context\":{\"traits\":{\"id\":\"ctx\"}}}"))
        XCTAssertEqual(data["user_id"] as? String, "ctx")
    }

    func test_trackSendsUserIdOnly_whenBothExist() {
        let data = mappedData(
            "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"timestamp\":\"2024-01-01\",\"context\":{\"traits\":{\"email\":\"e@x.io\"}}}"
        )
        XCTAssertEqual(data, "{\"event_name\":\"E\",\"created_at\":1704067200,\"user_id\":\"u\"}")
    }

    func test_identifySendsBothUserIdAndEmail() {
        let data = mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"email\":\"e@x.io\"}}")
        XCTAssertEqual(data, "{\"user_id\":\"u\",\"email\":\"e@x.io\"}")
    }
}
