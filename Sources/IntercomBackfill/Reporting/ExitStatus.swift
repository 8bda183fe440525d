/// The documented exit codes, decided in one place from how a run ended.
public enum ExitStatus: Equatable, Sendable {
    /// Done, nothing rejected or failed.
    case clean
    /// Done, but some records were rejected or failed, or job error feeds are unread.
    case incomplete
    /// A usage or configuration error (bad option, missing path, no credentials).
    case usage
    /// Fatal: a damaged or unreadable input, refused credentials, a full disk, a held state folder.
    case fatal
    /// Stopped by SIGINT or SIGTERM, the state kept.
    case stopped(signal: Int32)

    public var code: Int32 {
        switch self {
        case .clean: 0
        case .incomplete: 1
        case .usage: 2
        case .fatal: 3
        case .stopped(let signal): 128 + signal
        }
    }

    /// How a run that produced `report` ended.
    public init(report: RunReport, stoppedBy signal: Int32?, failed: Bool = false) {
        if failed {
            self = .fatal
        } else if let signal {
            self = .stopped(signal: signal)
        } else if !report.inputErrors.isEmpty {
            self = .fatal
        } else if report.rejected.total > 0 || report.failedTotal > 0 || !report.unreadJobFeeds.isEmpty {
            self = .incomplete
        } else {
            self = .clean
        }
    }
}
