/// The tool's name and version, as sent in `User-Agent` and shown by `--version`.
public enum ToolInfo {
    public static let name = "intercom-backfill"
    public static let version = "0.1.0"
    public static var userAgent: String { "\(name)/\(version)" }
}
