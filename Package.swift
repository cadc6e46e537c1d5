// swift-tools-version:6.0
import PackageDescription

/// Release builds vectorise the element-wise kernels for the machine class we run on (x86-64 with AVX2/FMA: the "haswell" baseline);
/// without a target CPU, SIMD FMAs become library calls.
let optimised: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"], .when(platforms: [.linux])),
    .swiftLanguageMode(.v5),
]
let plain: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "PolicyPrune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "policyprune", targets: ["policyprune"]),
        .library(name: "PolicyPruneKit", targets: ["Essentials", "Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Evaluation", "Pruning"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 only (Essentials): 6.6-7.8x our former pure-Swift digest (BENCHMARKS.md).
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
    ],
    targets: [
        // What every layer needs and no layer owns: SHA-256 and the one model fingerprint, atomic file writes, JSON
        // reading and writing, seeded generators, mapped files, gzip. Depends on no module of ours; its digest is
        // swift-crypto's.
        .target(name: "Essentials", dependencies: [.product(name: "Crypto", package: "swift-crypto")], swiftSettings: optimised),
        // The one C boundary: loads OpenBLAS at run time after choosing its core type, and oneDNN (optional, int8) on
        // first use (see ppblas.c).
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "Kernels", dependencies: ["CBLAS"], swiftSettings: optimised),
        .target(name: "Checkpoints", dependencies: ["Essentials", "Kernels"], swiftSettings: optimised),
        .target(name: "Tokenization", dependencies: ["Essentials", "Checkpoints"], swiftSettings: optimised),
        .target(name: "Transformer", dependencies: ["Essentials", "Kernels", "Checkpoints", "Tokenization"], swiftSettings: optimised),
        .target(name: "Corpora", dependencies: ["Essentials", "Tokenization"], swiftSettings: optimised),
        .target(name: "Evaluation", dependencies: ["Transformer", "Corpora"], swiftSettings: optimised),
        .target(name: "Pruning", dependencies: ["Essentials", "Transformer", "Corpora", "Evaluation"], swiftSettings: optimised),
        .executableTarget(
            name: "policyprune",
            dependencies: [
                "Essentials", "Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Evaluation", "Pruning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: plain),
        // Test-only helpers: locating ../shared, reading fixtures, tolerance comparisons.
        .target(name: "FixtureSupport", dependencies: ["Essentials", "Corpora"], swiftSettings: plain),
        .testTarget(name: "KernelsTests", dependencies: ["Essentials", "Kernels", "FixtureSupport"], swiftSettings: plain),
        // Fixtures/ holds the generated dequantisation fixture and the script that made it; tests read it via #filePath.
        .testTarget(name: "CheckpointsTests", dependencies: ["Essentials", "Checkpoints", "FixtureSupport"], exclude: ["Fixtures"], swiftSettings: plain),
        .testTarget(name: "TokenizationTests", dependencies: ["Essentials", "Tokenization", "Checkpoints", "FixtureSupport"], swiftSettings: plain),
        // Fixtures/families holds tiny transformers-made models of each family and the script that made them;
        // Fixtures/gemma3 the long-sequence golden values of the real Gemma 3 270M and their script.
        .testTarget(name: "TransformerTests", dependencies: ["Essentials", "Transformer", "Tokenization", "FixtureSupport"], exclude: ["Fixtures"], swiftSettings: plain),
        .testTarget(name: "CorporaTests", dependencies: ["Essentials", "Corpora", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "EvaluationTests", dependencies: ["Essentials", "Evaluation", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "PruningTests", dependencies: ["Essentials", "Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "CLITests", dependencies: ["Essentials", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "MetricTests", dependencies: ["Essentials", "Pruning", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "ExportTests", dependencies: ["Essentials", "Checkpoints", "Tokenization", "Transformer", "Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "ZeroShotModelTests", dependencies: ["Essentials", "Evaluation", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
        // Issue 16: seeded mutation of every input format, in-process and through the built binary.
        .testTarget(name: "FuzzTests", dependencies: ["Essentials", "Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "Int8Tests", dependencies: ["Essentials", "Kernels", "Transformer", "Checkpoints", "Tokenization", "Corpora", "Evaluation", "FixtureSupport"], exclude: ["Fixtures"], swiftSettings: plain),
        .testTarget(name: "PruneRunTests", dependencies: ["Essentials", "Pruning", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
    ]
)
