import ArgumentParser
import IntercomBackfill
import Logging

// The typed values of the command-line options: `--help` lists them and shell completions offer them.

extension IntercomRegion: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
}

/// `--api-version auto|1.4|2.N` (contract §8.1). Open-ended (any 2.N from 2.13), so completion
/// offers the usual values and the help names the form.
extension IntercomAPIVersion: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
    public static var defaultCompletionKind: CompletionKind { .list(["auto", "1.4", "2.\(defaultRESTMinor)"]) }
}

/// `--log-level`: swift-log's levels, by name.
enum LogLevelOption: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical

    init?(argument: String) { self.init(rawValue: argument.lowercased()) }

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// `--log-format`: human text, or one JSON object a line (for cron jobs and log shippers).
enum LogFormat: String, CaseIterable, ExpressibleByArgument {
    case text, json
}
