import Foundation
import IntercomSandbox
import NIOHTTP1
import XCTest

/// The 2.x side of the harness: the same sandbox, with the headers a 2.14 client sends.
extension Harness {
    static var restHeaders: [(String, String)] {
        standardHeaders.filter { $0.0 != "Intercom-Version" } + [("Intercom-Version", "2.14")]
    }

    func rest(_ method: HTTPMethod, _ path: String, _ body: String? = nil, headers: [(String, String)]? = nil) async throws
        -> Reply
    {
        try await send(method, path, body: body, headers: headers ?? Self.restHeaders)
    }

    /// Creates a contact and returns its id (fails the test unless the answer is 200).
    func createContact(_ body: String, file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        let reply = try await rest(.POST, "/contacts", body)
        XCTAssertEqual(reply.status, 200, reply.text, file: file, line: line)
        return try XCTUnwrap(reply.object()["id"] as? String, file: file, line: line)
    }

    /// Posts a seed to the admin route and returns its answer.
    @discardableResult
    func seed(_ body: String, file: StaticString = #filePath, line: UInt = #line) async throws -> [String: Any] {
        let reply = try await post("/sandbox/seed", body, headers: [("Content-Type", "application/json")])
        XCTAssertEqual(reply.status, 200, reply.text, file: file, line: line)
        return try reply.object()
    }

    /// `GET /sandbox/state` as an object.
    func workspaceState(file: StaticString = #filePath, line: UInt = #line) async throws -> [String: Any] {
        let reply = try await get("/sandbox/state", headers: [])
        XCTAssertEqual(reply.status, 200, reply.text, file: file, line: line)
        return try reply.object()
    }

    func stateContacts() async throws -> [[String: Any]] {
        let contacts = try await workspaceState()["contacts"] as? [[String: Any]]
        return try XCTUnwrap(contacts)
    }
}

extension Reply {
    /// The first error's message.
    func errorMessage() throws -> String? {
        try firstError()["message"] as? String
    }
}
