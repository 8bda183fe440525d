import CSQLite
import Synchronization

/// A failure of the REST state store, worded for the user: what failed, on which file, and what to check.
public struct StateStoreError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }
}

/// What REST mode remembers across runs so that it makes as few Intercom calls as possible: contact keys -> contact
/// ids, fingerprints of what was last written to each contact and company, company ids, memberships and the custom
/// data attributes known to exist. One SQLite connection behind a `Mutex`, so the many upload tasks can share it;
/// SQLite's page cache is kept modest so memory stays bounded however many rows the file holds.
public final class StateStore: Sendable {
    /// Row totals, for status output and tests.
    public struct Counts: Sendable, Equatable {
        public var contactKeys: Int
        /// Contact ids saved and not forgotten, with or without a fingerprint (and even if their keys moved on).
        public var contacts: Int
        public var companies: Int
        public var memberships: Int
        public var attributes: Int

        public init(contactKeys: Int, contacts: Int, companies: Int, memberships: Int, attributes: Int) {
            self.contactKeys = contactKeys
            self.contacts = contacts
            self.companies = companies
            self.memberships = memberships
            self.attributes = attributes
        }
    }

    /// The schema this code reads and writes; a file with a higher one came from a newer release.
    static let schemaVersion = 1

    public let path: String
    /// True when the file had been written for another workspace and was emptied on opening.
    public let wasReset: Bool
    private let connection: Mutex<Connection>
    private let eventInserts = Mutex(0)

    /// Opens or creates the store at `path` (":memory:" for an in-memory store, used by dry runs).
    /// `workspace` identifies the Intercom workspace (the caller passes a hash of endpoint + credentials):
    /// a store written for another workspace is emptied (every table) and re-labelled, and
    /// `wasReset` says so. Creates the schema if missing (schema version in a `meta` table; an unknown
    /// newer version is an error telling the user to delete the file or use another --state-dir).
    public init(path: String, workspace: String) throws(StateStoreError) {
        self.path = path
        guard !path.utf8.contains(0) else {
            throw StateStoreError("cannot open the REST state store \(path): the path contains a NUL character")
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let db = handle else {
            let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(handle)
            throw StateStoreError(
                "cannot open the REST state store \(path): \(detail) (SQLite \(code))"
                    + "; check the --state-dir folder exists and is writable"
            )
        }
        sqlite3_extended_result_codes(db, 1)
        // Waits out another process briefly (a status command reading, say) rather than failing at once.
        sqlite3_busy_timeout(db, 5000)
        let conn = Connection(path: path, db: db)
        do {
            wasReset = try conn.setUp(workspace: workspace)
        } catch {
            conn.close()
            throw error
        }
        connection = Mutex(conn)
    }

    deinit {
        close()
    }

    // MARK: Contacts

    /// The Intercom contact id `key` was last saved under, nil if none.
    public func contactID(forKey key: String) throws(StateStoreError) -> String? {
        try locked { conn throws(StateStoreError) in
            try conn.first("SELECT contact_id FROM contact_keys WHERE key = ?", [.text(key)], "look up a contact key") {
                $0.text(0)
            }
        }
    }

    /// The fingerprint blob last saved for the contact, nil if none.
    public func contactFields(contactID: String) throws(StateStoreError) -> [UInt8]? {
        try locked { conn throws(StateStoreError) in
            let row = try conn.first(
                "SELECT fields FROM contacts WHERE contact_id = ?", [.text(contactID)], "read a contact's fingerprint"
            ) { $0.blob(0) }
            return row ?? nil
        }
    }

    /// Points every key in `keys` at `contactID` (replacing what they pointed to) and, when `fields` is non-nil,
    /// replaces the contact's fingerprint blob. One transaction.
    public func saveContact(id contactID: String, keys: [String], fields: [UInt8]?) throws(StateStoreError) {
        let what = "save a contact"
        try locked { conn throws(StateStoreError) in
            try conn.transaction(what) { () throws(StateStoreError) in
                for key in keys {
                    try conn.run(
                        """
                        INSERT INTO contact_keys (key, contact_id) VALUES (?, ?)
                        ON CONFLICT (key) DO UPDATE SET contact_id = excluded.contact_id
                        """,
                        [.text(key), .text(contactID)], what
                    )
                }
                if let fields {
                    try conn.run(
                        """
                        INSERT INTO contacts (contact_id, fields) VALUES (?, ?)
                        ON CONFLICT (contact_id) DO UPDATE SET fields = excluded.fields
                        """,
                        [.text(contactID), .blob(fields)], what
                    )
                } else {
                    // The contact is known even before anything was written to it.
                    try conn.run(
                        "INSERT OR IGNORE INTO contacts (contact_id, fields) VALUES (?, NULL)", [.text(contactID)], what
                    )
                }
            }
        }
    }

    /// Forgets a contact Intercom no longer has (deleted, merged away): its keys, fingerprint and memberships.
    /// One transaction.
    public func forgetContact(id contactID: String) throws(StateStoreError) {
        let what = "forget a contact"
        try locked { conn throws(StateStoreError) in
            try conn.transaction(what) { () throws(StateStoreError) in
                try conn.run("DELETE FROM contact_keys WHERE contact_id = ?", [.text(contactID)], what)
                try conn.run("DELETE FROM contacts WHERE contact_id = ?", [.text(contactID)], what)
                try conn.run("DELETE FROM memberships WHERE contact_id = ?", [.text(contactID)], what)
            }
        }
    }

    // MARK: Companies

    /// The Intercom id and fingerprint last saved for the client's `companyID`, nil if none.
    public func company(companyID: String) throws(StateStoreError) -> (intercomID: String, fields: [UInt8])? {
        try locked { conn throws(StateStoreError) in
            try conn.first(
                "SELECT intercom_id, fields FROM companies WHERE company_id = ?", [.text(companyID)], "look up a company"
            ) { (intercomID: $0.text(0), fields: $0.blob(1) ?? []) }
        }
    }

    public func saveCompany(companyID: String, intercomID: String, fields: [UInt8]) throws(StateStoreError) {
        try locked { conn throws(StateStoreError) in
            try conn.run(
                """
                INSERT INTO companies (company_id, intercom_id, fields) VALUES (?, ?, ?)
                ON CONFLICT (company_id) DO UPDATE SET intercom_id = excluded.intercom_id, fields = excluded.fields
                """,
                [.text(companyID), .text(intercomID), .blob(fields)], "save a company"
            )
        }
    }

    // MARK: Memberships

    public func isMember(contactID: String, companyIntercomID: String) throws(StateStoreError) -> Bool {
        try locked { conn throws(StateStoreError) in
            try conn.first(
                "SELECT 1 FROM memberships WHERE contact_id = ? AND company_intercom_id = ?",
                [.text(contactID), .text(companyIntercomID)], "look up a company membership"
            ) { _ in true } ?? false
        }
    }

    public func setMember(contactID: String, companyIntercomID: String, _ member: Bool) throws(StateStoreError) {
        try locked { conn throws(StateStoreError) in
            if member {
                try conn.run(
                    "INSERT OR IGNORE INTO memberships (contact_id, company_intercom_id) VALUES (?, ?)",
                    [.text(contactID), .text(companyIntercomID)], "save a company membership"
                )
            } else {
                try conn.run(
                    "DELETE FROM memberships WHERE contact_id = ? AND company_intercom_id = ?",
                    [.text(contactID), .text(companyIntercomID)], "remove a company membership"
                )
            }
        }
    }

    // MARK: Data attributes

    /// The custom data attributes known for `model` ("contact" or "company"), sorted by name.
    public func attributes(model: String) throws(StateStoreError) -> [(name: String, dataType: String)] {
        try locked { conn throws(StateStoreError) in
            try conn.query(
                "SELECT name, data_type FROM attributes WHERE model = ? ORDER BY name", [.text(model)],
                "list the data attributes"
            ) { (name: $0.text(0), dataType: $0.text(1)) }
        }
    }

    public func saveAttribute(model: String, name: String, dataType: String) throws(StateStoreError) {
        try locked { conn throws(StateStoreError) in
            try conn.run(
                "INSERT OR REPLACE INTO attributes (model, name, data_type) VALUES (?, ?, ?)",
                [.text(model), .text(name), .text(dataType)], "save a data attribute"
            )
        }
    }

    /// Replaces every attribute of `model` with `list` (what the workspace listed at the start). One transaction.
    public func replaceAttributes(model: String, with list: [(name: String, dataType: String)]) throws(StateStoreError) {
        let what = "replace the data attributes"
        try locked { conn throws(StateStoreError) in
            try conn.transaction(what) { () throws(StateStoreError) in
                try conn.run("DELETE FROM attributes WHERE model = ?", [.text(model)], what)
                for attribute in list {
                    try conn.run(
                        "INSERT OR REPLACE INTO attributes (model, name, data_type) VALUES (?, ?, ?)",
                        [.text(model), .text(attribute.name), .text(attribute.dataType)], what
                    )
                }
            }
        }
    }

    // MARK: Events sent

    /// How many acknowledged events are remembered: far more than a kill can leave unsettled
    /// (the delivery window), few enough that the file stays small however long the backfill.
    public static let eventMemory = 100_000

    /// Whether an event with this fingerprint was acknowledged lately: a run resumed after a
    /// kill skips the re-read events Intercom already has, instead of re-sending them.
    public func wasEventSent(_ fingerprint: UInt64) throws(StateStoreError) -> Bool {
        try locked { conn throws(StateStoreError) in
            try conn.first(
                "SELECT 1 FROM sent_events WHERE fingerprint = ?", [.blob(Self.bytes(fingerprint))], "look up a sent event"
            ) { _ in true } ?? false
        }
    }

    public func noteEventSent(_ fingerprint: UInt64) throws(StateStoreError) {
        let prune = eventInserts.withLock { count -> Bool in
            count += 1
            return count % 4096 == 0
        }
        try locked { conn throws(StateStoreError) in
            try conn.run(
                "INSERT OR IGNORE INTO sent_events (fingerprint) VALUES (?)", [.blob(Self.bytes(fingerprint))],
                "remember a sent event")
            if prune {
                try conn.run(
                    "DELETE FROM sent_events WHERE rowid <= (SELECT MAX(rowid) FROM sent_events) - \(Self.eventMemory)", [],
                    "forget old sent events")
            }
        }
    }

    /// `--restart`: every event is sent again (Intercom de-duplicates them).
    public func forgetSentEvents() throws(StateStoreError) {
        try locked { conn throws(StateStoreError) in try conn.run("DELETE FROM sent_events", [], "forget the sent events") }
    }

    private static func bytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    // MARK: Housekeeping

    public func counts() throws(StateStoreError) -> Counts {
        try locked { conn throws(StateStoreError) in
            let counts = try conn.first(
                """
                SELECT (SELECT COUNT(*) FROM contact_keys), (SELECT COUNT(*) FROM contacts),
                    (SELECT COUNT(*) FROM companies), (SELECT COUNT(*) FROM memberships),
                    (SELECT COUNT(*) FROM attributes)
                """,
                [], "count the rows"
            ) {
                Counts(
                    contactKeys: $0.int(0), contacts: $0.int(1), companies: $0.int(2), memberships: $0.int(3),
                    attributes: $0.int(4)
                )
            }
            return counts ?? Counts(contactKeys: 0, contacts: 0, companies: 0, memberships: 0, attributes: 0)
        }
    }

    /// Checkpoints the WAL and closes; later calls throw. Also called from deinit if not closed.
    public func close() {
        connection.withLock { $0.close() }
    }

    /// The value `PRAGMA name` reports, so tests can check the connection's settings.
    func pragma(_ name: String) throws(StateStoreError) -> String? {
        try locked { conn throws(StateStoreError) in
            try conn.first("PRAGMA \(name)", [], "read PRAGMA \(name)", cache: false) { $0.text(0) }
        }
    }

    /// Runs `sql` as is, for tests that set up files the API cannot produce (a newer schema version, say).
    func executeForTesting(_ sql: String) throws(StateStoreError) {
        try locked { conn throws(StateStoreError) in try conn.script(sql, "run test SQL") }
    }

    /// Runs `body` on the open connection under the lock; throws once the store is closed.
    private func locked<T: Sendable>(_ body: (Connection) throws(StateStoreError) -> T) throws(StateStoreError) -> T {
        try connection.withLock { conn throws(StateStoreError) -> T in
            guard conn.isOpen else {
                throw StateStoreError("the REST state store \(path) is already closed")
            }
            return try body(conn)
        }
    }
}

/// A value bound to a statement parameter.
private enum Argument {
    case text(String)
    case blob([UInt8])
}

/// The current row of a stepped statement.
private struct Row {
    let statement: OpaquePointer

    func text(_ column: Int32) -> String {
        // Text first, then its length: the documented order, and the length counts embedded NULs.
        guard let bytes = sqlite3_column_text(statement, column) else { return "" }
        let count = Int(sqlite3_column_bytes(statement, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// nil for SQL NULL; an empty array for an empty blob (which SQLite returns as a NULL pointer).
    func blob(_ column: Int32) -> [UInt8]? {
        guard sqlite3_column_type(statement, column) != SQLITE_NULL else { return nil }
        let bytes = sqlite3_column_blob(statement, column)
        let count = Int(sqlite3_column_bytes(statement, column))
        guard let bytes, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    func int(_ column: Int32) -> Int {
        Int(sqlite3_column_int64(statement, column))
    }
}

/// The one SQLite connection and its cached prepared statements. Only ever used by one thread at a time: during
/// `StateStore.init`, then under the store's `Mutex`.
private final class Connection {
    let path: String
    private var db: OpaquePointer?
    /// Prepared once per SQL text and reset after each use; the set of texts is fixed, so this stays small.
    private var statements: [String: OpaquePointer] = [:]

    init(path: String, db: OpaquePointer) {
        self.path = path
        self.db = db
    }

    var isOpen: Bool { db != nil }

    /// Applies the connection settings and brings the schema up to date; returns whether the file was emptied
    /// because it belonged to another workspace.
    func setUp(workspace: String) throws(StateStoreError) -> Bool {
        // WAL: readers never block the writer and commits are cheap; an in-memory store reports "memory".
        _ = try first("PRAGMA journal_mode = WAL", [], "switch to WAL mode", cache: false) { $0.text(0) }
        // NORMAL is safe in WAL mode (a power cut can lose the last commits, never corrupt the file); losing a few
        // just means those contacts are looked up again.
        try script("PRAGMA synchronous = NORMAL", "configure")
        // 4 MB of page cache, and a WAL that is truncated back to 64 MB at most, whatever the row count.
        try script("PRAGMA cache_size = -4000", "configure")
        try script("PRAGMA journal_size_limit = 67108864", "configure")

        let what = "prepare"
        return try transaction(what) { () throws(StateStoreError) -> Bool in
            let hasMeta =
                try first(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", [], what, cache: false
                ) { _ in true } ?? false
            if hasMeta {
                let stored = try first(
                    "SELECT value FROM meta WHERE key = 'schema_version'", [], what, cache: false
                ) { $0.text(0) }
                guard let stored, let version = Int(stored), version >= 1 else {
                    throw StateStoreError(
                        "the REST state store \(path) has no schema version this intercom-backfill understands"
                            + "; delete the file or use another --state-dir"
                    )
                }
                guard version <= StateStore.schemaVersion else {
                    throw StateStoreError(
                        "the REST state store \(path) was written by a newer intercom-backfill (schema version "
                            + "\(version), this one reads up to \(StateStore.schemaVersion))"
                            + "; delete the file or use another --state-dir"
                    )
                }
            }
            try script(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS contact_keys (key TEXT PRIMARY KEY, contact_id TEXT NOT NULL) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS contact_keys_by_contact ON contact_keys (contact_id);
                CREATE TABLE IF NOT EXISTS contacts (contact_id TEXT PRIMARY KEY, fields BLOB) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS companies (
                    company_id TEXT PRIMARY KEY, intercom_id TEXT NOT NULL, fields BLOB NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS memberships (
                    contact_id TEXT, company_intercom_id TEXT, PRIMARY KEY (contact_id, company_intercom_id)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS attributes (
                    model TEXT, name TEXT, data_type TEXT NOT NULL, PRIMARY KEY (model, name)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS sent_events (fingerprint BLOB UNIQUE NOT NULL);
                INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '\(StateStore.schemaVersion)');
                """,
                what
            )
            let label = try first("SELECT value FROM meta WHERE key = 'workspace'", [], what, cache: false) {
                $0.text(0)
            }
            guard label != workspace else { return false }
            // Ids from another workspace mean nothing here; an unlabelled file is emptied too, to be safe.
            try script(
                """
                DELETE FROM contact_keys; DELETE FROM contacts; DELETE FROM companies;
                DELETE FROM memberships; DELETE FROM attributes; DELETE FROM sent_events;
                """,
                what
            )
            try run(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('workspace', ?)", [.text(workspace)], what, cache: false
            )
            return label != nil
        }
    }

    /// Runs `body` between BEGIN IMMEDIATE and COMMIT, rolling back if anything throws. IMMEDIATE takes the write
    /// lock up front, so a busy file is waited for (busy_timeout) at the start rather than failing half-way.
    func transaction<T>(_ what: String, _ body: () throws(StateStoreError) -> T) throws(StateStoreError) -> T {
        try run("BEGIN IMMEDIATE", [], what)
        do {
            let result = try body()
            try run("COMMIT", [], what)
            return result
        } catch {
            // Fails harmlessly when SQLite already rolled back (after SQLITE_FULL, say).
            try? run("ROLLBACK", [], what)
            throw error
        }
    }

    /// Steps `sql` to completion, ignoring any rows.
    func run(_ sql: String, _ arguments: [Argument], _ what: String, cache: Bool = true) throws(StateStoreError) {
        try withStatement(sql, arguments, what, cache: cache) { _ in }
    }

    /// Every row of `sql`, each converted by `convert`.
    func query<T>(
        _ sql: String, _ arguments: [Argument], _ what: String, cache: Bool = true, _ convert: (Row) -> T
    ) throws(StateStoreError) -> [T] {
        var result: [T] = []
        try withStatement(sql, arguments, what, cache: cache) { result.append(convert($0)) }
        return result
    }

    /// The first row of `sql` converted by `convert`, nil if there is none.
    func first<T>(
        _ sql: String, _ arguments: [Argument], _ what: String, cache: Bool = true, _ convert: (Row) -> T
    ) throws(StateStoreError) -> T? {
        var result: T?
        try withStatement(sql, arguments, what, cache: cache) { row in
            if result == nil { result = convert(row) }
        }
        return result
    }

    /// Runs SQL text that may hold several statements and takes no parameters (schema, settings).
    func script(_ sql: String, _ what: String) throws(StateStoreError) {
        let db = try handle()
        let code = sqlite3_exec(db, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw failure(what, code) }
    }

    /// Checkpoints and truncates the WAL, then closes; does nothing when already closed.
    func close() {
        guard let db else { return }
        for statement in statements.values {
            sqlite3_finalize(statement)
        }
        statements = [:]
        // Best effort: if it fails, SQLite checkpoints on the next open anyway.
        sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
        sqlite3_close_v2(db)
        self.db = nil
    }

    private func handle() throws(StateStoreError) -> OpaquePointer {
        guard let db else { throw StateStoreError("the REST state store \(path) is already closed") }
        return db
    }

    /// Binds `arguments`, steps through every row, then resets the statement and clears its bindings (which frees
    /// the bound copies), so a cached statement is ready for its next use whatever happened.
    private func withStatement(
        _ sql: String, _ arguments: [Argument], _ what: String, cache: Bool, _ eachRow: (Row) -> Void
    ) throws(StateStoreError) {
        let db = try handle()
        let statement = try prepare(db, sql, what, cache: cache)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            if !cache { sqlite3_finalize(statement) }
        }
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch argument {
            case .text(var text):
                code = text.withUTF8 { bytes in
                    bytes.withMemoryRebound(to: CChar.self) {
                        csqlite_bind_text(statement, index, $0.baseAddress, sqlite3_uint64($0.count))
                    }
                }
            case .blob(let blob):
                code = blob.withUnsafeBytes {
                    csqlite_bind_blob(statement, index, $0.baseAddress, sqlite3_uint64($0.count))
                }
            }
            guard code == SQLITE_OK else { throw failure(what, code) }
        }
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_ROW {
                eachRow(Row(statement: statement))
            } else if code == SQLITE_DONE {
                return
            } else {
                throw failure(what, code)
            }
        }
    }

    private func prepare(_ db: OpaquePointer, _ sql: String, _ what: String, cache: Bool) throws(StateStoreError)
        -> OpaquePointer
    {
        if cache, let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let flags = cache ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let code = sqlite3_prepare_v3(db, sql, -1, flags, &statement, nil)
        guard code == SQLITE_OK, let statement else {
            sqlite3_finalize(statement)
            throw failure(what, code)
        }
        if cache { statements[sql] = statement }
        return statement
    }

    /// The error for a failed call, with SQLite's own message and a hint at what the user can do about it.
    private func failure(_ what: String, _ code: Int32) -> StateStoreError {
        let detail = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
        let hint: String
        switch code & 0xFF {
        case SQLITE_FULL:
            hint = "; the disk is full: free some space or use another --state-dir"
        case SQLITE_IOERR:
            hint = "; the disk may be full or unwritable: check the --state-dir folder's disk"
        case SQLITE_CANTOPEN:
            hint = "; check the --state-dir folder exists and is writable"
        case SQLITE_READONLY, SQLITE_PERM:
            hint = "; the file or its folder is read-only: check the --state-dir permissions"
        case SQLITE_BUSY, SQLITE_LOCKED:
            hint = "; another intercom-backfill run may be using the same --state-dir"
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            hint = "; the file is damaged or not a state store: delete it or use another --state-dir"
        case SQLITE_TOOBIG:
            hint = "; a value is too large to store"
        default:
            hint = ""
        }
        return StateStoreError("cannot \(what) in the REST state store \(path): \(detail) (SQLite \(code))\(hint)")
    }
}
