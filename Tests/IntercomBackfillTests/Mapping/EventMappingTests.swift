import XCTest

@testable import IntercomBackfill

/// Contract §4: track -> /bulk/events.
final class EventMappingTests: XCTestCase {
    let head =
        "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"properties\":"

    func test_revenue_becomesPriceInCents_inPlaceOfRevenue_currencyLowercased() {
        XCTAssertEqual(
            mappedData(head + "{\"order\":\"o1\",\"revenue\":19.99,\"currency\":\"EUR\",\"items\":2}}"),
            "{\"event_name\":\"Order Completed\",\"created_at\":1704067200,\"user_id\":\"u\",\"metadata\":{\"order\":\"o1\",\"price\":{\"amount\":1999,\"currency\":\"eur\"},\"items\":2}}"
        )
    }

    func test_revenue_defaultsToUSD() {
        let metadata = object(mappedData(head + "{\"revenue\":5}}"))["metadata"] as? [String: Any]
        XCTAssertEqual((metadata?["price"] as? [String: Any])?["currency"] as? String, "usd")
        XCTAssertEqual((metadata?["price"] as? [String: Any])?["amount"] as? Int, 500)
    }

    func test_revenueNotANumber_isAnOrdinaryProperty_andCurrencyStays() {
        let metadata = object(mappedData(head + "{\"revenue\":\"12\",\"currency\":\"EUR\"}}"))["metadata"] as? [String: Any]
        XCTAssertEqual(metadata?["revenue"] as? String, "12")
        XCTAssertEqual(metadata?["currency"] as? String, "EUR")
    }

    func test_richValues_areKeptAsTheyAre() {
        XCTAssertEqual(
            mappedData(
                head + "{\"total\":{\"currency\":\"usd\",\"amount\":100},\"link\":{\"url\":\"https://x.io/a\",\"value\":\"A\"}}}"),
            "{\"event_name\":\"Order Completed\",\"created_at\":1704067200,\"user_id\":\"u\",\"metadata\":{\"total\":{\"currency\":\"usd\",\"amount\":100},\"link\":{\"url\":\"https://x.io/a\",\"value\":\"A\"}}}"
        )
    }

    func test_dateKeys_becomeUnixSeconds_otherStringsStay() {
        let metadata =
            object(
                mappedData(
                    head
                        + "{\"shipped_date\":\"2024-01-02\",\"note_date\":\"tomorrow\",\"date\":\"2024-01-02\",\"ms_date\":1704153600123}}"
                ))["metadata"] as? [String: Any]
        XCTAssertEqual(metadata?["shipped_date"] as? Int, 1_704_153_600)
        XCTAssertEqual(metadata?["ms_date"] as? Int, 1_704_153_600)
        XCTAssertEqual(metadata?["note_date"] as? String, "tomorrow")
        XCTAssertEqual(metadata?["date"] as? String, "2024-01-02")
    }

    func test_nestedMetadata_isFlattened_richOnlyAtTopLevel() {
        XCTAssertEqual(
            mappedData(head + "{\"cart\":{\"size\":2,\"total\":{\"amount\":1,\"currency\":\"usd\"}}}}"),
            "{\"event_name\":\"Order Completed\",\"created_at\":1704067200,\"user_id\":\"u\",\"metadata\":{\"cart_size\":2,\"cart_total_amount\":1,\"cart_total_currency\":\"usd\"}}"
        )
    }

    func test_onlyFirstTenMetadataKeys_areKept_andWarned() {
        var mapper = RecordMapper()
        let props = (1...12).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let (_, data) = mapRecord(head + "{\(props)}}", mapper: &mapper)
        let metadata = object(data)["metadata"] as? [String: Any]
        XCTAssertEqual(metadata?.count, 10)
        XCTAssertNil(metadata?["k11"])
        XCTAssertEqual(metadata?["k10"] as? Int, 10)
        XCTAssertEqual(mapper.warnings[.metadataKeysDropped], 1)
    }

    func test_metadataStrings_areNotCut() {
        let long = String(repeating: "é", count: 300)
        let metadata = object(mappedData(head + "{\"text\":\"\(long)\"}}"))["metadata"] as? [String: Any]
        XCTAssertEqual((metadata?["text"] as? String)?.unicodeScalars.count, 300)
    }

    func test_emptyMetadata_isLeftOut() {
        XCTAssertEqual(
            mappedData(head + "{}}"), "{\"event_name\":\"Order Completed\",\"created_at\":1704067200,\"user_id\":\"u\"}")
        XCTAssertEqual(
            mappedData(head + "{\"empty\":{}}}"),
            "{\"event_name\":\"Order Completed\",\"created_at\":1704067200,\"user_id\":\"u\"}")
    }

    func test_missingOrEmptyEventName_isRejected() {
        XCTAssertEqual(
            bucket("{\"type\":\"track\",\"userId\":\"u\",\"event\":\"\",\"timestamp\":\"2024-01-01\"}"),
            "rejected:missing_event_name")
        XCTAssertEqual(
            bucket("{\"type\":\"track\",\"userId\":\"u\",\"event\":3,\"timestamp\":\"2024-01-01\"}"),
            "rejected:missing_event_name")
    }
}
