/// The Intercom data-hosting regions and their API hosts (contract §1).
public enum IntercomRegion: String, Sendable, CaseIterable {
    case us
    case eu
    case au

    public var baseURL: String {
        switch self {
        case .us: return "https://api.intercom.io"
        case .eu: return "https://api.eu.intercom.io"
        case .au: return "https://api.au.intercom.io"
        }
    }
}

/// Which Intercom API a run speaks (contract §8.1): the 1.4 bulk API, a 2.x REST version, or
/// `auto` (start with bulk, and go on in REST mode when the workspace has no bulk API).
public enum IntercomAPIVersion: Sendable, Equatable, CustomStringConvertible {
    case auto
    case bulk
    /// `2.minor`, minor 13 or later.
    case rest(minor: Int)

    /// The oldest 2.x version REST mode supports, and the one used when none is named.
    public static let oldestRESTMinor = 13
    public static let defaultRESTMinor = 14

    /// Parses `auto`, `1.4` or `2.N` (N >= 13); nil for anything else.
    public init?(_ text: String) {
        switch text.lowercased() {
        case "auto": self = .auto
        case "1.4": self = .bulk
        default:
            guard text.hasPrefix("2."), let minor = Int(text.dropFirst(2)), minor >= Self.oldestRESTMinor,
                text.dropFirst(2).allSatisfy({ $0.isASCII && $0.isNumber })
            else { return nil }
            self = .rest(minor: minor)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .bulk: return "1.4"
        case .rest(let minor): return "2.\(minor)"
        }
    }
}
