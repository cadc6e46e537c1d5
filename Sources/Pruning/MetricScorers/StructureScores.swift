import Checkpoints
import Transformer

/// The metric-based scorers this module offers (issue 4; spec §3). Each gives one importance score per structure:
/// higher means more important, so the hard mask keeps the highest scores.
public enum PruningMetric: String, Codable, Sendable, CaseIterable {
    /// Wanda-sp (spec §3.1): |W| · sqrt(mean input²), reduced per head / KV group and per channel.
    case wandaSP = "wanda-sp"
    /// L1 or L2 norm of the weights a structure couples.
    case magnitude
    /// Seeded uniform random scores (a control).
    case random
    /// FLAP-style fluctuation: input variance over calibration tokens × squared weight-column norm.
    case flap
    /// ShortGPT block influence, 1 − cos(layer input, layer output) averaged over tokens (layers only).
    case blockInfluence = "block-influence"
    /// Increase of the calibration NLL when the layer alone is removed (layers only).
    case perplexityDrop = "ppl-drop"

    /// Which granularities the metric can score.
    public var granularities: [PruningGranularity] {
        switch self {
        case .wandaSP: return [.channels, .heads, .queryHeads]
        case .flap: return [.channels, .heads]
        case .magnitude, .random: return [.channels, .heads, .layers]
        case .blockInfluence, .perplexityDrop: return [.layers]
        }
    }

    /// Whether the metric reads calibration data (magnitude and random do not).
    public var needsCalibration: Bool {
        switch self {
        case .magnitude, .random: return false
        default: return true
        }
    }
}

/// What a metric-based plan removes.
public enum PruningGranularity: String, Codable, Sendable, CaseIterable {
    /// KV groups and MLP channels, each kind at keep ratio 1 − rate (the official code's structures, spec §2.2):
    /// equal keep ratios remove the same share of attention+MLP parameters up to floor and tie effects.
    case channels
    /// KV groups only, at keep ratio 1 − rate; the MLP stays whole, so the rate over attention+MLP is lower.
    case heads
    /// Whole decoder layers: remove the lowest-scored layers while the removed parameters stay within
    /// rate × (attention+MLP parameters) (uniform models: floor(rate · L) layers; spec §2.7).
    case layers
    /// Whole attention and whole MLP sublayers, each kind at keep ratio 1 − rate (policy-gradient runs only; no
    /// metric scores sublayers).
    case sublayers
    /// Query heads and MLP channels (`query-heads`): like `channels`, but attention is scored per query head, and a
    /// KV group goes only when its last query head goes (models with one or few KV heads, e.g. Gemma 3 270M, where
    /// a KV group is a layer's whole attention).
    case queryHeads = "query-heads"

    /// Whether the granularity prunes both kinds with one keep ratio each (`channels`, `query-heads`).
    public var prunesBothKinds: Bool { self == .channels || self == .queryHeads }
}

/// One importance score per prunable structure (higher = keep). Kinds a metric does not score are empty.
public struct StructureScores: Codable, Sendable, Equatable {
    /// [layer][kvGroup]
    public var attention: [[Double]]
    /// [layer][channel]
    public var mlp: [[Double]]
    /// [layer], or empty when the metric does not score whole layers.
    public var layers: [Double]

    /// Scores as given (higher = more important).
    public init(attention: [[Double]], mlp: [[Double]], layers: [Double] = []) {
        self.attention = attention
        self.mlp = mlp
        self.layers = layers
    }

    /// Checks rate and granularity, then applies the hard-mask rule of spec §2.4 to these scores at keep ratio
    /// `1 − rate`: ties at the threshold are kept, the index is `floor(n · rate)` in Double. Attention and MLP
    /// have separate budgets, over all layers (`.global`) or per layer (`.perLayer`); `scope` is ignored for
    /// `.layers`. A layer may end with no groups or channels (legal: the sublayer adds nothing).
    /// - Throws: `PruningError` for a rate outside (0, 1), a `.joint` scope, or scores that do not fit `config`
    ///   or the granularity.
    public func hardMask(rate: Double, granularity: PruningGranularity, scope: BudgetScope,
                         config: ModelConfig) throws -> StructureMask {
        try Self.checkRate(rate)
        return try hardMask(keepRatios: KeepRatios(both: 1 - rate), granularity: granularity, scope: scope, config: config)
    }

    /// `hardMask(rate:...)` with one keep ratio per kind (channels; `.heads` and `.layers` use the MLP's as their
    /// one ratio). A kind at keep ratio 1 keeps everything.
    public func hardMask(keepRatios: KeepRatios, granularity: PruningGranularity, scope: BudgetScope,
                         config: ModelConfig) throws -> StructureMask {
        try Self.checkRates(keepRatios)
        let keep = keepRatios.mlp
        switch granularity {
        case .channels, .heads, .queryHeads:
            guard scope != .joint else {
                throw PruningError.invalidValue(key: "scope", value: scope.rawValue,
                                                reason: "metric scores of heads and channels have different scales; use global or per-layer")
            }
            let probabilities = KeepProbabilities(attention: attention, mlp: mlp)
            try probabilities.validate(against: config, granularity: granularity == .queryHeads ? .queryHeads : .channels)
            var mask = granularity == .heads ? probabilities.hardMask(keepRatio: keep, scope: scope, config: config)
                : probabilities.hardMask(keepRatios: keepRatios, scope: scope, config: config, granularity: granularity)
            if granularity == .heads {
                for l in mask.layers.indices { mask.layers[l].keptChannels = Array(0..<config.structureCount(.mlp, layer: l)) }
            }
            return mask
        case .sublayers:
            throw PruningError.invalidValue(key: "granularity", value: granularity.rawValue,
                                            reason: "no metric scores sublayers; use channels, heads or layers")
        case .layers:
            guard layers.count == config.layers.count else {
                throw PruningError.layerCount(what: "layer scores", expected: config.layers.count, found: layers.count)
            }
            if let bad = layers.first(where: { !$0.isFinite }) {
                throw PruningError.invalidValue(key: "layer scores", value: "\(bad)", reason: "must be finite")
            }
            let costs = config.layers.indices.map { Double(config.parameterCost(of: .layer($0))) }
            let threshold = hardMaskThreshold(layers, costs: costs, keepRatio: keep)
            return StructureMask(layers: config.layers.enumerated().map { l, spec in
                threshold.keeps(layers[l])
                    ? StructureMask.Layer(keptKVGroups: Array(0..<spec.kvHeads), keptChannels: Array(0..<spec.ffnDim),
                                          attention: spec.hasAttention, mlp: spec.hasMLP)
                    : StructureMask.Layer(keptKVGroups: [], keptChannels: [], attention: false, mlp: false)
            })
        }
    }

    /// Per-kind keep ratios must lie in (0, 1] and prune something.
    static func checkRates(_ keepRatios: KeepRatios) throws {
        for (key, keep) in [("attention-rate", keepRatios.attention), ("mlp-rate", keepRatios.mlp)] where !(keep > 0 && keep <= 1) {
            throw PruningError.invalidValue(key: key, value: "\(1 - keep)", reason: "a pruning rate must be in [0, 1)")
        }
        guard keepRatios.attention < 1 || keepRatios.mlp < 1 else {
            throw PruningError.invalidValue(key: "rate", value: "0", reason: "nothing to prune: both rates are 0")
        }
    }

    /// A pruning rate must lie strictly inside (0, 1).
    static func checkRate(_ rate: Double) throws {
        guard rate > 0, rate < 1 else {
            throw PruningError.invalidValue(key: "rate", value: "\(rate)", reason: "the pruning rate must be in (0, 1)")
        }
    }
}

/// Shared reductions of the per-column metrics (Wanda-sp, FLAP) to heads, KV groups and channels.
enum ColumnReduction {
    /// Head score = sum of its `headDim` column values; KV-group score = mean of its G query heads (spec §3.1 step 5,
    /// with the model's head dim instead of the code's hard-coded 128).
    static func heads(_ columns: [Double], spec: LayerSpec) -> (heads: [Double], groups: [Double]) {
        let hd = spec.headDim
        let heads = (0..<(columns.count / hd)).map { h in columns[(h * hd)..<((h + 1) * hd)].reduce(0, +) }
        return (heads, kvGroupScores(headScores: heads, groupSize: spec.groupSize))
    }

    /// Per column j of a row-major [rows, cols] matrix: (1/rows) Σ_r |W[r, j]| (`squared: false`) or Σ_r W[r, j]²
    /// (`squared: true`), in Double.
    static func columnStatistic(_ w: [Float], rows: Int, cols: Int, squared: Bool) -> [Double] {
        var out = [Double](repeating: 0, count: cols)
        w.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    let row = src.baseAddress! + r * cols
                    for j in 0..<cols {
                        let x = Double(row[j])
                        o[j] += squared ? x * x : abs(x)
                    }
                }
            }
        }
        if !squared { for j in 0..<cols { out[j] /= Double(max(rows, 1)) } }
        return out
    }
}
