import XCTest

@testable import IntercomBackfill

/// Contract §2: the accepted date forms, rounded down to whole unix seconds.
final class TimestampTests: XCTestCase {
    func seconds(_ text: String) -> Int64? {
        var copy = text
        return copy.withUTF8 { Timestamp.parseISO8601(UnsafeRawBufferPointer($0)) }
    }

    func number(_ text: String) -> Int64? {
        var copy = text
        let integer = !text.contains(".") && !text.lowercased().contains("e")
        return copy.withUTF8 { Timestamp.fromNumber(UnsafeRawBufferPointer($0), isInteger: integer) }
    }

    func test_iso8601_withZ() { XCTAssertEqual(seconds("2024-03-05T10:20:30Z"), 1_709_634_030) }
    func test_iso8601_withoutZone_isUTC() { XCTAssertEqual(seconds("2024-03-05T10:20:30"), 1_709_634_030) }
    func test_iso8601_positiveAndNegativeOffsets() {
        XCTAssertEqual(seconds("2024-03-05T12:20:30+02:00"), 1_709_634_030)
        XCTAssertEqual(seconds("2024-03-05T05:50:30-04:30"), 1_709_634_030)
    }
    func test_iso8601_fractionOfAnyLength_isRoundedDown() {
        XCTAssertEqual(seconds("2024-03-05T10:20:30.999Z"), 1_709_634_030)
        XCTAssertEqual(seconds("2024-03-05T10:20:30.1Z"), 1_709_634_030)
        XCTAssertEqual(seconds("2024-03-05T10:20:30.123456789123+00:00"), 1_709_634_030)
    }
    func test_bareDate_isMidnightUTC() { XCTAssertEqual(seconds("2024-03-05"), 1_709_596_800) }
    func test_beforeEpoch_isNegative() { XCTAssertEqual(seconds("1969-12-31T23:59:59.5Z"), -1) }
    func test_leapDay() {
        XCTAssertEqual(seconds("2024-02-29T00:00:00Z"), 1_709_164_800)
        XCTAssertNil(seconds("2023-02-29T00:00:00Z"))
    }
    func test_invalidForms_areRejected() {
        for bad in [
            "2024-03-05 10:20:30Z", "1709634030", "2024-3-5", "2024-03-05T10:20Z", "2024-03-05T10:20:30.Z",
            "2024-13-01", "2024-03-32", "2024-03-05T24:00:00Z", "2024-03-05T10:20:30+0200", "2024-03-05T10:20:30ZZ",
            "", "yesterday", "2024-03-05T10:20:30 ", " 2024-03-05",
        ] {
            XCTAssertNil(seconds(bad), bad)
        }
    }
    func test_numbers_areUnixSeconds() {
        XCTAssertEqual(number("1709634030"), 1_709_634_030)
        XCTAssertEqual(number("1709634030.9"), 1_709_634_030)
        XCTAssertEqual(number("1.7e9"), 1_700_000_000)
    }
    func test_numbersAbove1e11_areMilliseconds() {
        XCTAssertEqual(number("1709634030999"), 1_709_634_030)
        XCTAssertEqual(number("100000000000"), 100_000_000_000)
        XCTAssertEqual(number("100000000001"), 100_000_000)
    }
    /// Found by fuzz/timestamp: the text was read through a Double, which rounded these up to the
    /// next second (or, for milliseconds, across one) before rounding down.
    func test_fractionalNumbers_areRoundedDownExactly() {
        XCTAssertEqual(number("-17.00000000000000000000000009531060545694559625"), -18)
        XCTAssertEqual(number("1709634030.99999999999999999"), 1_709_634_030)
        XCTAssertEqual(number("1709634030999.99999999"), 1_709_634_030)
        XCTAssertEqual(number("1709634030999e0"), 1_709_634_030)
        XCTAssertEqual(number("100000000000.5"), 100_000_000)
        XCTAssertEqual(number("-0.5"), -1)
        XCTAssertEqual(number("0.0e5"), 0)
        XCTAssertNil(number("1e19"))
    }
    /// Found by fuzz/timestamp: a date written with JSON escapes is the same date (it was refused).
    func test_escapedDateString_isTheSameDate() {
        let record = #"{"type":"track","event":"E","userId":"u","timestamp":"2024-03-05\u005410:20:30\u005a"}"#
        XCTAssertEqual(object(mappedData(record))["created_at"] as? Int, 1_709_634_030)
    }
    func test_recordTimestamp_firstPresentNonNullDecides_invalidIsNotReplaced() {
        let base = "{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\","
        XCTAssertEqual(
            object(mappedData(base + "\"timestamp\":null,\"originalTimestamp\":\"2024-01-01\",\"sentAt\":\"2025-01-01\"}"))[
                "created_at"] as? Int, 1_704_067_200)
        XCTAssertEqual(object(mappedData(base + "\"sentAt\":1704067200}"))["created_at"] as? Int, 1_704_067_200)
        XCTAssertEqual(bucket(base + "\"timestamp\":\"garbage\",\"sentAt\":\"2024-01-01\"}"), "rejected:invalid_timestamp")
        XCTAssertEqual(bucket(base + "\"timestamp\":\"1704067200\"}"), "rejected:invalid_timestamp")
        XCTAssertEqual(bucket(base + "\"properties\":{}}"), "rejected:invalid_timestamp")
    }
}
