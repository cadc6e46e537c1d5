import Checkpoints
import Transformer

// Parameter accounting and derived layer shapes for a `StructureMask` (defined in Transformer, which applies it in
// the forward pass; Pruning produces it and counts what it keeps).

extension StructureMask {
    /// The shape each layer has after physically removing what the mask drops. A layer with no kept KV groups (or
    /// with attention switched off) gets `hasAttention = false` and zero heads; likewise for the MLP.
    /// - Precondition: the mask was validated against `config` (`validate(against:)`).
    public func layerSpecs(for config: ModelConfig) -> [LayerSpec] {
        zip(layers, config.layers).map { kept, spec in
            let attention = spec.hasAttention && kept.attentionActive
            let mlp = spec.hasMLP && kept.mlpActive
            let groups = attention ? kept.keptKVGroups.count : 0
            return LayerSpec(queryHeads: attention ? kept.queryHeads(spec).count : 0, kvHeads: groups, headDim: spec.headDim,
                             ffnDim: mlp ? kept.keptChannels.count : 0, hasAttention: attention, hasMLP: mlp)
        }
    }

    /// The config of the pruned model: the same model with `layerSpecs(for:)` as its layers.
    public func prunedConfig(_ config: ModelConfig) -> ModelConfig {
        var pruned = config
        pruned.layers = layerSpecs(for: config)
        return pruned
    }

    /// Parameters that remain when the mask is applied to `config` (norms of removed sublayers go too).
    public func keptParameters(in config: ModelConfig) -> ParameterCount {
        prunedConfig(config).parameterCount
    }

    /// Number of kept structures of a kind over all layers (only active sublayers count).
    public func keptCount(_ kind: StructureKind) -> Int {
        layers.reduce(0) { sum, layer in
            switch kind {
            case .attention: return sum + (layer.attentionActive ? layer.keptKVGroups.count : 0)
            case .mlp: return sum + (layer.mlpActive ? layer.keptChannels.count : 0)
            }
        }
    }
}

/// The pruning rate a mask achieves, in parameters (spec §2.5): one minus the kept share.
public struct AchievedRate: Codable, Sendable, Equatable {
    /// `1 − kept / dense` over the attention and MLP projections (the paper's definition).
    public var attentionMLP: Double
    /// `1 − kept / dense` over every parameter (embeddings, head and norms included).
    public var wholeModel: Double
    /// `1 − kept / dense` over the attention projections alone (nil in plans of older versions).
    public var attention: Double?
    /// `1 − kept / dense` over the MLP projections alone (nil in plans of older versions).
    public var mlp: Double?

    public init(attentionMLP: Double, wholeModel: Double, attention: Double? = nil, mlp: Double? = nil) {
        self.attentionMLP = attentionMLP
        self.wholeModel = wholeModel
        self.attention = attention
        self.mlp = mlp
    }

    /// The rate of `kept` against `dense`; 0 for an empty dense count.
    public init(kept: ParameterCount, dense: ParameterCount) {
        func rate(_ k: Int, _ d: Int) -> Double { d == 0 ? 0 : 1 - Double(k) / Double(d) }
        attentionMLP = rate(kept.prunable, dense.prunable)
        wholeModel = rate(kept.total, dense.total)
        attention = rate(kept.attention, dense.attention)
        mlp = rate(kept.mlp, dense.mlp)
    }

    /// The four rates in one line: attention, MLP, attention+MLP parameters, whole model (percent).
    public var summary: String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f %%", 100 * $0) } ?? "n/a" }
        return "attention \(pct(attention)), MLP \(pct(mlp)), attention+MLP \(pct(attentionMLP)), whole model \(pct(wholeModel))"
    }

    enum CodingKeys: String, CodingKey {
        case attentionMLP = "attention_mlp"
        case wholeModel = "whole_model"
        case attention, mlp
    }
}
