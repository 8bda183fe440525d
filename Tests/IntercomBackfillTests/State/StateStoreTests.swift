import Foundation
import XCTest

@testable import IntercomBackfill

final class StateStoreTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("StateStoreTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    private var filePath: String { folder.appendingPathComponent("rest-state.sqlite").path }

    private func memoryStore() throws -> StateStore {
        try StateStore(path: ":memory:", workspace: "w1")
    }

    /// Fills a store with one of everything, for the reopen and reset tests.
    private func fill(_ store: StateStore) throws {
        try store.saveContact(id: "c1", keys: ["u:1", "e:a@x.com"], fields: [1, 2, 3])
        try store.saveCompany(companyID: "acme", intercomID: "ic1", fields: [9])
        try store.setMember(contactID: "c1", companyIntercomID: "ic1", true)
        try store.saveAttribute(model: "contact", name: "plan", dataType: "string")
    }

    private let filled = StateStore.Counts(contactKeys: 2, contacts: 1, companies: 1, memberships: 1, attributes: 1)
    private let empty = StateStore.Counts(contactKeys: 0, contacts: 0, companies: 0, memberships: 0, attributes: 0)

    // MARK: Round-trips

    func testContactRoundTrip() throws {
        let store = try memoryStore()
        XCTAssertNil(try store.contactID(forKey: "u:1"))
        XCTAssertNil(try store.contactFields(contactID: "c1"))
        try store.saveContact(id: "c1", keys: ["u:1"], fields: [1, 2, 3])
        XCTAssertEqual(try store.contactID(forKey: "u:1"), "c1")
        XCTAssertEqual(try store.contactFields(contactID: "c1"), [1, 2, 3])
        // nil fields keep the saved fingerprint.
        try store.saveContact(id: "c1", keys: [], fields: nil)
        XCTAssertEqual(try store.contactFields(contactID: "c1"), [1, 2, 3])
        try store.saveContact(id: "c1", keys: [], fields: [4])
        XCTAssertEqual(try store.contactFields(contactID: "c1"), [4])
        // An empty fingerprint is not the same as none.
        try store.saveContact(id: "c1", keys: [], fields: [])
        XCTAssertEqual(try store.contactFields(contactID: "c1"), [])
    }

    func testContactWithoutFieldsIsKnownButHasNoFingerprint() throws {
        let store = try memoryStore()
        try store.saveContact(id: "c1", keys: ["u:1"], fields: nil)
        XCTAssertEqual(try store.contactID(forKey: "u:1"), "c1")
        XCTAssertNil(try store.contactFields(contactID: "c1"))
        XCTAssertEqual(try store.counts().contacts, 1)
    }

    func testSeveralKeysForOneContact() throws {
        let store = try memoryStore()
        try store.saveContact(id: "c1", keys: ["u:1", "e:a@x.com"], fields: [7])
        XCTAssertEqual(try store.contactID(forKey: "u:1"), "c1")
        XCTAssertEqual(try store.contactID(forKey: "e:a@x.com"), "c1")
        XCTAssertEqual(try store.counts().contactKeys, 2)
        XCTAssertEqual(try store.counts().contacts, 1)
    }

    func testRepointingAKey() throws {
        let store = try memoryStore()
        try store.saveContact(id: "c1", keys: ["u:1", "e:a@x.com"], fields: [1])
        try store.saveContact(id: "c2", keys: ["e:a@x.com"], fields: [2])
        XCTAssertEqual(try store.contactID(forKey: "u:1"), "c1")
        XCTAssertEqual(try store.contactID(forKey: "e:a@x.com"), "c2")
        XCTAssertEqual(try store.contactFields(contactID: "c1"), [1])
        XCTAssertEqual(try store.contactFields(contactID: "c2"), [2])
        XCTAssertEqual(try store.counts().contactKeys, 2)
    }

    func testForgetContactRemovesOnlyThatContact() throws {
        let store = try memoryStore()
        try store.saveContact(id: "c1", keys: ["u:1", "e:a@x.com"], fields: [1])
        try store.saveContact(id: "c2", keys: ["u:2"], fields: [2])
        try store.setMember(contactID: "c1", companyIntercomID: "ic1", true)
        try store.setMember(contactID: "c2", companyIntercomID: "ic1", true)
        try store.forgetContact(id: "c1")
        XCTAssertNil(try store.contactID(forKey: "u:1"))
        XCTAssertNil(try store.contactID(forKey: "e:a@x.com"))
        XCTAssertNil(try store.contactFields(contactID: "c1"))
        XCTAssertFalse(try store.isMember(contactID: "c1", companyIntercomID: "ic1"))
        XCTAssertEqual(try store.contactID(forKey: "u:2"), "c2")
        XCTAssertEqual(try store.contactFields(contactID: "c2"), [2])
        XCTAssertTrue(try store.isMember(contactID: "c2", companyIntercomID: "ic1"))
        XCTAssertEqual(
            try store.counts(), StateStore.Counts(contactKeys: 1, contacts: 1, companies: 0, memberships: 1, attributes: 0)
        )
        // Forgetting an unknown contact is not an error.
        try store.forgetContact(id: "nobody")
    }

    func testCompanyRoundTrip() throws {
        let store = try memoryStore()
        XCTAssertNil(try store.company(companyID: "acme"))
        try store.saveCompany(companyID: "acme", intercomID: "ic1", fields: [1, 2])
        var saved = try XCTUnwrap(try store.company(companyID: "acme"))
        XCTAssertEqual(saved.intercomID, "ic1")
        XCTAssertEqual(saved.fields, [1, 2])
        try store.saveCompany(companyID: "acme", intercomID: "ic2", fields: [])
        saved = try XCTUnwrap(try store.company(companyID: "acme"))
        XCTAssertEqual(saved.intercomID, "ic2")
        XCTAssertEqual(saved.fields, [])
        XCTAssertEqual(try store.counts().companies, 1)
    }

    func testMembershipRoundTrip() throws {
        let store = try memoryStore()
        XCTAssertFalse(try store.isMember(contactID: "c1", companyIntercomID: "ic1"))
        try store.setMember(contactID: "c1", companyIntercomID: "ic1", true)
        try store.setMember(contactID: "c1", companyIntercomID: "ic1", true)
        try store.setMember(contactID: "c1", companyIntercomID: "ic2", true)
        XCTAssertTrue(try store.isMember(contactID: "c1", companyIntercomID: "ic1"))
        XCTAssertTrue(try store.isMember(contactID: "c1", companyIntercomID: "ic2"))
        XCTAssertFalse(try store.isMember(contactID: "c2", companyIntercomID: "ic1"))
        XCTAssertEqual(try store.counts().memberships, 2)
        try store.setMember(contactID: "c1", companyIntercomID: "ic1", false)
        XCTAssertFalse(try store.isMember(contactID: "c1", companyIntercomID: "ic1"))
        XCTAssertTrue(try store.isMember(contactID: "c1", companyIntercomID: "ic2"))
        XCTAssertEqual(try store.counts().memberships, 1)
    }

    func testAttributesRoundTrip() throws {
        let store = try memoryStore()
        XCTAssertTrue(try store.attributes(model: "contact").isEmpty)
        try store.saveAttribute(model: "contact", name: "plan", dataType: "string")
        try store.saveAttribute(model: "contact", name: "age", dataType: "integer")
        try store.saveAttribute(model: "contact", name: "age", dataType: "float")
        try store.saveAttribute(model: "company", name: "tier", dataType: "string")
        var contact = try store.attributes(model: "contact")
        XCTAssertEqual(contact.map(\.name), ["age", "plan"])
        XCTAssertEqual(contact.map(\.dataType), ["float", "string"])
        XCTAssertEqual(try store.attributes(model: "company").map(\.name), ["tier"])

        try store.replaceAttributes(
            model: "contact", with: [(name: "vip", dataType: "boolean"), (name: "since", dataType: "date")]
        )
        contact = try store.attributes(model: "contact")
        XCTAssertEqual(contact.map(\.name), ["since", "vip"])
        XCTAssertEqual(contact.map(\.dataType), ["date", "boolean"])
        // The other model is untouched.
        XCTAssertEqual(try store.attributes(model: "company").map(\.name), ["tier"])
        try store.replaceAttributes(model: "contact", with: [])
        XCTAssertTrue(try store.attributes(model: "contact").isEmpty)
        XCTAssertEqual(try store.counts().attributes, 1)
    }

    func testCounts() throws {
        let store = try memoryStore()
        XCTAssertEqual(try store.counts(), empty)
        try fill(store)
        XCTAssertEqual(try store.counts(), filled)
    }

    func testUnusualStringsRoundTrip() throws {
        let store = try memoryStore()
        let strings = [
            "a\0b", "\0", "", "e:josé@exämple.com", "👩‍👩‍👧‍👦🚀", "日本語\0テキスト", String(repeating: "x€", count: 200_000),
        ]
        for (index, string) in strings.enumerated() {
            let id = "id-\(string)"
            try store.saveContact(id: id, keys: [string], fields: Array(string.utf8))
            XCTAssertEqual(try store.contactID(forKey: string), id, "string \(index)")
            XCTAssertEqual(try store.contactFields(contactID: id), Array(string.utf8), "string \(index)")
            try store.saveCompany(companyID: string, intercomID: string, fields: [0, 0])
            XCTAssertEqual(try store.company(companyID: string)?.intercomID, string, "string \(index)")
            try store.setMember(contactID: id, companyIntercomID: string, true)
            XCTAssertTrue(try store.isMember(contactID: id, companyIntercomID: string), "string \(index)")
            try store.saveAttribute(model: "contact", name: string, dataType: string)
        }
        // Keys that differ only after a NUL are distinct.
        XCTAssertNil(try store.contactID(forKey: "a"))
        XCTAssertNil(try store.contactID(forKey: "a\0c"))
        XCTAssertEqual(try store.contactID(forKey: "\0"), "id-\0")
        XCTAssertEqual(try store.counts().contactKeys, strings.count)
        XCTAssertEqual(Set(try store.attributes(model: "contact").map(\.name)), Set(strings))
    }

    // MARK: Files

    func testReopeningKeepsEverything() throws {
        var store: StateStore? = try StateStore(path: filePath, workspace: "w1")
        XCTAssertFalse(store!.wasReset)
        try fill(store!)
        store!.close()
        store = nil

        let reopened = try StateStore(path: filePath, workspace: "w1")
        XCTAssertFalse(reopened.wasReset)
        XCTAssertEqual(try reopened.counts(), filled)
        XCTAssertEqual(try reopened.contactID(forKey: "e:a@x.com"), "c1")
        XCTAssertEqual(try reopened.contactFields(contactID: "c1"), [1, 2, 3])
        XCTAssertEqual(try reopened.company(companyID: "acme")?.intercomID, "ic1")
        XCTAssertTrue(try reopened.isMember(contactID: "c1", companyIntercomID: "ic1"))
        XCTAssertEqual(try reopened.attributes(model: "contact").map(\.dataType), ["string"])
    }

    func testDeinitClosesWithoutAnExplicitClose() throws {
        do {
            let store = try StateStore(path: filePath, workspace: "w1")
            try fill(store)
        }
        let reopened = try StateStore(path: filePath, workspace: "w1")
        XCTAssertEqual(try reopened.counts(), filled)
    }

    func testAnotherWorkspaceEmptiesTheStore() throws {
        do {
            let store = try StateStore(path: filePath, workspace: "w1")
            try fill(store)
            store.close()
        }
        do {
            let other = try StateStore(path: filePath, workspace: "w2")
            XCTAssertTrue(other.wasReset)
            XCTAssertEqual(try other.counts(), empty)
            try other.saveContact(id: "c9", keys: ["u:9"], fields: nil)
            other.close()
        }
        do {
            let again = try StateStore(path: filePath, workspace: "w2")
            XCTAssertFalse(again.wasReset)
            XCTAssertEqual(try again.contactID(forKey: "u:9"), "c9")
            again.close()
        }
        let back = try StateStore(path: filePath, workspace: "w1")
        XCTAssertTrue(back.wasReset)
        XCTAssertNil(try back.contactID(forKey: "u:9"))
    }

    func testWALModeAndSettings() throws {
        let store = try StateStore(path: filePath, workspace: "w1")
        XCTAssertEqual(try store.pragma("journal_mode"), "wal")
        XCTAssertEqual(try store.pragma("synchronous"), "1")
        XCTAssertEqual(try store.pragma("cache_size"), "-4000")
        XCTAssertEqual(try store.pragma("busy_timeout"), "5000")
    }

    func testCloseCheckpointsAndLaterCallsThrow() throws {
        let store = try StateStore(path: filePath, workspace: "w1")
        try fill(store)
        store.close()
        store.close()
        // The WAL is checkpointed into the main file and removed on close.
        XCTAssertFalse(FileManager.default.fileExists(atPath: filePath + "-wal"))
        XCTAssertThrowsError(try store.contactID(forKey: "u:1")) { error in
            XCTAssertTrue("\(error)".contains(filePath), "\(error)")
            XCTAssertTrue("\(error)".contains("closed"), "\(error)")
        }
    }

    func testPathInAMissingFolderNamesThePath() throws {
        let path = folder.appendingPathComponent("missing/rest-state.sqlite").path
        XCTAssertThrowsError(try StateStore(path: path, workspace: "w1")) { error in
            guard let error = error as? StateStoreError else { return XCTFail("not a StateStoreError: \(error)") }
            XCTAssertTrue(error.message.contains(path), error.message)
            XCTAssertTrue(error.message.contains("--state-dir"), error.message)
            XCTAssertEqual(error.description, error.message)
        }
    }

    func testNewerSchemaVersionIsRefused() throws {
        do {
            let store = try StateStore(path: filePath, workspace: "w1")
            try fill(store)
            try store.executeForTesting("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            store.close()
        }
        XCTAssertThrowsError(try StateStore(path: filePath, workspace: "w1")) { error in
            guard let error = error as? StateStoreError else { return XCTFail("not a StateStoreError: \(error)") }
            XCTAssertTrue(error.message.contains(filePath), error.message)
            XCTAssertTrue(error.message.contains("newer"), error.message)
            XCTAssertTrue(error.message.contains("99"), error.message)
            XCTAssertTrue(error.message.contains("delete the file or use another --state-dir"), error.message)
        }
        // The refused file is left as it was.
        XCTAssertTrue(FileManager.default.fileExists(atPath: filePath))
    }

    func testAFullDiskIsReportedAndRolledBack() throws {
        let store = try StateStore(path: filePath, workspace: "w1")
        try store.saveContact(id: "c1", keys: ["u:1"], fields: [1])
        // Capping the file at its current size makes the next growth fail with SQLITE_FULL, as a full disk would.
        let pages = try XCTUnwrap(try store.pragma("page_count"))
        try store.executeForTesting("PRAGMA max_page_count = \(pages)")
        let big = [UInt8](repeating: 7, count: 1_000_000)
        XCTAssertThrowsError(try store.saveContact(id: "c2", keys: ["u:2", "e:b@x.com"], fields: big)) { error in
            guard let error = error as? StateStoreError else { return XCTFail("not a StateStoreError: \(error)") }
            XCTAssertTrue(error.message.contains(filePath), error.message)
            XCTAssertTrue(error.message.contains("save a contact"), error.message)
            XCTAssertTrue(error.message.contains("disk is full"), error.message)
        }
        // Nothing of the failed transaction remains, and the store still works.
        XCTAssertNil(try store.contactID(forKey: "u:2"))
        XCTAssertEqual(try store.contactID(forKey: "u:1"), "c1")
        try store.saveContact(id: "c1", keys: ["e:a@x.com"], fields: nil)
        XCTAssertEqual(try store.counts().contactKeys, 2)
    }

    func testAFileThatIsNotADatabaseIsRefused() throws {
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: filePath))
        XCTAssertThrowsError(try StateStore(path: filePath, workspace: "w1")) { error in
            guard let error = error as? StateStoreError else { return XCTFail("not a StateStoreError: \(error)") }
            XCTAssertTrue(error.message.contains(filePath), error.message)
            XCTAssertTrue(error.message.contains("delete it or use another --state-dir"), error.message)
        }
    }

    // MARK: Concurrency

    func testConcurrentUseFromManyTasks() async throws {
        let store = try StateStore(path: filePath, workspace: "w1")
        let tasks = 8
        let perTask = 2_000
        try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var found = 0
                    for index in 0..<perTask {
                        let id = "c\(task)-\(index)"
                        let keys = ["u:\(task)-\(index)", "e:\(task)-\(index)@x.com"]
                        try store.saveContact(id: id, keys: keys, fields: [UInt8(task)])
                        if try store.contactID(forKey: "e:\(task)-\(index)@x.com") == id,
                            try store.contactFields(contactID: id) == [UInt8(task)]
                        {
                            found += 1
                        }
                        try store.setMember(contactID: id, companyIntercomID: "ic\(task)", true)
                        // Other tasks' rows, written or not yet: must never throw or return another id.
                        let other = (task + 1) % tasks
                        if let seen = try store.contactID(forKey: "u:\(other)-\(index)") {
                            XCTAssertEqual(seen, "c\(other)-\(index)")
                        }
                    }
                    return found
                }
            }
            var found = 0
            for try await count in group {
                found += count
            }
            XCTAssertEqual(found, tasks * perTask)
        }
        XCTAssertEqual(
            try store.counts(),
            StateStore.Counts(
                contactKeys: 2 * tasks * perTask, contacts: tasks * perTask, companies: 0,
                memberships: tasks * perTask, attributes: 0
            )
        )
    }
}
