import Checkpoints
import Corpora
import Essentials
import Transformer

/// Which norm the magnitude metric takes of a structure's coupled weights.
public enum MagnitudeNorm: String, Codable, Sendable, CaseIterable {
    /// Σ |w|.
    case l1
    /// sqrt(Σ w²).
    case l2
}

/// Weight-magnitude scores: the norm of every weight a structure couples (spec §2.2). A KV group couples the q rows
/// of its G query heads, its k and v rows (with q/k/v bias entries when present) and the o_proj columns of its
/// query heads; an MLP channel couples its gate and up rows and its down_proj column; a layer couples all seven
/// projections. Needs no data.
public enum Magnitude {
    /// Scores of every KV group, channel and layer of `weights` (shaped by `config`).
    public static func scores(config: ModelConfig, weights: ModelWeights, norm: MagnitudeNorm) -> StructureScores {
        scores(config: config, norm: norm) { weights.layers[$0] }
    }

    /// Scores of every KV group, channel and layer of `model`, copying one layer's canonical weights at a time.
    public static func scores(model: LanguageModel, norm: MagnitudeNorm) -> StructureScores {
        scores(config: model.config, norm: norm) { model.layerWeights($0) }
    }

    /// Scores with layer `l`'s weights from `layer(l)`.
    private static func scores(config: ModelConfig, norm: MagnitudeNorm, layer: (Int) -> LayerWeights) -> StructureScores {
        let d = config.hiddenSize
        var attention: [[Double]] = [], mlp: [[Double]] = [], layers: [Double] = []
        for (l, spec) in config.layers.enumerated() {
            let w = layer(l)
            var groups: [Double] = []
            var layerTotal = 0.0
            if spec.hasAttention {
                let hd = spec.headDim, g = spec.groupSize
                // o_proj column statistics once for the layer: [queryDim]
                let oColumns = ColumnReduction.columnStatistic(w.wo, rows: d, cols: spec.queryDim, squared: norm == .l2)
                let oPerColumn = norm == .l1 ? oColumns.map { $0 * Double(d) } : oColumns   // undo the mean for L1
                for group in 0..<spec.kvHeads {
                    var total = 0.0
                    for h in (group * g)..<((group + 1) * g) {
                        total += accumulate(w.wq[(h * hd * d)..<((h + 1) * hd * d)], norm)
                        if let b = w.bq { total += accumulate(b[(h * hd)..<((h + 1) * hd)], norm) }
                        total += oPerColumn[(h * hd)..<((h + 1) * hd)].reduce(0, +)
                    }
                    total += accumulate(w.wk[(group * hd * d)..<((group + 1) * hd * d)], norm)
                    total += accumulate(w.wv[(group * hd * d)..<((group + 1) * hd * d)], norm)
                    if let b = w.bk { total += accumulate(b[(group * hd)..<((group + 1) * hd)], norm) }
                    if let b = w.bv { total += accumulate(b[(group * hd)..<((group + 1) * hd)], norm) }
                    layerTotal += total
                    groups.append(norm == .l2 ? total.squareRoot() : total)
                }
            }
            var channels: [Double] = []
            if spec.hasMLP {
                let downColumns = ColumnReduction.columnStatistic(w.down, rows: d, cols: spec.ffnDim, squared: norm == .l2)
                for c in 0..<spec.ffnDim {
                    let total = accumulate(w.gate[(c * d)..<((c + 1) * d)], norm) + accumulate(w.up[(c * d)..<((c + 1) * d)], norm)
                        + (norm == .l1 ? downColumns[c] * Double(d) : downColumns[c])
                    layerTotal += total
                    channels.append(norm == .l2 ? total.squareRoot() : total)
                }
            }
            attention.append(groups)
            mlp.append(channels)
            layers.append(norm == .l2 ? layerTotal.squareRoot() : layerTotal)
        }
        return StructureScores(attention: attention, mlp: mlp, layers: layers)
    }

    /// Σ|w| (L1) or Σw² (L2, the square root is taken by the caller) in Double.
    private static func accumulate(_ values: ArraySlice<Float>, _ norm: MagnitudeNorm) -> Double {
        var total = 0.0
        switch norm {
        case .l1: for v in values { total += Double(abs(v)) }
        case .l2: for v in values { total += Double(v) * Double(v) }
        }
        return total
    }
}

/// Seeded random scores (a control baseline): uniform in [0, 1), drawn per layer in the order KV groups, channels,
/// then one value per layer at the end, from SplitMix64(seed). The same seed gives the same scores everywhere.
public enum RandomScores {
    /// Scores for every structure of `config`.
    public static func scores(config: ModelConfig, seed: UInt64) -> StructureScores {
        var rng = SplitMix64(seed: seed)
        func draw() -> Double { Double(rng.next() >> 11) * 0x1p-53 }
        var attention: [[Double]] = [], mlp: [[Double]] = []
        for l in config.layers.indices {
            attention.append((0..<config.structureCount(.attention, layer: l)).map { _ in draw() })
            mlp.append((0..<config.structureCount(.mlp, layer: l)).map { _ in draw() })
        }
        let layers = config.layers.indices.map { _ in draw() }
        return StructureScores(attention: attention, mlp: mlp, layers: layers)
    }
}
