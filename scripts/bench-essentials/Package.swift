// swift-tools-version:6.0
// The measurement behind Essentials' choices (BENCHMARKS.md "Essentials: SHA-256 and gzip"): swift-crypto's SHA-256
// against the pure-Swift digest it replaced, and Essentials' gzip (the same source files, linked) against system
// zlib. Not part of the PolicyPrune package; needs zlib1g-dev. Run: scripts/bench-essentials/run.sh
import PackageDescription

let package = Package(
    name: "bench-essentials",
    dependencies: [.package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0")],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .executableTarget(
            name: "Bench", dependencies: ["CZlib", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"]), .swiftLanguageMode(.v5)]),
    ])
