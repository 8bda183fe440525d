import Foundation

/// How we authenticate to Intercom (contract §1). Secrets come from the environment or a file,
/// never from argv, and never appear in a description, log, checkpoint, reject or report.
public struct IntercomCredentials: Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        case bearer(String)
        case basic(appID: String, apiKey: String)
    }

    let kind: Kind

    public static func bearer(_ token: String) -> IntercomCredentials { IntercomCredentials(kind: .bearer(token)) }
    public static func basic(appID: String, apiKey: String) -> IntercomCredentials {
        IntercomCredentials(kind: .basic(appID: appID, apiKey: apiKey))
    }

    /// The `Authorization` header value.
    public var authorizationHeader: String {
        switch kind {
        case .bearer(let token): return "Bearer \(token)"
        case .basic(let appID, let apiKey): return "Basic \(Data("\(appID):\(apiKey)".utf8).base64EncodedString())"
        }
    }

    /// Never the secret itself.
    public var description: String {
        switch kind {
        case .bearer: return "an access token"
        case .basic(let appID, _): return "app id \(appID) with its API key"
        }
    }

    /// Where the credentials came from is told to the user only by name.
    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads, in order: `--token-file`, `INTERCOM_ACCESS_TOKEN`, then `INTERCOM_APP_ID` with `INTERCOM_API_KEY`.
    public static func resolve(tokenFile: String?, environment: [String: String]) throws -> IntercomCredentials {
        if let tokenFile {
            let text: String
            do {
                text = try String(contentsOfFile: tokenFile, encoding: .utf8)
            } catch {
                throw Missing(description: "cannot read the token file \(tokenFile): \(error.localizedDescription)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw Missing(description: "the token file \(tokenFile) is empty") }
            return .bearer(token)
        }
        if let token = environment["INTERCOM_ACCESS_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
            return .bearer(token)
        }
        if let appID = environment["INTERCOM_APP_ID"], let apiKey = environment["INTERCOM_API_KEY"], !appID.isEmpty,
            !apiKey.isEmpty
        {
            return .basic(appID: appID, apiKey: apiKey)
        }
        throw Missing(
            description: """
                no Intercom credentials: set INTERCOM_ACCESS_TOKEN (or INTERCOM_APP_ID and INTERCOM_API_KEY), \
                or pass --token-file PATH; tokens are never taken from the command line. Use --dry-run to run without one.
                """)
    }
}

/// Where requests go: `https://api.intercom.io` by default, a region's host, or `--endpoint`.
public struct IntercomEndpoint: Sendable, Equatable, CustomStringConvertible {
    public let baseURL: String

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public static func region(_ region: IntercomRegion) -> IntercomEndpoint {
        IntercomEndpoint(baseURL: region.baseURL)
    }

    /// A region by name (`us`, `eu`, `au`, any case).
    public static func region(_ name: String) throws -> IntercomEndpoint {
        guard let region = IntercomRegion(rawValue: name.lowercased()) else {
            throw Invalid(description: "--region must be us, eu or au; got '\(name)'")
        }
        return .region(region)
    }

    /// An explicit URL: `https://` anywhere, plain `http://` only on loopback (a sandbox, a local proxy).
    public init(url: String) throws {
        var text = url
        while text.hasSuffix("/") { text.removeLast() }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let host = components.host, !host.isEmpty
        else { throw Invalid(description: "the endpoint '\(url)' is not a URL such as https://api.intercom.io") }
        switch scheme {
        case "https": break
        case "http":
            guard Self.isLoopback(host) else {
                throw Invalid(
                    description:
                        "plain http:// is only allowed for loopback hosts (127.0.0.1, localhost, ::1); use https:// for \(host)")
            }
        default:
            throw Invalid(description: "the endpoint must start with https:// (or http:// on loopback); got '\(url)'")
        }
        baseURL = text
    }

    private init(baseURL: String) { self.baseURL = baseURL }

    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }

    public var description: String { baseURL }
}
