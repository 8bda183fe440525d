import XCTest

@testable import IntercomBackfill

final class APIVersionTests: XCTestCase {
    func test_parse_acceptsAutoBulkAndRESTFrom2_13() {
        XCTAssertEqual(IntercomAPIVersion("auto"), .auto)
        XCTAssertEqual(IntercomAPIVersion("AUTO"), .auto)
        XCTAssertEqual(IntercomAPIVersion("1.4"), .bulk)
        XCTAssertEqual(IntercomAPIVersion("2.13"), .rest(minor: 13))
        XCTAssertEqual(IntercomAPIVersion("2.14"), .rest(minor: 14))
        XCTAssertEqual(IntercomAPIVersion("2.140"), .rest(minor: 140))
    }

    func test_parse_refusesOtherForms() {
        for text in [
            "", "1", "1.3", "1.40", "2", "2.", "2.12", "2.0", "2.-14", "2.+14", "2.14.1", " 2.14", "2.14 ", "3.0", "2.１４",
            "latest",
        ] {
            XCTAssertNil(IntercomAPIVersion(text), "'\(text)' must be refused")
        }
    }

    func test_description_roundTrips() {
        for version in [IntercomAPIVersion.auto, .bulk, .rest(minor: 13), .rest(minor: 27)] {
            XCTAssertEqual(IntercomAPIVersion(version.description), version)
        }
    }

    func test_regions_haveTheirHosts() {
        XCTAssertEqual(IntercomRegion.allCases.map(\.rawValue), ["us", "eu", "au"])
        XCTAssertEqual(IntercomEndpoint.region(.us).baseURL, "https://api.intercom.io")
        XCTAssertEqual(IntercomEndpoint.region(.eu).baseURL, "https://api.eu.intercom.io")
        XCTAssertEqual(IntercomEndpoint.region(.au).baseURL, "https://api.au.intercom.io")
    }
}
