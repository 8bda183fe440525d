/// The tool's name and version, as sent in `User-Agent` and shown by `--version`.
public enum ToolInfo {
    public static let name = "intercom-backfill"
    public static let version = "0.1.0"
    public static var userAgent: String { "\(name)/\(version)" }

    /// What `--version` prints: the version, then the Intercom APIs this build speaks.
    public static var versionDescription: String {
        """
        \(name) \(version)
        Intercom API: 1.4 (bulk; what --api-version auto and 1.4 use); 2.x REST (--api-version 2.N): coming
        """
    }
}
