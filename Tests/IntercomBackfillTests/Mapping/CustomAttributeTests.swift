import XCTest

@testable import IntercomBackfill

/// Contract §6: custom attributes and metadata values.
final class CustomAttributeTests: XCTestCase {
    func attributes(_ traits: String, mapper: inout RecordMapper) -> String {
        let (_, data) = mapRecord("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":\(traits)}", mapper: &mapper)
        guard let range = data.range(of: "\"custom_attributes\":") else { return "" }
        return String(data[range.upperBound...].dropLast())
    }

    func attributes(_ traits: String) -> String {
        var mapper = RecordMapper()
        return attributes(traits, mapper: &mapper)
    }

    func test_nestedObjects_areFlattenedWithUnderscore_emptyGivesNothing() {
        XCTAssertEqual(
            attributes("{\"address\":{\"city\":\"Oslo\",\"geo\":{\"lat\":59.9}},\"empty\":{}}"),
            "{\"address_city\":\"Oslo\",\"address_geo_lat\":59.9}")
    }

    func test_arrays_becomeCompactCanonicalJSONText() {
        XCTAssertEqual(
            attributes("{\"tags\":[ \"a\" , \"b\\/c\", \"\\u00e9\", {\"k\" : 1.50}, null, \"\\u0001\\n\\\"\" ]}"),
            #"{"tags":"[\"a\",\"b/c\",\"é\",{\"k\":1.50},null,\"\\u0001\\n\\\"\"]"}"#)
    }

    func test_repeatedNames_laterValueWinsInPlaceOfFirst() {
        XCTAssertEqual(attributes("{\"a_b\":1,\"x\":2,\"a\":{\"b\":3}}"), "{\"a_b\":3,\"x\":2}")
    }

    func test_namesWithDotDollarControlOrDEL_becomeUnderscore() {
        XCTAssertEqual(attributes("{\"a.b\":1,\"$c\":2,\"d\\u0001\\u007f\":3}"), "{\"a_b\":1,\"_c\":2,\"d__\":3}")
    }

    func test_longStrings_areCutTo255Scalars_andWarned() {
        var mapper = RecordMapper()
        let long = String(repeating: "ø", count: 300)
        let result = attributes("{\"bio\":\"\(long)\",\"list\":[\"\(long)\"]}", mapper: &mapper)
        let parsed = object(result)
        XCTAssertEqual((parsed["bio"] as? String)?.unicodeScalars.count, 255)
        XCTAssertEqual((parsed["list"] as? String)?.unicodeScalars.count, 255)
        XCTAssertEqual(mapper.warnings[.stringTruncated], 2)
    }

    func test_nulls_areSentAsNull_numbersAsSourceText() {
        XCTAssertEqual(
            attributes("{\"gone\":null,\"n\":2.50,\"e\":1e3,\"big\":123456789012345678901234567890}"),
            "{\"gone\":null,\"n\":2.50,\"e\":1e3,\"big\":123456789012345678901234567890}")
    }

    func test_emptyCustomAttributes_areLeftOut() {
        XCTAssertEqual(
            mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"email\":\"a@b.io\"}}"),
            "{\"user_id\":\"u\",\"email\":\"a@b.io\"}")
    }

    func test_escapedStringsAreReencodedCanonically() {
        XCTAssertEqual(attributes("{\"s\":\"caf\\u00e9 \\ud83d\\ude00 \\/ \\t\"}"), "{\"s\":\"café 😀 / \\t\"}")
    }

    func test_loneSurrogate_becomesReplacementCharacter() {
        XCTAssertEqual(attributes("{\"s\":\"a\\ud800b\"}"), "{\"s\":\"a\u{FFFD}b\"}")
    }

    func test_manyKeys_useHashedDuplicateResolution() {
        let keys = (0..<100).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let parsed = object(attributes("{\(keys),\"k5\":\"last\"}"))
        XCTAssertEqual(parsed.count, 100)
        XCTAssertEqual(parsed["k5"] as? String, "last")
    }

    func test_reservedNamesWrittenWithEscapes_areStillReserved() {
        // "em\u0061il" is "email", "pl\u0061n" is "plan": reserved, whatever the spelling.
        XCTAssertEqual(
            mappedData("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"em\\u0061il\":\"a@b.io\",\"x\":1}}"),
            "{\"user_id\":\"u\",\"email\":\"a@b.io\",\"custom_attributes\":{\"x\":1}}")
        XCTAssertEqual(
            mappedData("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\",\"traits\":{\"pl\\u0061n\":\"pro\"}}"),
            "{\"user_id\":\"u\",\"companies\":[{\"company_id\":\"g\",\"plan\":\"pro\"}]}")
    }
}
