import Checkpoints
import Essentials
import Transformer

/// The options of a metric-based plan (`policyprune score`): which metric, what to remove and how much.
public struct MetricPruningOptions: Sendable, Equatable {
    /// The metric.
    public var metric: PruningMetric
    /// Pruning rate in [0, 1) of the MLP channels, and of the KV groups unless `attentionRate` is set (`.channels`);
    /// of whole layers' parameters (`.layers`); of KV groups (`.heads`).
    public var rate: Double
    /// Pruning rate of the KV groups when it differs from `rate` (`.channels` only); nil: `rate`.
    public var attentionRate: Double?
    /// Keep ratios per kind (`.channels`).
    public var keepRatios: KeepRatios { KeepRatios(attention: 1 - (attentionRate ?? rate), mlp: 1 - rate) }
    /// What is removed.
    public var granularity: PruningGranularity
    /// Global or per-layer thresholds (ignored for `.layers`).
    public var scope: BudgetScope
    /// Seed of the random metric (and recorded in the plan).
    public var seed: UInt64
    /// Norm of the magnitude metric.
    public var magnitudeNorm: MagnitudeNorm
    /// Wanda-sp statistics order; `.initMask` (the official code) masks layers < l at keep ratio 1 − rate.
    public var wandaVariant: WandaSP.Variant
    /// Calibration windows per forward pass.
    public var batchSize: Int
    /// Every layer keeps a multiple of this many MLP channels (`StructureMask.aligningMLPChannels`; 1: off).
    public var channelMultiple: Int = 1

    /// Options with the defaults of `policyprune score` (channels, global, seed 0, L2, official Wanda-sp order).
    public init(metric: PruningMetric, rate: Double, granularity: PruningGranularity = .channels, scope: BudgetScope = .global,
                seed: UInt64 = 0, magnitudeNorm: MagnitudeNorm = .l2, wandaVariant: WandaSP.Variant = .initMask, batchSize: Int = 8,
                attentionRate: Double? = nil) {
        self.metric = metric
        self.rate = rate
        self.attentionRate = attentionRate
        self.granularity = granularity
        self.scope = scope
        self.seed = seed
        self.magnitudeNorm = magnitudeNorm
        self.wandaVariant = wandaVariant
        self.batchSize = batchSize
    }

    /// Checks the rate, the scope and that the metric scores the granularity.
    public func validate() throws {
        if let attentionRate {
            guard granularity.prunesBothKinds else {
                throw PruningError.invalidValue(key: "attention-rate", value: "\(attentionRate)",
                                                reason: "separate rates per kind need granularity channels or query-heads")
            }
            try StructureScores.checkRates(keepRatios)
        } else {
            try StructureScores.checkRate(rate)
        }
        guard metric.granularities.contains(granularity) else {
            throw PruningError.invalidValue(key: "granularity", value: granularity.rawValue,
                                            reason: "metric \(metric.rawValue) scores only \(metric.granularities.map(\.rawValue).joined(separator: ", "))")
        }
        guard scope != .joint else {
            throw PruningError.invalidValue(key: "scope", value: scope.rawValue, reason: "metric plans use global or per_layer")
        }
        guard batchSize >= 1 else { throw PruningError.invalidValue(key: "batch", value: "\(batchSize)", reason: "must be ≥ 1") }
        guard channelMultiple >= 1 else {
            throw PruningError.invalidValue(key: "channel-multiple", value: "\(channelMultiple)", reason: "must be ≥ 1")
        }
    }

    /// The options as recorded in the plan.
    public var record: [String: PlanValue] {
        var r: [String: PlanValue] = [
            "metric": .string(metric.rawValue), "granularity": .string(granularity.rawValue),
            "scope": .string(granularity == .layers ? "global" : scope.rawValue),
        ]
        if let attentionRate {
            r["attention_rate"] = .number(attentionRate)
            r["mlp_rate"] = .number(rate)
        }
        if channelMultiple > 1 { r["channel_multiple"] = .integer(channelMultiple) }
        switch metric {
        case .magnitude: r["norm"] = .string(magnitudeNorm.rawValue)
        case .wandaSP: r["wanda_variant"] = .string(wandaVariant.rawValue)
        default: break
        }
        return r
    }
}

/// Metric-based pruning: scores from a metric, a hard mask at the requested rate, and the plan.
public enum MetricPruning {
    /// The metric's scores on `model` (calibration windows are needed unless the metric is data-free).
    /// - Parameter progress: (done, total) in the metric's own units (layers or windows).
    public static func scores(model: LanguageModel, options: MetricPruningOptions, calibration: CalibrationData?,
                              progress: ((Int, Int) -> Void)? = nil) throws -> StructureScores {
        try options.validate()
        let windows = calibration?.windows ?? []
        if options.metric.needsCalibration && windows.isEmpty {
            throw PruningError.invalidValue(key: "calibration", value: "none", reason: "metric \(options.metric.rawValue) needs calibration windows")
        }
        switch options.metric {
        case .wandaSP:
            let result = try WandaSP.score(model: model, windows: windows, variant: options.wandaVariant, initKeepRatios: options.keepRatios,
                                           batchSize: options.batchSize, progress: progress)
            return options.granularity == .queryHeads ? result.queryHeadScores : result.scores
        case .magnitude:
            return Magnitude.scores(model: model, norm: options.magnitudeNorm)
        case .random:
            return RandomScores.scores(config: model.config, seed: options.seed)
        case .flap:
            return try Flap.scores(model: model, windows: windows, batchSize: options.batchSize)
        case .blockInfluence:
            let layers = try LayerImportance.blockInfluence(model: model.dense, windows: windows, batchSize: options.batchSize)
            return StructureScores(attention: [], mlp: [], layers: layers)
        case .perplexityDrop:
            let layers = try LayerImportance.perplexityDrop(model: model, windows: windows, batchSize: options.batchSize, progress: progress)
            return StructureScores(attention: [], mlp: [], layers: layers)
        }
    }

    /// The plan for `scores` at the options' rate (hard mask of spec §2.4; achieved rate in parameters).
    public static func plan(scores: StructureScores, config: ModelConfig, options: MetricPruningOptions,
                            calibration: CalibrationData?, modelSHA256: String, toolVersion: String) throws -> PrunePlan {
        try options.validate()
        var mask = try scores.hardMask(keepRatios: options.keepRatios, granularity: options.granularity, scope: options.scope, config: config)
        if options.granularity.prunesBothKinds, options.channelMultiple > 1 {
            mask = mask.aligningMLPChannels(to: options.channelMultiple, priority: scores.mlp, config: config)
        }
        var record = options.record
        if let calibration, options.metric.needsCalibration {
            record["calibration_recipe"] = .string(calibration.recipe)
            record["calibration_windows"] = .integer(calibration.windows.count)
            record["calibration_length"] = .integer(calibration.windows.first?.count ?? 0)
        }
        return try PrunePlan(mask: mask, config: config, method: options.metric.rawValue, options: record, seed: options.seed,
                             requestedRate: options.granularity.prunesBothKinds ? 1 - options.keepRatios.joint(config: config) : options.rate,
                             modelSHA256: modelSHA256,
                             calibrationSHA256: options.metric.needsCalibration ? (calibration?.sha256 ?? "") : "",
                             toolVersion: toolVersion)
    }
}

extension PrunePlan {
    /// `validate(against:)` plus the model's identity: when both hashes are known and differ, the plan was made for
    /// another model file (even if the shapes agree) and is rejected, naming both hashes.
    public func validate(against config: ModelConfig, modelSHA256 actual: String?) throws {
        try validate(against: config)
        if let actual, !modelSHA256.isEmpty, actual.lowercased() != modelSHA256.lowercased() {
            throw PruningError.invalidValue(key: "model_sha256", value: modelSHA256,
                                            reason: "the model file has sha256 \(actual); the plan was made for another model")
        }
    }
}
