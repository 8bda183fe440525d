// Throughput and memory of the REST state store at a realistic size: `swift run -c release StateStoreBench [contacts]`.
// Each contact is saved as the upload path saves it (two keys and a 40-byte fingerprint, one transaction), into a
// file store in a temporary folder; then random lookups, memberships, the file size and the peak RSS.
import Foundation
import IntercomBackfill

/// A fixed-seed generator, so runs pick the same "random" contacts and compare fairly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// An id shaped like Intercom's (24 hex digits, rising over time like a MongoDB ObjectId), so key sizes and page
/// writes are realistic.
func intercomID(_ index: Int) -> String {
    let hex = String(0x6571_F0C2_0000_0000 + UInt64(index), radix: 16)
    return String(repeating: "0", count: max(0, 24 - hex.count)) + hex
}

func keys(_ index: Int) -> [String] {
    ["u:ext-\(index)", "e:user\(index)@example.com"]
}

/// A value from /proc/self/status in kB (VmHWM is the peak RSS), nil where there is no /proc.
func status(_ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.dropFirst(field.count + 1).filter(\.isNumber))
    }
    return nil
}

func megabytes(_ kilobytes: Int?) -> String {
    kilobytes.map { String(format: "%.1f MB", Double($0) / 1024) } ?? "n/a"
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
}

/// Runs `body` `count` times and prints the rate.
func measure(_ label: String, _ count: Int, _ body: (Int) throws -> Void) rethrows {
    let clock = ContinuousClock()
    let start = clock.now
    for index in 0..<count {
        try body(index)
    }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(count) / seconds
    let padded = label.padding(toLength: 36, withPad: " ", startingAt: 0)
    print(padded + String(format: "%9d in %7.2f s = %10.0f /s", count, seconds, rate))
}

let contacts = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
let memberships = 100_000
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("StoreBench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: folder) }
let path = folder.appendingPathComponent("rest-state.sqlite").path

print("StateStore benchmark: \(contacts) contacts, \(memberships) memberships, file \(path)")
print("RSS before opening: \(megabytes(status("VmRSS")))")
let store = try StateStore(path: path, workspace: "bench")
let fields = (0..<40).map { UInt8($0) }

try measure("saveContact (2 keys + 40 B)", contacts) { index in
    try store.saveContact(id: intercomID(index), keys: keys(index), fields: fields)
}
print("RSS after inserts: \(megabytes(status("VmRSS")))")

var random = SplitMix64(state: 42)
try measure("lookup (contactID + contactFields)", contacts) { _ in
    let index = Int.random(in: 0..<contacts, using: &random)
    let key = keys(index)[index & 1]
    guard let id = try store.contactID(forKey: key), try store.contactFields(contactID: id) == fields else {
        fatalError("contact \(index) not found")
    }
}
try measure("lookup of an unknown key", memberships) { index in
    guard try store.contactID(forKey: "u:missing-\(index)") == nil else { fatalError("unexpected key") }
}

// isMember asks about the pairs setMember made (the same seed), so it measures hits; unknown keys measured misses.
let companies = 1_000
var pairs = SplitMix64(state: 7)
try measure("setMember", memberships) { index in
    let contact = Int.random(in: 0..<contacts, using: &pairs)
    try store.setMember(contactID: intercomID(contact), companyIntercomID: intercomID(index % companies), true)
}
var hits = 0
pairs = SplitMix64(state: 7)
try measure("isMember", memberships) { index in
    let contact = Int.random(in: 0..<contacts, using: &pairs)
    if try store.isMember(contactID: intercomID(contact), companyIntercomID: intercomID(index % companies)) {
        hits += 1
    }
}

let counts = try store.counts()
print("counts: \(counts.contactKeys) keys, \(counts.contacts) contacts, \(counts.memberships) memberships")
print("isMember hits: \(hits) of \(memberships)")
print("file before close: \(fileSize(path) / 1_048_576) MB + WAL \(fileSize(path + "-wal") / 1_048_576) MB")
store.close()
print("file after close: \(fileSize(path) / 1_048_576) MB (\(fileSize(path) / max(1, contacts)) B/contact)")
print("peak RSS (VmHWM): \(megabytes(status("VmHWM")))")
