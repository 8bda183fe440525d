import Foundation

/// The run's counts (contract §7). Every record lands in exactly one of mapped, skipped or
/// rejected, so `records == mappedUsers + mappedEvents + skipped.total + rejected.total` always.
public struct RunReport: Sendable, Equatable {
    public var records = 0
    public var mappedUsers = 0
    public var mappedEvents = 0
    public var skipped = ReasonCounts<SkipReason>()
    public var rejected = ReasonCounts<RejectReason>()
    public var warnings = ReasonCounts<MappingWarning>()
    public var uploadedUsers = 0
    public var uploadedEvents = 0
    /// Mapped items Intercom did not take (after retries, or failed inside a job), by code;
    /// each is also in the rejects file.
    public var failed: [String: Int] = [:]
    public var requests = 0
    public var retries = 0
    public var elapsedSeconds = 0.0
    /// Records skipped on resume because an earlier run had them accepted already.
    public var resumedRecords: Int?
    /// Inputs that could not be read to the end, with the error (the run still processed the rest).
    public var inputErrors: [String] = []
    /// Error-feed items that matched nothing this run sent (or were listed twice): not subtracted from `uploaded`.
    public var unmatchedJobItems = 0
    /// Jobs whose error feeds could not be read: their items are counted uploaded, but the run is
    /// not known to be clean (exit code 1; `status` lists them).
    public var unreadJobFeeds: [String] = []
    /// Of the mapped users, those from group calls (REST mode compares call counts per record type).
    public var mappedGroups = 0
    /// The API the items went through ("1.4" or "2.14"; nil for a bulk dry run).
    public var api: String?
    /// REST mode's calls, by endpoint, and what they saved.
    public var rest: RESTFigures?

    public init() {}

    public var failedTotal: Int { failed.values.reduce(0, +) }

    /// The invariant the report promises; tests and the CLI check it.
    public var addsUp: Bool { records == mappedUsers + mappedEvents + skipped.total + rejected.total }

    public mutating func merge(_ other: RunReport) {
        records += other.records
        mappedUsers += other.mappedUsers
        mappedEvents += other.mappedEvents
        skipped.merge(other.skipped)
        rejected.merge(other.rejected)
        warnings.merge(other.warnings)
        uploadedUsers += other.uploadedUsers
        uploadedEvents += other.uploadedEvents
        for (code, n) in other.failed { failed[code, default: 0] += n }
        requests += other.requests
        retries += other.retries
    }

    /// The JSON report of contract §7.
    public func jsonData() -> Data {
        var object: [String: Any] = [
            "records": records,
            "mapped": ["users": mappedUsers, "events": mappedEvents],
            "skipped": skipped.byCode,
            "rejected": rejected.byCode,
            "warnings": warnings.byCode,
            "uploaded": ["users": uploadedUsers, "events": uploadedEvents],
            "failed": failedTotal,
            "failed_reasons": failed,
            "requests": requests,
            "retries": retries,
            "elapsed_seconds": (elapsedSeconds * 1000).rounded() / 1000,
        ]
        if let resumedRecords { object["resumed_records"] = resumedRecords }
        if !inputErrors.isEmpty { object["input_errors"] = inputErrors }
        if unmatchedJobItems > 0 { object["job_items_unmatched"] = unmatchedJobItems }
        if !unreadJobFeeds.isEmpty { object["unread_job_feeds"] = unreadJobFeeds }
        if let api { object["api"] = api }
        if let rest { object.merge(restObject(rest)) { _, new in new } }
        // Serialising a dozen numbers once per run: Foundation is fine off the hot path.
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
    }

    /// Calls per mapped item, ours and what the peers' schemes make for the same final state
    /// (contract §8.4): 2 per identify plus 2 per company it names, 1 per track plus 1 when
    /// only an email is known, 3 per group; each remembering nothing.
    public var peerCalls: Int? {
        guard let rest else { return nil }
        let identifies = mappedUsers - mappedGroups
        let identifyCompanies = max(0, rest.companiesNamed - mappedGroups)
        return 2 * identifies + 2 * identifyCompanies + mappedEvents + rest.emailOnlyEvents + 3 * mappedGroups
    }

    private func restObject(_ rest: RESTFigures) -> [String: Any] {
        let items = max(1, mappedUsers + mappedEvents)
        func ratio(_ calls: Int) -> Double { (Double(calls) / Double(items) * 1000).rounded() / 1000 }
        var object: [String: Any] = [
            "calls": rest.calls,
            "unchanged": rest.unchanged,
            "merged": rest.merged,
            "events_already_sent": rest.eventsAlreadySent,
            "rate_limited": rest.rateLimited,
            "concurrency_peak": rest.concurrencyPeak,
            "calls_per_item": ratio(requests),
        ]
        if let peerCalls {
            object["peer_calls"] = peerCalls
            object["peer_calls_per_item"] = ratio(peerCalls)
        }
        return object
    }

    /// The short human summary printed on stderr at the end of a run.
    public func humanSummary(dryRun: Bool, rejectsPath: String?) -> String {
        func list(_ counts: [String: Int]) -> String {
            counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines: [String] = []
        let seconds = String(format: "%.1f", elapsedSeconds)
        lines.append(
            "\(records) records in \(seconds) s" + (resumedRecords.map { " (\($0) already done by an earlier run)" } ?? ""))
        lines.append("  mapped:   \(mappedUsers) users, \(mappedEvents) events")
        if dryRun {
            lines.append("  dry run:  \(requests) requests written, nothing uploaded")
        } else {
            lines.append(
                "  uploaded: \(uploadedUsers) users, \(uploadedEvents) events in \(requests) requests (\(retries) retries)")
        }
        if skipped.total > 0 { lines.append("  skipped:  \(skipped.total) (\(list(skipped.byCode)))") }
        if rejected.total > 0 || failedTotal > 0 {
            var line = "  rejected: \(rejected.total)"
            if rejected.total > 0 { line += " (\(list(rejected.byCode)))" }
            if failedTotal > 0 { line += "; failed at Intercom: \(failedTotal) (\(list(failed)))" }
            if let rejectsPath { line += " -> \(rejectsPath)" }
            lines.append(line)
        }
        if let rest {
            let peers = peerCalls.map { ", the peers' schemes \($0)" } ?? ""
            lines.append(
                "  REST:     API \(rest.version), \(requests) calls for \(mappedUsers + mappedEvents) items\(peers); \(rest.unchanged) unchanged, \(rest.merged) merged, \(rest.rateLimited) answered 429"
            )
        }
        if warnings.total > 0 { lines.append("  warnings: \(list(warnings.byCode))") }
        for error in inputErrors { lines.append("  input error: \(error)") }
        if unmatchedJobItems > 0 {
            lines.append(
                "  job feeds: \(unmatchedJobItems) failed items named nothing this run sent (logged; not counted as failed)")
        }
        if !unreadJobFeeds.isEmpty {
            lines.append(
                "  unread:   the error feeds of \(unreadJobFeeds.count) jobs were not read (\(unreadJobFeeds.prefix(3).joined(separator: ", "))\(unreadJobFeeds.count > 3 ? ", ..." : "")): items that failed inside them are not in the rejects file yet; `intercom-backfill status` lists them"
            )
        }
        return lines.joined(separator: "\n")
    }
}
