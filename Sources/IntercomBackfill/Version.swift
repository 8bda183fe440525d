/// The tool's name and version, as sent in `User-Agent` and shown by `--version`.
public enum ToolInfo {
    public static let name = "intercom-backfill"
    public static let version = "0.1.0"
    public static var userAgent: String { "\(name)/\(version)" }

    /// What `--version` prints: the version, then the Intercom APIs this build speaks.
    public static var versionDescription: String {
        """
        \(name) \(version)
        Intercom API: 1.4 (bulk: --api-version 1.4, and auto first); 2.13 and later (REST: --api-version 2.N, and auto when a workspace has no bulk API; 2.14 by default)
        """
    }
}
