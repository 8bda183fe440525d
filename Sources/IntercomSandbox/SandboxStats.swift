/// What the sandbox has seen since it started: `GET /sandbox/stats` serves this as JSON (snake_case
/// keys) and `IntercomSandboxServer.stats()` returns it in-process.
public struct SandboxStats: Codable, Sendable, Equatable {
    /// Items counted by Intercom type.
    public struct ItemCounts: Codable, Sendable, Equatable {
        public var users: Int
        public var events: Int

        public init(users: Int = 0, events: Int = 0) {
            self.users = users
            self.events = events
        }
    }

    /// Faults injected by `failRate`, by kind. Their requests were not applied.
    public struct FaultCounts: Codable, Sendable, Equatable {
        public var http500: Int
        public var http503: Int
        public var dropped: Int

        public init(http500: Int = 0, http503: Int = 0, dropped: Int = 0) {
            self.http500 = http500
            self.http503 = http503
            self.dropped = dropped
        }

        public var total: Int { http500 + http503 + dropped }

        enum CodingKeys: String, CodingKey {
            case http500 = "http_500"
            case http503 = "http_503"
            case dropped
        }
    }

    /// Requests to the bulk API (`/bulk/*`, `/jobs/*` and unknown paths), whatever their answer.
    /// `/sandbox/*` requests are not counted.
    public var requests: Int = 0
    /// Items applied: user upserts and new events. Duplicated events are not in here.
    public var itemsAccepted = ItemCounts()
    /// Events ignored because an event with the same user, name and `created_at` second was
    /// already accepted (Intercom's de-duplication). Not failures.
    public var duplicates: Int = 0
    /// Requests answered `429`.
    public var rateLimited: Int = 0
    /// Requests answered `401`.
    public var unauthorized: Int = 0
    /// Injected faults by kind.
    public var faults = FaultCounts()
    /// Items that went to a job's error feed.
    public var itemsFailed: Int = 0
    /// `itemsFailed` by error code (`parameter_invalid`, `media_type_not_acceptable`).
    public var itemsFailedByCode: [String: Int] = [:]
    /// Jobs created.
    public var jobs: Int = 0
    /// Distinct users stored (by `user_id`, else `email`).
    public var usersStored: Int = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case requests
        case itemsAccepted = "items_accepted"
        case duplicates
        case rateLimited = "rate_limited"
        case unauthorized
        case faults
        case itemsFailed = "items_failed"
        case itemsFailedByCode = "items_failed_by_code"
        case jobs
        case usersStored = "users_stored"
    }
}

/// One item the sandbox applied, as it will read it back: its type, the job it came in, and its
/// `data` as compact JSON text (keys in the order sent, numbers as sent).
public struct AcceptedItem: Sendable, Equatable {
    /// `"user"` or `"event"`.
    public var dataType: String
    /// The job the item was appended to.
    public var jobID: String
    /// The item's `data` object as compact JSON text.
    public var dataJSON: String

    public init(dataType: String, jobID: String, dataJSON: String) {
        self.dataType = dataType
        self.jobID = jobID
        self.dataJSON = dataJSON
    }

    /// The NDJSON line of the record file: `{"job_id":...,"data_type":...,"data":{...}}`.
    var recordLine: String {
        var line = "{\"job_id\":"
        JSONValue.writeString(jobID, into: &line)
        line += ",\"data_type\":"
        JSONValue.writeString(dataType, into: &line)
        line += ",\"data\":" + dataJSON + "}\n"
        return line
    }
}
