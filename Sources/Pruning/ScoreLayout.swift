import Checkpoints
import Transformer

/// What the two per-layer score vectors of `KeepProbabilities` hold under each granularity (spec §1.1, §2.7), and
/// how a set of kept score ids becomes a `StructureMask`. The policy-gradient machinery (sampling, estimator,
/// projection, hard mask) only sees vectors; this layout gives them meaning.
///
/// | granularity | `attention[l]` | `mlp[l]` |
/// |---|---|---|
/// | `channels` | one score per KV group | one score per MLP channel |
/// | `heads` | one score per KV group | empty: the MLP is never pruned |
/// | `sublayers` | one score for the whole attention sublayer (empty if absent) | one for the whole MLP sublayer |
/// | `layers` | one score for the whole decoder layer | empty |
/// | `query-heads` | one score per query head | one score per MLP channel |
///
/// Under `layers` the "attention" vectors are the block scores (the name of the kind stays, its meaning is the
/// block); a removed block is the identity, the residual passes through.
extension PruningGranularity {
    /// Number of scores of `kind` in layer `layer`.
    public func scoreCount(_ kind: StructureKind, layer: Int, config: ModelConfig) -> Int {
        let spec = config.layers[layer]
        switch self {
        case .channels: return config.structureCount(kind, layer: layer)
        case .queryHeads:
            return kind == .attention ? (spec.hasAttention ? spec.queryHeads : 0) : config.structureCount(.mlp, layer: layer)
        case .heads: return kind == .attention ? config.structureCount(.attention, layer: layer) : 0
        case .sublayers: return kind == .attention ? (spec.hasAttention ? 1 : 0) : (spec.hasMLP ? 1 : 0)
        case .layers: return kind == .attention && (spec.hasAttention || spec.hasMLP) ? 1 : 0
        }
    }

    /// Number of scores of `kind` over all layers.
    public func scoreCount(_ kind: StructureKind, config: ModelConfig) -> Int {
        config.layers.indices.reduce(0) { $0 + scoreCount(kind, layer: $1, config: config) }
    }

    /// Parameters removed with one score's structure of `kind` in layer `layer` (the joint budget's weights).
    public func unitParameterCost(_ kind: StructureKind, layer: Int, config: ModelConfig) -> Int {
        switch self {
        case .channels, .heads: return config.unitParameterCost(kind, layer: layer)
        case .queryHeads:
            // A head's q rows and o columns plus its share of the group's k and v rows: exact once all heads go.
            let spec = config.layers[layer]
            guard kind == .attention, spec.queryHeads > 0 else { return config.unitParameterCost(kind, layer: layer) }
            return config.parameterCost(of: .attentionSublayer(layer: layer)) / spec.queryHeads
        case .sublayers:
            return config.parameterCost(of: kind == .attention ? .attentionSublayer(layer: layer) : .mlpSublayer(layer: layer))
        case .layers: return config.parameterCost(of: .layer(layer))
        }
    }

    /// Whether the budget can be split per layer: a layer has a single sublayer or block score under `sublayers`
    /// and `layers`, so a per-layer budget would keep it whatever its score.
    public var allowsPerLayerScope: Bool { self == .channels || self == .heads || self == .queryHeads }

    /// The structure mask of kept score ids (`attention[l]`, `mlp[l]` as laid out above). Sublayer flags follow
    /// `config`; structures the granularity does not score are kept.
    public func structureMask(keptAttention: [[Int]], keptMLP: [[Int]], config: ModelConfig) -> StructureMask {
        StructureMask(layers: config.layers.indices.map { l in
            let spec = config.layers[l]
            // Whole-sublayer id lists, built only by the granularities that keep whole sublayers.
            var allGroups: [Int] { Array(0..<(spec.hasAttention ? spec.kvHeads : 0)) }
            var allChannels: [Int] { Array(0..<(spec.hasMLP ? spec.ffnDim : 0)) }
            switch self {
            case .channels:
                return StructureMask.Layer(keptKVGroups: keptAttention[l], keptChannels: keptMLP[l],
                                           attention: spec.hasAttention, mlp: spec.hasMLP)
            case .heads:
                return StructureMask.Layer(keptKVGroups: keptAttention[l], keptChannels: allChannels,
                                           attention: spec.hasAttention, mlp: spec.hasMLP)
            case .queryHeads:
                // The kept groups are those that keep a query head: a group goes with its last head.
                let heads = keptAttention[l]
                let groups = Array(Set(heads.map { $0 / max(spec.groupSize, 1) })).sorted()
                return StructureMask.Layer(keptKVGroups: groups, keptChannels: keptMLP[l], attention: spec.hasAttention,
                                           mlp: spec.hasMLP, keptQueryHeads: heads)
            case .sublayers:
                let a = spec.hasAttention && !keptAttention[l].isEmpty, m = spec.hasMLP && !keptMLP[l].isEmpty
                return StructureMask.Layer(keptKVGroups: a ? allGroups : [], keptChannels: m ? allChannels : [],
                                           attention: a, mlp: m)
            case .layers:
                let kept = !keptAttention[l].isEmpty
                return StructureMask.Layer(keptKVGroups: kept ? allGroups : [], keptChannels: kept ? allChannels : [],
                                           attention: kept && spec.hasAttention, mlp: kept && spec.hasMLP)
            }
        })
    }

    /// Keep probabilities from per-structure importances (higher = keep) through `mapping` at mean μ. `channels`
    /// and `heads` map every layer's vector on its own (spec §3.2); `sublayers` and `layers` have one score per
    /// layer and kind, so the mapping runs over all layers' values of a kind together.
    public func initialScores(attention: [[Double]], mlp: [[Double]], mapping: ScoreMapping, keepRatio mu: Double) -> KeepProbabilities {
        initialScores(attention: attention, mlp: mlp, mapping: mapping, keepRatios: KeepRatios(both: mu))
    }

    /// `initialScores(attention:mlp:mapping:keepRatio:)` with one μ per kind.
    public func initialScores(attention: [[Double]], mlp: [[Double]], mapping: ScoreMapping, keepRatios: KeepRatios) -> KeepProbabilities {
        switch self {
        case .channels, .heads, .queryHeads:
            return InitialScores.fromMetric(attention, mlp, mapping: mapping, keepRatios: keepRatios)
        case .sublayers, .layers:
            func across(_ vectors: [[Double]], _ kind: StructureKind) -> [[Double]] {
                let mu = keepRatios[kind]
                let flat = vectors.flatMap { $0 }
                let mapped = mapping.keepProbabilities(metric: flat, kind: kind, mean: mu,
                                                       initMask: initMask(metric: flat, keepRatio: mu))
                var out: [[Double]] = [], i = 0
                for v in vectors { out.append(Array(mapped[i..<(i + v.count)])); i += v.count }
                return out
            }
            return KeepProbabilities(attention: across(attention, .attention), mlp: across(mlp, .mlp))
        }
    }
}
