import XCTest

@testable import IntercomBackfill

final class VersionTests: XCTestCase {
    func test_userAgent_namesToolAndVersion() {
        XCTAssertEqual(ToolInfo.userAgent, "intercom-backfill/\(ToolInfo.version)")
    }
}
