import Checkpoints
import Transformer

/// Physical removal of what a plan drops (issue 6): the kept KV groups' q/k/v rows and o columns, the kept
/// channels' gate/up rows and down columns, nothing of a removed sublayer. The result is an ordinary model whose
/// `[LayerSpec]` is heterogeneous; its dense forward pass equals the masked forward pass of the original because
/// it holds exactly the rows and columns the masked pass gathers, in the same order.
public enum Compaction {
    /// The compacted model of `config`/`weights` under `mask` (validated against `config` first).
    public static func compact(config: ModelConfig, weights: ModelWeights, mask: StructureMask) throws -> (config: ModelConfig, weights: ModelWeights) {
        try mask.validate(against: config)
        try config.validate(weights, file: "<compaction input>")
        let specs = mask.layerSpecs(for: config)
        let d = config.hiddenSize
        var layers: [LayerWeights] = []
        layers.reserveCapacity(specs.count)
        for (i, (original, compacted)) in zip(config.layers, specs).enumerated() {
            let w = weights.layers[i]
            let kept = mask.layers[i]
            var out = LayerWeights(attentionNorm: [], wq: [], wk: [], wv: [], wo: [], mlpNorm: [], gate: [], up: [], down: [])
            if compacted.hasAttention {
                let hd = original.headDim, g = original.groupSize
                let groups = kept.keptKVGroups
                let heads = kept.queryHeads(original)
                // A compacted layer maps query head h to KV group h / (heads / groups): every kept group must keep
                // the same number of heads (always so with one KV head, as Gemma 3 270M).
                let perGroup = groups.map { group in heads.filter { $0 / g == group }.count }
                if Set(perGroup).count > 1 {
                    throw PruningError.invalidValue(key: "layers[\(i)].kept_query_heads", value: "\(heads)",
                                                    reason: "KV groups keep \(perGroup) query heads; a compacted model needs the same number in each")
                }
                out.attentionNorm = w.attentionNorm
                out.wq = rows(w.wq, blocks: heads, blockRows: hd, columns: d)
                out.wk = rows(w.wk, blocks: groups, blockRows: hd, columns: d)
                out.wv = rows(w.wv, blocks: groups, blockRows: hd, columns: d)
                out.wo = columns(w.wo, rows: d, columns: original.queryDim, blocks: heads, blockWidth: hd)
                if let bq = w.bq, let bk = w.bk, let bv = w.bv {
                    out.bq = rows(bq, blocks: heads, blockRows: hd, columns: 1)
                    out.bk = rows(bk, blocks: groups, blockRows: hd, columns: 1)
                    out.bv = rows(bv, blocks: groups, blockRows: hd, columns: 1)
                }
                // Per-head norms are shared by every head: kept whole.
                out.qNorm = w.qNorm
                out.kNorm = w.kNorm
                // Gemma's post-attention norm acts on the residual width: kept whole, gone with the sublayer.
                out.postAttentionNorm = w.postAttentionNorm
            }
            if compacted.hasMLP {
                let channels = kept.keptChannels
                out.mlpNorm = w.mlpNorm
                out.gate = rows(w.gate, blocks: channels, blockRows: 1, columns: d)
                out.up = rows(w.up, blocks: channels, blockRows: 1, columns: d)
                out.down = columns(w.down, rows: d, columns: original.ffnDim, blocks: channels, blockWidth: 1)
                out.postMLPNorm = w.postMLPNorm
            }
            layers.append(out)
        }
        var compactedConfig = config
        compactedConfig.layers = specs
        let compactedWeights = ModelWeights(tokenEmbedding: weights.tokenEmbedding, layers: layers,
                                            finalNorm: weights.finalNorm, head: weights.head)
        try compactedConfig.validate(compactedWeights, file: "<compacted model>")
        return (compactedConfig, compactedWeights)
    }

    /// The row blocks `blocks` (each `blockRows` rows of `columns` values) of a row-major matrix, in that order.
    static func rows(_ m: [Float], blocks: [Int], blockRows: Int, columns: Int) -> [Float] {
        let size = blockRows * columns
        var out = [Float]()
        out.reserveCapacity(blocks.count * size)
        for b in blocks { out.append(contentsOf: m[(b * size)..<((b + 1) * size)]) }
        return out
    }

    /// The column blocks `blocks` (each `blockWidth` wide) of a row-major `[rows, columns]` matrix.
    static func columns(_ m: [Float], rows: Int, columns: Int, blocks: [Int], blockWidth: Int) -> [Float] {
        let kept = blocks.count * blockWidth
        var out = [Float](repeating: 0, count: rows * kept)
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    for (j, b) in blocks.enumerated() {
                        (dst.baseAddress! + r * kept + j * blockWidth)
                            .update(from: src.baseAddress! + r * columns + b * blockWidth, count: blockWidth)
                    }
                }
            }
        }
        return out
    }
}

extension PrunePlan {
    /// The model this plan describes, physically smaller: validates the plan against `config` (a plan made for
    /// another model is rejected), then compacts.
    public func compact(config: ModelConfig, weights: ModelWeights) throws -> (config: ModelConfig, weights: ModelWeights) {
        try validate(against: config)
        return try Compaction.compact(config: config, weights: weights, mask: structureMask)
    }
}
