import Checkpoints
import Corpora
import Essentials
import Foundation
import Kernels

/// Initial keep probabilities (spec §3): from a metric through a score mapping, from seeded normal draws
/// (`random`, spec §3.4), all at μ (`uniform`), or from a saved scores file.
public enum InitialScores {
    /// Maps per-structure importances (higher = keep) to keep probabilities with mean μ, per layer and kind
    /// (spec §3.2). The per-layer init mask (top-μ fraction, ties kept) feeds only the `constant` mapping.
    public static func fromMetric(_ attention: [[Double]], _ mlp: [[Double]], mapping: ScoreMapping,
                                  keepRatio mu: Double) -> KeepProbabilities {
        fromMetric(attention, mlp, mapping: mapping, keepRatios: KeepRatios(both: mu))
    }

    /// `fromMetric(_:_:mapping:keepRatio:)` with one μ per kind.
    public static func fromMetric(_ attention: [[Double]], _ mlp: [[Double]], mapping: ScoreMapping,
                                  keepRatios: KeepRatios) -> KeepProbabilities {
        func map(_ vectors: [[Double]], _ kind: StructureKind) -> [[Double]] {
            let mu = keepRatios[kind]
            return vectors.map { metric in
                mapping.keepProbabilities(metric: metric, kind: kind, mean: mu, initMask: initMask(metric: metric, keepRatio: mu))
            }
        }
        return KeepProbabilities(attention: map(attention, .attention), mlp: map(mlp, .mlp))
    }

    /// The code's `random` init (spec §3.4): standard-normal draws (Box–Muller on `Xoshiro256(seed)`, layer 0
    /// attention, layer 0 MLP, layer 1 attention, ...), one per score of `granularity`, mapped like a metric.
    public static func random(config: ModelConfig, mapping: ScoreMapping, keepRatio mu: Double, seed: UInt64,
                              granularity: PruningGranularity = .channels) -> KeepProbabilities {
        random(config: config, mapping: mapping, keepRatios: KeepRatios(both: mu), seed: seed, granularity: granularity)
    }

    /// `random(config:mapping:keepRatio:seed:granularity:)` with one μ per kind.
    public static func random(config: ModelConfig, mapping: ScoreMapping, keepRatios: KeepRatios, seed: UInt64,
                              granularity: PruningGranularity = .channels) -> KeepProbabilities {
        var rng = Xoshiro256(seed: seed)
        func normal() -> Double {
            // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1].
            let u = 1 - rng.nextUnitDouble(), v = rng.nextUnitDouble()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }
        var attention: [[Double]] = [], mlp: [[Double]] = []
        for l in config.layers.indices {
            attention.append((0..<granularity.scoreCount(.attention, layer: l, config: config)).map { _ in normal() })
            mlp.append((0..<granularity.scoreCount(.mlp, layer: l, config: config)).map { _ in normal() })
        }
        return granularity.initialScores(attention: attention, mlp: mlp, mapping: mapping, keepRatios: keepRatios)
    }
}

/// A saved set of keep probabilities (`scores.json`, `initial-scores.json` of a run): usable as `--init-scores`.
public struct ScoresFile: Codable, Sendable, Equatable {
    /// The format version this tool writes and reads.
    public static let currentFormatVersion = 1
    /// Format version.
    public var formatVersion: Int
    /// sha256 of the model the scores belong to.
    public var modelSHA256: String
    /// Valid steps taken when the scores were saved.
    public var step: Int
    /// The keep probabilities.
    public var keepProbabilities: KeepProbabilities

    /// A scores file for `keepProbabilities` of model `modelSHA256` after `step` valid steps.
    public init(modelSHA256: String, step: Int, keepProbabilities: KeepProbabilities) {
        formatVersion = Self.currentFormatVersion
        self.modelSHA256 = modelSHA256
        self.step = step
        self.keepProbabilities = keepProbabilities
    }

    /// Pretty JSON with sorted keys (byte-stable: the same scores always give the same bytes).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads a scores file and checks it against `config` under `granularity` (layer count, lengths, finite values
    /// in [0, 1]).
    public static func read(_ url: URL, config: ModelConfig, granularity: PruningGranularity = .channels) throws -> ScoresFile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw RunError.unreadable(path: url.path, reason: "\(error.localizedDescription)")
        }
        let file: ScoresFile
        do { file = try JSONDecoder().decode(ScoresFile.self, from: data) } catch {
            throw RunError.unreadable(path: url.path, reason: "not a scores file: \(error)")
        }
        guard file.formatVersion == currentFormatVersion else {
            throw RunError.unreadable(path: url.path, reason: "format version \(file.formatVersion), this tool reads \(currentFormatVersion)")
        }
        do {
            try file.keepProbabilities.validate(against: config, granularity: granularity)
        } catch {
            throw RunError.unreadable(path: url.path, reason: "does not fit the model at granularity \(granularity.rawValue): \(error)")
        }
        for kind in StructureKind.allCases {
            if let bad = file.keepProbabilities[kind].joined().first(where: { $0 < 0 || $0 > 1 }) {
                throw RunError.unreadable(path: url.path, reason: "\(kind.rawValue) keep probability \(bad) outside [0, 1]")
            }
        }
        return file
    }
}
