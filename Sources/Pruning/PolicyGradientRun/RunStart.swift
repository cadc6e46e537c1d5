import Checkpoints
import Corpora
import Essentials
import Foundation
import Transformer

/// How the starting scores of a run are made when no scores file is given (`prune --init`).
public enum InitMethod: String, CaseIterable, Sendable {
    case random, uniform
    case wandaSP = "wanda-sp"
    case magnitude, flap
    case blockInfluence = "block-influence"
    case perplexityDrop = "ppl-drop"

    /// The metric behind a metric init (nil for `random` and `uniform`).
    public var metric: PruningMetric? {
        switch self {
        case .random, .uniform: return nil
        case .wandaSP: return .wandaSP
        case .magnitude: return .magnitude
        case .flap: return .flap
        case .blockInfluence: return .blockInfluence
        case .perplexityDrop: return .perplexityDrop
        }
    }

    /// Whether this init can start a run of `granularity`.
    public func supports(_ granularity: PruningGranularity) -> Bool {
        guard let metric else { return true }
        switch granularity {
        case .channels, .heads, .layers, .queryHeads: return metric.granularities.contains(granularity)
        case .sublayers: return false
        }
    }

    /// The default per granularity: wanda-sp (the scripts' init) for channels and heads, ShortGPT block
    /// influence for layers, random (the paper's random init) for sublayers, which no metric scores.
    public static func defaultInit(for granularity: PruningGranularity) -> InitMethod {
        switch granularity {
        case .channels, .heads, .queryHeads: return .wandaSP
        case .layers: return .blockInfluence
        case .sublayers: return .random
        }
    }
}

/// The metric-to-score mapping of a run's start, by its name in `options.json` (`--mapping`).
public enum InitMapping: String, CaseIterable, Sendable {
    case sigmap, norm, hybrid, const, plan

    /// The `ScoreMapping` it names: `const` takes c, `plan` its temperature.
    public func scoreMapping(temperature: Double, constant: Double) -> ScoreMapping {
        switch self {
        case .sigmap: return .sigmap
        case .norm: return .norm
        case .hybrid: return .hybrid
        case .const: return .constant(constant)
        case .plan: return .planCentred(temperature: temperature)
        }
    }
}

/// Where a new run starts: the recipe of its initial keep probabilities, as a value. `make` computes them (for a
/// metric init: calibration sample, metric scores, mapping) and the `Initialization` record `options.json` keeps.
public struct RunInitialization: Sendable {
    /// The init when no scores file is given.
    public var method: InitMethod
    /// The mapping of a metric or random init, or of a re-mapped scores file.
    public var mapping: InitMapping
    /// Temperature of the `plan` mapping (fraction of a layer's structures).
    public var temperature: Double
    /// c of the `const` mapping.
    public var constant: Double
    /// μ per kind: mean of the mapped scores and keep ratio of the init mask.
    public var keepRatios: KeepRatios
    /// Calibration windows and tokens per window of a metric init, and the seed of their sample.
    public var calibrationWindows: Int
    public var calibrationLength: Int
    public var calibrationSeed: UInt64
    /// Wanda-sp's statistics order.
    public var wandaVariant: WandaSP.Variant
    /// The run seed (random init: seed + 1; metric init: the metric's seed).
    public var seed: UInt64
    /// A saved `ScoresFile` to start from instead of `method`.
    public var scoresFile: String?
    /// With `scoresFile`: re-map the saved scores (their order within each layer) through `mapping` instead of using
    /// them as they are.
    public var remapsScoresFile: Bool

    /// A recipe; every field as named above.
    public init(method: InitMethod, mapping: InitMapping, temperature: Double, constant: Double, keepRatios: KeepRatios,
                calibrationWindows: Int, calibrationLength: Int, calibrationSeed: UInt64, wandaVariant: WandaSP.Variant,
                seed: UInt64, scoresFile: String? = nil, remapsScoresFile: Bool = false) {
        self.method = method
        self.mapping = mapping
        self.temperature = temperature
        self.constant = constant
        self.keepRatios = keepRatios
        self.calibrationWindows = calibrationWindows
        self.calibrationLength = calibrationLength
        self.calibrationSeed = calibrationSeed
        self.wandaVariant = wandaVariant
        self.seed = seed
        self.scoresFile = scoresFile
        self.remapsScoresFile = remapsScoresFile
    }

    /// The metric this recipe runs (nil for a scores file, `random` and `uniform`).
    public var metric: PruningMetric? { scoresFile == nil ? method.metric : nil }

    /// The starting keep probabilities of a run of `granularity` on `model` (whose fingerprint is `modelSHA256`),
    /// and their record. `encode` tokenizes calibration documents with the model's BOS rule; `warn` receives
    /// notes (a scores file saved for another model); `progress` gets (layers done, layers) of a metric.
    public func make(model: LanguageModel, modelSHA256: String, granularity: PruningGranularity, dataRoot: URL,
                     encode: (String) throws -> [Int], warn: (String) -> Void = { _ in },
                     progress: @escaping (Int, Int) -> Void = { _, _ in })
        throws -> (KeepProbabilities, PolicyGradientRunOptions.Initialization) {
        let scoreMapping = mapping.scoreMapping(temperature: temperature, constant: constant)
        let mu = keepRatios.mlp
        if let scoresFile {
            let file = try ScoresFile.read(URL(fileURLWithPath: scoresFile), config: model.config, granularity: granularity)
            if file.modelSHA256 != modelSHA256 {
                warn("warning: \(scoresFile) was saved for model sha256 \(file.modelSHA256.prefix(16))…, this model is \(modelSHA256.prefix(16))…")
            }
            let fileSHA256: String
            do { fileSHA256 = try ModelFingerprint.fileSHA256(scoresFile) } catch let failure as ModelFingerprint.Failure {
                throw RunError.unreadable(path: scoresFile, reason: failure.reason)
            }
            var record = PolicyGradientRunOptions.Initialization(
                method: "scores-file", mapping: remapsScoresFile ? mapping.rawValue : "none", constant: constant, keepRatio: mu,
                scoresFile: scoresFile, scoresFileSHA256: fileSHA256)
            guard remapsScoresFile else { return (file.keepProbabilities, record) }
            // The saved scores act as the metric: only their order within each layer matters to the rank-based plan
            // mapping (and sigmap/norm see them as values).
            if mapping == .plan { record.details["temperature"] = "\(temperature)" }
            let k = file.keepProbabilities
            return (granularity.initialScores(attention: k.attention, mlp: k.mlp, mapping: scoreMapping, keepRatios: keepRatios), record)
        }
        var record = PolicyGradientRunOptions.Initialization(method: method.rawValue, mapping: mapping.rawValue,
                                                             constant: constant, keepRatio: mu)
        if keepRatios.attention != keepRatios.mlp { record.details["attention_keep_ratio"] = "\(keepRatios.attention)" }
        if mapping == .plan { record.details["temperature"] = "\(temperature)" }
        guard let metric = method.metric else {
            if method == .uniform {
                record.mapping = "none"
                var uniform = KeepProbabilities.uniform(model.config, value: mu, granularity: granularity)
                uniform.attention = uniform.attention.map { $0.map { _ in keepRatios.attention } }
                return (uniform, record)
            }
            return (InitialScores.random(config: model.config, mapping: scoreMapping, keepRatios: keepRatios, seed: seed &+ 1,
                                         granularity: granularity), record)
        }
        func initRate(_ keep: Double) -> Double { 1 - keep >= 1 ? 0.999 : max(1 - keep, 0) }
        let options = MetricPruningOptions(metric: metric, rate: max(initRate(mu), granularity.prunesBothKinds ? 0 : 1e-9),
                                           granularity: granularity, scope: .global,
                                           seed: seed, wandaVariant: wandaVariant, batchSize: 8,
                                           attentionRate: granularity.prunesBothKinds ? initRate(keepRatios.attention) : nil)
        var calibration: CalibrationData? = nil
        if metric.needsCalibration {
            let sample = try CalibrationData.c4Train(dataRoot: dataRoot, count: calibrationWindows, length: calibrationLength,
                                                     seed: calibrationSeed, encode: encode)
            record.details["calibration"] = sample.recipe
            record.details["calibration_sha256"] = sample.sha256
            if metric == .wandaSP { record.details["wanda_variant"] = wandaVariant.rawValue }
            calibration = sample
        }
        let scores = try MetricPruning.scores(model: model, options: options, calibration: calibration, progress: progress)
        let config = model.config
        let attention: [[Double]], mlp: [[Double]]
        switch granularity {
        case .channels, .queryHeads: (attention, mlp) = (scores.attention, scores.mlp)
        case .heads: (attention, mlp) = (scores.attention, scores.attention.map { _ in [] })
        case .layers, .sublayers:
            attention = config.layers.indices.map { l in
                granularity.scoreCount(.attention, layer: l, config: config) == 1 ? [scores.layers[l]] : []
            }
            mlp = config.layers.indices.map { _ in [] }
        }
        return (granularity.initialScores(attention: attention, mlp: mlp, mapping: scoreMapping, keepRatios: keepRatios), record)
    }
}

extension RunData {
    /// The data a resume must rebuild: `c4` with the sequence length and held-out window count `options` recorded.
    /// `PolicyGradientRun.open` then checks the ids against the recorded sha256.
    public static func c4(dataRoot: URL, recordedIn options: PolicyGradientRunOptions, encode: (String) throws -> [Int]) throws
        -> (data: RunData, calibration: PolicyGradientRunOptions.DataRecord, heldout: PolicyGradientRunOptions.DataRecord) {
        try c4(dataRoot: dataRoot, sequenceLength: options.sequenceLength, heldoutWindows: options.heldout.blocks, encode: encode)
    }
}

extension ScoresFile {
    /// A scores file from a metric's scores (`score --save-scores`): each layer's scores as rank quantiles, values in
    /// (0, 1) as a scores file holds, with the order — all that `--mapping plan` reads — unchanged.
    public init(rankingsOf scores: StructureScores, modelSHA256: String) {
        self.init(modelSHA256: modelSHA256, step: 0,
                  keepProbabilities: KeepProbabilities(attention: scores.attention.map(rankQuantiles), mlp: scores.mlp.map(rankQuantiles)))
    }
}
