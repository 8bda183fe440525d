import AsyncHTTPClient
import Foundation
import IntercomSandbox
import XCTest

final class AuthTests: XCTestCase {
    private func withoutAuthorization(_ extra: [(String, String)] = []) -> [(String, String)] {
        Harness.standardHeaders.filter { $0.0 != "Authorization" } + extra
    }

    func test_auth_rightBearerToken_isAccepted() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.bulk("user", [user("u1")])
            XCTAssertEqual(reply.status, 202, reply.text)
        }
    }

    func test_auth_wrongBearerToken_is401WithErrorList() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.bulk(
                "user", [user("u1")], headers: withoutAuthorization([("Authorization", "Bearer not-the-token")]))
            XCTAssertEqual(reply.status, 401)
            let error = try reply.firstError()
            XCTAssertEqual(error["code"] as? String, "unauthorized")
            XCTAssertEqual(error["message"] as? String, "Access Token Invalid")
            XCTAssertEqual(sandbox.server.acceptedItems().count, 0)
        }
    }

    func test_auth_missingAuthorizationHeader_is401() async throws {
        try await withSandbox { sandbox in
            let post = try await sandbox.bulk("user", [user("u1")], headers: withoutAuthorization())
            XCTAssertEqual(post.status, 401)
            XCTAssertEqual(try post.errorCode(), "unauthorized")
            let get = try await sandbox.get("/jobs/job_x", headers: withoutAuthorization())
            XCTAssertEqual(get.status, 401)
        }
    }

    func test_auth_malformedAuthorizationHeader_is401_evenInOpenMode() async throws {
        try await withSandbox({ $0.bearerToken = nil }) { sandbox in
            for value in [
                "Bearer", "Bearer   ", "Token abc", "abc", "Basic !!!notbase64",
                "Basic " + Data("nokey".utf8).base64EncodedString(), "Basic " + Data(":key".utf8).base64EncodedString(),
            ] {
                let reply = try await sandbox.bulk(
                    "user", [user("u1")], headers: withoutAuthorization([("Authorization", value)]))
                XCTAssertEqual(reply.status, 401, "Authorization: \(value)")
                XCTAssertEqual(try reply.errorCode(), "unauthorized")
            }
            XCTAssertEqual(sandbox.server.stats().unauthorized, 7)
        }
    }

    func test_auth_openMode_acceptsAnyNonEmptyBearerToken() async throws {
        try await withSandbox({ $0.bearerToken = nil }) { sandbox in
            for token in ["anything", "dG9rZW4="] {
                let reply = try await sandbox.bulk(
                    "user", [user("u1")], headers: withoutAuthorization([("Authorization", "Bearer \(token)")]))
                XCTAssertEqual(reply.status, 202, reply.text)
            }
        }
    }

    func test_auth_basicAppIDAndAPIKey_isAccepted_wrongPairIs401() async throws {
        try await withSandbox({
            $0.bearerToken = nil
            $0.appID = "app123"
            $0.apiKey = "key456"
        }) { sandbox in
            let good = "Basic " + Data("app123:key456".utf8).base64EncodedString()
            let ok = try await sandbox.bulk("user", [user("u1")], headers: withoutAuthorization([("Authorization", good)]))
            XCTAssertEqual(ok.status, 202, ok.text)
            XCTAssertEqual(try ok.object()["app_id"] as? String, "app123")

            for pair in ["app123:wrong", "other:key456"] {
                let bad = "Basic " + Data(pair.utf8).base64EncodedString()
                let reply = try await sandbox.bulk("user", [user("u1")], headers: withoutAuthorization([("Authorization", bad)]))
                XCTAssertEqual(reply.status, 401, pair)
                XCTAssertEqual(try reply.errorCode(), "unauthorized")
            }
            // With credentials configured, an arbitrary Bearer token is no longer enough.
            let bearer = try await sandbox.bulk(
                "user", [user("u1")], headers: withoutAuthorization([("Authorization", "Bearer anything")]))
            XCTAssertEqual(bearer.status, 401)
        }
    }

    func test_auth_tokenAndBasicPairConfigured_bothWork() async throws {
        try await withSandbox({
            $0.appID = "app"
            $0.apiKey = "key"
        }) { sandbox in
            let bearer = try await sandbox.bulk("user", [user("u1")])
            XCTAssertEqual(bearer.status, 202)
            let basic = "Basic " + Data("app:key".utf8).base64EncodedString()
            let reply = try await sandbox.bulk("user", [user("u2")], headers: withoutAuthorization([("Authorization", basic)]))
            XCTAssertEqual(reply.status, 202)
        }
    }

    func test_sandboxStats_needsNoAuth() async throws {
        try await withSandbox { sandbox in
            let reply = try await sandbox.get("/sandbox/stats", headers: [])
            XCTAssertEqual(reply.status, 200, reply.text)
        }
    }
}
