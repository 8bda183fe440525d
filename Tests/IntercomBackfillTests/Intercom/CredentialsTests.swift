import XCTest

@testable import IntercomBackfill

final class CredentialsTests: XCTestCase {
    func test_tokenFromEnvironment_isBearer_andNeverInDescription() throws {
        let credentials = try IntercomCredentials.resolve(tokenFile: nil, environment: ["INTERCOM_ACCESS_TOKEN": "tok-123"])
        XCTAssertEqual(credentials.authorizationHeader, "Bearer tok-123")
        XCTAssertFalse(credentials.description.contains("tok-123"))
    }

    func test_appIdAndKey_areBasicAuth() throws {
        let credentials = try IntercomCredentials.resolve(
            tokenFile: nil, environment: ["INTERCOM_APP_ID": "app", "INTERCOM_API_KEY": "s3cr3t"])
        XCTAssertEqual(credentials.authorizationHeader, "Basic " + Data("app:s3cr3t".utf8).base64EncodedString())
        XCTAssertFalse(credentials.description.contains("s3cr3t"))
    }

    func test_tokenFile_winsAndIsTrimmed() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)")
        try "  file-token\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let credentials = try IntercomCredentials.resolve(tokenFile: file.path, environment: ["INTERCOM_ACCESS_TOKEN": "env"])
        XCTAssertEqual(credentials.authorizationHeader, "Bearer file-token")
    }

    func test_noCredentials_saysWhereToPutThem() {
        XCTAssertThrowsError(try IntercomCredentials.resolve(tokenFile: nil, environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("INTERCOM_ACCESS_TOKEN"))
        }
    }

    func test_endpoint_plainHTTPOnlyOnLoopback() throws {
        XCTAssertEqual(try IntercomEndpoint(url: "http://127.0.0.1:8080/").baseURL, "http://127.0.0.1:8080")
        XCTAssertNoThrow(try IntercomEndpoint(url: "http://localhost:1"))
        XCTAssertNoThrow(try IntercomEndpoint(url: "https://proxy.example.com"))
        XCTAssertThrowsError(try IntercomEndpoint(url: "http://api.intercom.io"))
        XCTAssertThrowsError(try IntercomEndpoint(url: "ftp://x"))
        XCTAssertEqual(try IntercomEndpoint.region("eu").baseURL, "https://api.eu.intercom.io")
        XCTAssertEqual(try IntercomEndpoint.region("AU").baseURL, "https://api.au.intercom.io")
        XCTAssertThrowsError(try IntercomEndpoint.region("mars"))
    }
}
