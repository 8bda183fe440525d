// swift-tools-version:6.1
// Benchmarks of the parse/map hot path, kept in their own package (as swift-nio and swift-log
// keep theirs) so that neither the benchmark dependency nor its malloc interposer touches the
// main package's build or `swift test`. Run from this folder: `swift package benchmark`.
import PackageDescription

let package = Package(
    name: "intercom-backfill-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The name pins the identity, which would otherwise be the checkout folder's name.
        .package(name: "intercom-backfill", path: ".."),
        // Only the MallocInterposer trait: the default traits also pull in a runtime interposer
        // that does not resolve here, and the malloc counts are what these benchmarks need.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        // Read directly for the mallocs-per-record metric (the same interposer the benchmark counts with).
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "HotPath",
            dependencies: [
                .product(name: "IntercomBackfill", package: "intercom-backfill"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Benchmarks/HotPath",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        // REST mode's SQLite state store: saves and lookups per second with a million contacts.
        .executableTarget(
            name: "StateStoreBench",
            dependencies: [.product(name: "IntercomBackfill", package: "intercom-backfill")],
            path: "Sources/StateStoreBench"
        ),
        // One stage of the hot path over a file, for perf and callgrind (no benchmark harness).
        .executableTarget(
            name: "HotPathProfile",
            dependencies: [.product(name: "IntercomBackfill", package: "intercom-backfill")],
            path: "Sources/HotPathProfile"
        ),
    ]
)
