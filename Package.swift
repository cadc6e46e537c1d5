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
        .library(name: "PolicyPruneKit", targets: ["Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Evaluation", "Pruning"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The one C boundary: loads OpenBLAS at run time after choosing its core type, and oneDNN (optional, int8) on
        // first use (see ppblas.c).
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "Kernels", dependencies: ["CBLAS"], swiftSettings: optimised),
        .target(name: "Checkpoints", dependencies: ["Kernels"], swiftSettings: optimised),
        .target(name: "Tokenization", dependencies: ["Checkpoints"], swiftSettings: optimised),
        .target(name: "Transformer", dependencies: ["Kernels", "Checkpoints", "Tokenization"], swiftSettings: optimised),
        .target(name: "Corpora", dependencies: ["Tokenization"], swiftSettings: optimised),
        .target(name: "Evaluation", dependencies: ["Transformer", "Corpora"], swiftSettings: optimised),
        .target(name: "Pruning", dependencies: ["Transformer", "Corpora", "Evaluation"], swiftSettings: optimised),
        .executableTarget(
            name: "policyprune",
            dependencies: [
                "Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Evaluation", "Pruning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: plain),
        // Test-only helpers: locating ../shared, reading fixtures, tolerance comparisons.
        .target(name: "FixtureSupport", dependencies: ["Corpora"], swiftSettings: plain),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "FixtureSupport"], swiftSettings: plain),
        // Fixtures/ holds the generated dequantisation fixture and the script that made it; tests read it via #filePath.
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "FixtureSupport"], exclude: ["Fixtures"], swiftSettings: plain),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization", "Checkpoints", "FixtureSupport"], swiftSettings: plain),
        // Fixtures/families holds tiny transformers-made models of each family and the script that made them;
        // Fixtures/gemma3 the long-sequence golden values of the real Gemma 3 270M and their script.
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "Tokenization", "FixtureSupport"], exclude: ["Fixtures"], swiftSettings: plain),
        .testTarget(name: "CorporaTests", dependencies: ["Corpora", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "PruningTests", dependencies: ["Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "CLITests", dependencies: ["FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "MetricTests", dependencies: ["Pruning", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "ExportTests", dependencies: ["Checkpoints", "Tokenization", "Transformer", "Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "ZeroShotModelTests", dependencies: ["Evaluation", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
        // Issue 16: seeded mutation of every input format, in-process and through the built binary.
        .testTarget(name: "FuzzTests", dependencies: ["Kernels", "Checkpoints", "Tokenization", "Transformer", "Corpora", "Pruning", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "Int8Tests", dependencies: ["Kernels", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
        .testTarget(name: "PruneRunTests", dependencies: ["Pruning", "Transformer", "Checkpoints", "Tokenization", "Corpora", "FixtureSupport"], swiftSettings: plain),
    ]
)
