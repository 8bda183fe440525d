// swift-tools-version:6.2
import PackageDescription

/// Warnings are errors in this package's own targets (SwiftPM ignores warning settings of
/// dependencies, so a warning in one of theirs cannot break the build).
let strictWarnings: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "intercom-backfill",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "intercom-backfill", targets: ["intercom-backfill"]),
        .library(name: "IntercomBackfill", targets: ["IntercomBackfill"]),
        .library(name: "IntercomSandbox", targets: ["IntercomSandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // System zlib: gzip inflate on the input path (apt: zlib1g-dev, pkg-config: zlib).
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        // System SQLite: REST mode's state store (apt: libsqlite3-dev, pkg-config: sqlite3).
        // Chosen over GRDB and sqlite-nio for build time: a system library adds nothing to
        // compile, and the store needs a dozen prepared statements, not an ORM or an event loop.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // The C library's malloc settings (glibc's arena cap), for the command line's process.
        .systemLibrary(name: "CMalloc"),
        // The pipeline: input -> JSON -> mapping -> upload -> checkpoint -> reporting.
        .target(
            name: "IntercomBackfill",
            dependencies: [
                "CZlib",
                "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictWarnings
        ),
        // An Intercom-compatible bulk API server for tests, demos and --sandbox runs.
        .target(
            name: "IntercomSandbox",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictWarnings
        ),
        // The command line: a thin layer over the two libraries.
        .executableTarget(
            name: "intercom-backfill",
            dependencies: [
                "CMalloc",
                "IntercomBackfill",
                "IntercomSandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictWarnings
        ),
        .testTarget(
            name: "IntercomBackfillTests",
            dependencies: ["IntercomBackfill", .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: strictWarnings
        ),
        .testTarget(
            name: "IntercomSandboxTests",
            dependencies: [
                "IntercomSandbox",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // The Python scripts SDKTests runs with Intercom's own SDKs.
            exclude: ["SDK"],
            swiftSettings: strictWarnings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "IntercomBackfill",
                "IntercomSandbox",
                "intercom-backfill",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // The independent model of the final workspace state the REST tests compare with.
            exclude: ["Support/expected_state.py"],
            swiftSettings: strictWarnings
        ),
    ]
)
