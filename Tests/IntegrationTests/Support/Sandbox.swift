import Foundation
import IntercomBackfill
import IntercomSandbox
import Logging
import XCTest

let silentLogger = Logger(label: "intercom-itests") { _ in SwiftLogNoOpLogHandler() }

/// The uploader's clock over the sandbox's manual clock: both read the same virtual time, and a
/// wait (backoff, rate-limit window, job polling) moves it forward at once instead of sleeping.
struct VirtualUploadClock: UploadClock {
    let clock: SandboxManualClock

    func now() -> Double { clock.now }

    func sleep(seconds: Double) async throws {
        if seconds > 0 { clock.advance(seconds: seconds) }
        await Task.yield()
    }
}

/// Starts a sandbox on a free loopback port, runs `body`, and always shuts it down.
func withSandbox<T>(
    _ configure: (inout SandboxConfiguration) -> Void = { _ in },
    _ body: (IntercomSandboxServer) async throws -> T
) async throws -> T {
    var configuration = SandboxConfiguration(port: 0, threads: 2)
    configure(&configuration)
    let server = try await IntercomSandboxServer.start(configuration, logger: silentLogger)
    let result: T
    do {
        result = try await body(server)
    } catch {
        try? await server.shutdown()
        throw error
    }
    try await server.shutdown()
    return result
}

/// What the sandbox accepted, canonical, by kind and in acceptance order.
struct Accepted {
    var users: [String]
    var events: [String]
    /// (dataType, canonical data) in acceptance order.
    var ordered: [(type: String, data: [String: Any])]

    init(_ items: [AcceptedItem]) {
        var users: [String] = []
        var events: [String] = []
        var ordered: [(String, [String: Any])] = []
        for item in items {
            let object = (try? JSONSerialization.jsonObject(with: Data(item.dataJSON.utf8))) as? [String: Any] ?? [:]
            let text = canonicalJSON(object)
            if item.dataType == "user" { users.append(text) } else { events.append(text) }
            ordered.append((item.dataType, object))
        }
        self.users = users
        self.events = events
        self.ordered = ordered
    }
}

/// The dedup key the sandbox (and Intercom) use for an event: user, name, created_at second.
func eventKey(_ data: [String: Any]) -> String {
    let who = (data["user_id"] as? String).map { "u:" + $0 } ?? (data["email"] as? String).map { "e:" + $0 } ?? "?"
    return "\(who)|\(data["event_name"] as? String ?? "")|\(data["created_at"].map { "\($0)" } ?? "")"
}

/// Every identity a user item names (`u:` user id, `e:` email).
func userKeys(_ data: [String: Any]) -> [String] {
    var keys: [String] = []
    if let id = data["user_id"] as? String, !id.isEmpty { keys.append("u:" + id) }
    if let email = data["email"] as? String, !email.isEmpty { keys.append("e:" + email) }
    return keys
}

/// The identity an event names (`user_id`, else `email`).
func eventUserKey(_ data: [String: Any]) -> String? {
    if let id = data["user_id"] as? String, !id.isEmpty { return "u:" + id }
    if let email = data["email"] as? String, !email.isEmpty { return "e:" + email }
    return nil
}

extension Array where Element == String {
    /// The multiset as sorted elements, for order-free comparison.
    var sortedMultiset: [String] { sorted() }
}

/// The whole upload path in process (Pipeline + Uploader + IntercomClient against the sandbox),
/// so the test can hand the uploader a clock it shares with the sandbox.
struct InProcessRun {
    var report: RunReport
    var rejects: [[String: Any]]
}

func uploadInProcess(
    inputs: [String], to server: IntercomSandboxServer, token: String, clock: any UploadClock,
    stateDir: URL, batchSize: Int = 100, concurrency: Int = 4,
    configure: (inout UploadOptions) -> Void = { _ in }
) async throws -> InProcessRun {
    try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
    let files = try InputDiscovery.expand(inputs)
    let rejectsURL = stateDir.appendingPathComponent("rejects.ndjson")
    // Each shared object made once, as the CLI does.
    let rejects = try RejectsWriter(path: rejectsURL.path, append: false)
    let registry = InputRegistry(files)
    let stop = StopSignal()
    var options = PipelineOptions()
    options.batchSize = batchSize
    options.concurrency = concurrency
    var uploadOptions = UploadOptions()
    configure(&uploadOptions)
    let report = try await IntercomClient.withHTTPClient { http in
        let client = IntercomClient(http: http, endpoint: try IntercomEndpoint(url: server.baseURL), credentials: .bearer(token))
        let uploader = Uploader(
            client: client, options: uploadOptions, rejects: rejects, sources: registry, clock: clock, stop: stop,
            logger: silentLogger)
        return try await Backfill.run(
            inputs: files, options: options, destination: uploader, rejects: rejects, resume: nil,
            registry: registry, stop: stop, progress: nil, logger: silentLogger)
    }
    return InProcessRun(report: report, rejects: try ndjsonObjects(rejectsURL))
}

/// The in-process report as the CLI's JSON report (same keys), so one invariant check serves both.
extension Report {
    init(_ report: RunReport) throws {
        raw = try jsonObject(report.jsonData())
    }
}

/// For every accepted event whose user was identified earlier in the input, that user's item was
/// accepted before it (in `acceptedItems()` order). "Earlier in the input" is read off the dry run
/// of the same input: `Batcher` closes pending users before the events that follow them, so a
/// user item that precedes an event in the input is in a request before the event's request
/// (and the uploader holds an events batch until every earlier users batch is settled).
/// Returns how many events were checked.
@discardableResult
func assertUsersAcceptedBeforeTheirEvents(
    sent requests: [DryRunRequest], accepted: [AcceptedItem],
    file: StaticString = #filePath, line: UInt = #line
) -> Int {
    // For each event key: the user identities sent in the requests before its first request.
    var usersSoFar = Set<String>()
    var usersBefore: [String: Set<String>] = [:]
    for request in requests {
        if request.isUsers {
            for item in request.items { usersSoFar.formUnion(userKeys(item["data"] as? [String: Any] ?? [:])) }
        } else {
            for item in request.items {
                let key = eventKey(item["data"] as? [String: Any] ?? [:])
                if usersBefore[key] == nil { usersBefore[key] = usersSoFar }
            }
        }
    }
    var acceptedUsers = Set<String>()
    var checked = 0
    var early = 0
    for item in accepted {
        let data = (try? JSONSerialization.jsonObject(with: Data(item.dataJSON.utf8))) as? [String: Any] ?? [:]
        if item.dataType == "user" {
            acceptedUsers.formUnion(userKeys(data))
            continue
        }
        guard let who = eventUserKey(data), let before = usersBefore[eventKey(data)] else {
            XCTFail("accepted an event that was not sent: \(item.dataJSON)", file: file, line: line)
            continue
        }
        if before.contains(who) {
            checked += 1
            if !acceptedUsers.contains(who) {
                early += 1
                if early <= 3 { XCTFail("event \(item.dataJSON) was accepted before its user", file: file, line: line) }
            }
        }
    }
    XCTAssertEqual(early, 0, "\(early) of \(checked) events were accepted before their user", file: file, line: line)
    return checked
}
