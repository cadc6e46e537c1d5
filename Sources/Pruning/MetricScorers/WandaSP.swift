import Checkpoints
import Transformer

/// The Wanda-sp metric exactly as spec §3.1 describes the official code (and FLAP's `prune_wanda_sp`), with the
/// model's head dim where the code hard-codes 128.
///
/// Per layer: `A_j = Σ_tokens x_j² / N_sequences` at the inputs of o_proj and down_proj; `M = |W| · sqrt(A_j)`;
/// column score = mean of M over output rows; head score = sum of its head-dim columns; KV-group score = mean of
/// its G query heads; channel score = the down_proj column score.
public enum WandaSP {
    /// Which activations the statistics of layer l come from.
    public enum Variant: String, Codable, Sendable, CaseIterable {
        /// One dense forward: no pruning between layers (fixture `no_mask_between_layers`).
        case dense
        /// The official order: layer l's statistics come from a forward in which every layer < l carries its
        /// per-layer init mask (spec §3.1 step 2, fixture `init_mask_between_layers`).
        case initMask = "init-mask"
    }

    /// Everything computed for one layer (empty vectors for an absent sublayer).
    public struct LayerResult: Sendable, Equatable {
        /// Wanda scale of each o_proj input feature, [queryHeads · headDim].
        public var outputProjectionScale: [Double]
        /// Wanda scale of each down_proj input feature, [ffnDim].
        public var downProjectionScale: [Double]
        /// One score per query head.
        public var headScores: [Double]
        /// One score per KV group.
        public var kvGroupScores: [Double]
        /// One score per MLP channel.
        public var channelScores: [Double]
        /// The per-layer init mask at the init keep ratio (spec §3.1 step 7): kept KV groups and kept channels.
        public var initKeptKVGroups: [Int]
        /// Kept channels of the per-layer init mask.
        public var initKeptChannels: [Int]
    }

    /// The result over all layers.
    public struct Result: Sendable, Equatable {
        /// One entry per decoder layer.
        public var layers: [LayerResult]

        /// KV-group and channel scores as `StructureScores`.
        public var scores: StructureScores {
            StructureScores(attention: layers.map(\.kvGroupScores), mlp: layers.map(\.channelScores))
        }

        /// Query-head and channel scores (the `query-heads` granularity): a head's score is the sum over its o_proj
        /// columns, the quantity whose group mean is the KV-group score.
        public var queryHeadScores: StructureScores {
            StructureScores(attention: layers.map(\.headScores), mlp: layers.map(\.channelScores))
        }

        /// The per-layer init masks as a structure mask.
        public var initMask: StructureMask {
            StructureMask(layers: layers.map { StructureMask.Layer(keptKVGroups: $0.initKeptKVGroups, keptChannels: $0.initKeptChannels) })
        }
    }

    /// Computes the metric on `windows` (equal-length calibration windows).
    /// - Parameters:
    ///   - initKeepRatio: keep ratio of the per-layer init masks (the code's `init_rate`; 1 − pruning rate).
    ///   - batchSize: windows per forward pass.
    ///   - progress: called with (layers done, layer count).
    public static func score(model: LanguageModel, windows: [[Int]], variant: Variant, initKeepRatio: Double,
                             batchSize: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        try score(model: model, windows: windows, variant: variant, initKeepRatios: KeepRatios(both: initKeepRatio),
                  batchSize: batchSize, progress: progress)
    }

    /// `score(model:windows:variant:initKeepRatio:...)` with one init keep ratio per kind (e.g. attention 1 when
    /// only MLP channels are pruned, so the init masks of earlier layers keep every KV group).
    public static func score(model: LanguageModel, windows: [[Int]], variant: Variant, initKeepRatios: KeepRatios,
                             batchSize: Int = 8, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let config = model.config
        let count = config.layers.count
        guard !windows.isEmpty else { throw PruningError.invalidValue(key: "calibration windows", value: "0", reason: "need at least one window") }
        for initKeepRatio in [initKeepRatios.attention, initKeepRatios.mlp] where !(initKeepRatio > 0 && initKeepRatio <= 1) {
            throw PruningError.invalidValue(key: "init keep ratio", value: "\(initKeepRatio)", reason: "must be in (0, 1]")
        }
        var results: [LayerResult] = []
        switch variant {
        case .dense:
            let recorder = ActivationRecorder(layers: Set(0..<count), projections: true, blockInfluence: false)
            try model.dense.observe(windows, batchSize: batchSize, observer: recorder)
            for l in 0..<count {
                results.append(layerResult(l, model: model, recorder: recorder, sequences: windows.count, initKeepRatios: initKeepRatios))
                progress?(l + 1, count)
            }
        case .initMask:
            // Stage l needs layer l's inputs with every layer < l under its init mask. The residual stream of all
            // windows is kept between stages (windows × tokens × hidden floats), so each stage runs only layer l:
            // once dense for the statistics, once under its init mask to feed stage l + 1 (bit-identical to
            // re-running the masked stack below l, at 2 layer passes per stage instead of l + 1).
            let dense = model.dense
            let length = windows[0].count
            let batches = stride(from: 0, to: windows.count, by: max(batchSize, 1)).map {
                Array(windows[$0..<min($0 + max(batchSize, 1), windows.count)])
            }
            var hidden = try batches.map { try dense.embed($0) }
            let off = StructureMask.Layer(keptKVGroups: [], keptChannels: [], attention: false, mlp: false)
            for l in 0..<count {
                let spec = config.layers[l]
                let recorder = ActivationRecorder(layers: [l], projections: true, blockInfluence: false)
                for (b, batch) in batches.enumerated() {
                    var scratch = hidden[b]
                    dense.applyLayers(l..<(l + 1), to: &scratch, batch: batch.count, length: length, observer: recorder)
                }
                let result = layerResult(l, model: model, recorder: recorder, sequences: windows.count, initKeepRatios: initKeepRatios)
                results.append(result)
                var layers = Array(repeating: off, count: count)
                layers[l] = StructureMask.Layer(keptKVGroups: result.initKeptKVGroups, keptChannels: result.initKeptChannels,
                                                attention: spec.hasAttention, mlp: spec.hasMLP)
                let masked = try model.prepared(mask: StructureMask(layers: layers))
                for (b, batch) in batches.enumerated() {
                    masked.applyLayers(l..<(l + 1), to: &hidden[b], batch: batch.count, length: length)
                }
                progress?(l + 1, count)
            }
        }
        return Result(layers: results)
    }

    /// Scores of one layer from its weights and the Wanda scales of its o_proj and down_proj inputs (the pure part
    /// of spec §3.1 steps 4–6). `outputProjectionScale` has `queryHeads · headDim` entries, `downProjectionScale`
    /// `ffnDim` (either may be empty for an absent sublayer).
    public static func layerScores(weights w: LayerWeights, spec: LayerSpec, hiddenSize d: Int,
                                   outputProjectionScale aO: [Double], downProjectionScale aDown: [Double])
        -> (heads: [Double], kvGroups: [Double], channels: [Double]) {
        var heads: [Double] = [], groups: [Double] = [], channels: [Double] = []
        if spec.hasAttention, aO.count == spec.queryDim {
            let meanAbs = ColumnReduction.columnStatistic(w.wo, rows: d, cols: spec.queryDim, squared: false)
            let columns = zip(meanAbs, aO).map { $0 * $1.squareRoot() }
            (heads, groups) = ColumnReduction.heads(columns, spec: spec)
        }
        if spec.hasMLP, aDown.count == spec.ffnDim {
            let meanAbs = ColumnReduction.columnStatistic(w.down, rows: d, cols: spec.ffnDim, squared: false)
            channels = zip(meanAbs, aDown).map { $0 * $1.squareRoot() }
        }
        return (heads, groups, channels)
    }

    private static func layerResult(_ l: Int, model: LanguageModel, recorder: ActivationRecorder, sequences: Int,
                                    initKeepRatios: KeepRatios) -> LayerResult {
        let spec = model.config.layers[l]
        let aO = recorder.outputProjection[l]?.wandaScale(sequences: sequences) ?? []
        let aDown = recorder.downProjection[l]?.wandaScale(sequences: sequences) ?? []
        let s = layerScores(weights: model.layerWeights(l), spec: spec, hiddenSize: model.config.hiddenSize,
                            outputProjectionScale: aO, downProjectionScale: aDown)
        let groupMask = initMask(metric: s.kvGroups, keepRatio: initKeepRatios.attention)
        let channelMask = initMask(metric: s.channels, keepRatio: initKeepRatios.mlp)
        return LayerResult(outputProjectionScale: aO, downProjectionScale: aDown, headScores: s.heads,
                           kvGroupScores: s.kvGroups, channelScores: s.channels,
                           initKeptKVGroups: groupMask.indices.filter { groupMask[$0] },
                           initKeptChannels: channelMask.indices.filter { channelMask[$0] })
    }
}
