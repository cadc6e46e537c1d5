import Checkpoints
import Transformer

/// A FLAP-style fluctuation metric (An et al., AAAI 2024, "WIFV"): for each input feature j of o_proj and
/// down_proj, `variance_j · ‖W[:, j]‖²`, with the variance of x_j over all calibration tokens. Channel score = that
/// value for down_proj column j; head score = sum over the head's head-dim o_proj columns; KV-group score = mean
/// of its G query heads (the same reductions as Wanda-sp).
///
/// Where this departs from FLAP:
/// - FLAP standardises each layer's metric and searches one global structure across attention and MLP ("AL-AM");
///   here the hard mask of spec §2.4 applies, with separate attention and MLP budgets (global or per layer).
/// - FLAP adds a bias compensation (the dropped features' mean times W, folded into an output bias); LLaMA
///   projections have no bias and the plan records only kept ids, so nothing is compensated.
/// - FLAP accumulates a running (per-batch) variance estimate; this computes the exact population variance
///   `Σ(x − x̄)²/N` over all tokens, in Double.
/// - FLAP processes layers sequentially with earlier layers already pruned; this takes all statistics from one
///   dense forward pass.
public enum Flap {
    /// Computes the metric on `windows` with one dense forward pass.
    public static func scores(model: LanguageModel, windows: [[Int]], batchSize: Int = 8) throws -> StructureScores {
        let config = model.config
        let recorder = ActivationRecorder(layers: Set(config.layers.indices), projections: true, blockInfluence: false)
        try model.dense.observe(windows, batchSize: batchSize, observer: recorder)
        var attention: [[Double]] = [], mlp: [[Double]] = []
        for (l, spec) in config.layers.enumerated() {
            let s = layerScores(weights: model.layerWeights(l), spec: spec, hiddenSize: config.hiddenSize,
                                outputProjectionVariance: recorder.outputProjection[l]?.variance ?? [],
                                downProjectionVariance: recorder.downProjection[l]?.variance ?? [])
            attention.append(s.kvGroups)
            mlp.append(s.channels)
        }
        return StructureScores(attention: attention, mlp: mlp)
    }

    /// The pure part: scores of one layer from its weights and the per-feature input variances.
    public static func layerScores(weights w: LayerWeights, spec: LayerSpec, hiddenSize d: Int,
                                   outputProjectionVariance vO: [Double], downProjectionVariance vDown: [Double])
        -> (heads: [Double], kvGroups: [Double], channels: [Double]) {
        var heads: [Double] = [], groups: [Double] = [], channels: [Double] = []
        if spec.hasAttention, vO.count == spec.queryDim {
            let norms = ColumnReduction.columnStatistic(w.wo, rows: d, cols: spec.queryDim, squared: true)
            (heads, groups) = ColumnReduction.heads(zip(norms, vO).map { $0 * $1 }, spec: spec)
        }
        if spec.hasMLP, vDown.count == spec.ffnDim {
            let norms = ColumnReduction.columnStatistic(w.down, rows: d, cols: spec.ffnDim, squared: true)
            channels = zip(norms, vDown).map { $0 * $1 }
        }
        return (heads, groups, channels)
    }
}
