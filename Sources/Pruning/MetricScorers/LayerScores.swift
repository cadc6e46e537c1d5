import Checkpoints
import Transformer

/// Layer-granularity metrics (spec §2.7: the paper compares layer pruning with ShortGPT).
public enum LayerImportance {
    /// ShortGPT's block influence of every layer of `model`: the mean over calibration tokens of
    /// `1 − cos(h_in, h_out)`, the residual stream entering and leaving the layer. A layer that changes its input
    /// little scores low and is removed first. Statistics from one forward pass of `model` (dense or masked).
    public static func blockInfluence(model: PreparedModel, windows: [[Int]], batchSize: Int = 8) throws -> [Double] {
        let count = model.config.layers.count
        let recorder = ActivationRecorder(layers: Set(0..<count), projections: false, blockInfluence: true)
        try model.observe(windows, batchSize: batchSize, observer: recorder)
        return (0..<count).map { l in
            let n = recorder.influenceTokens[l] ?? 0
            return n == 0 ? 0 : (recorder.influenceSum[l] ?? 0) / Double(n)
        }
    }

    /// Perplexity-drop score of every layer: mean token NLL on `windows` with layer l alone removed, minus the
    /// dense mean NLL (nats). Costs one forward pass per layer plus one dense.
    /// - Parameter progress: called with (layers done, layer count).
    public static func perplexityDrop(model: LanguageModel, windows: [[Int]], batchSize: Int = 8,
                                      progress: ((Int, Int) -> Void)? = nil) throws -> [Double] {
        let config = model.config
        let dense = try meanNLL(model.dense, windows: windows, batchSize: batchSize)
        var scores: [Double] = []
        for l in config.layers.indices {
            var mask = StructureMask.dense(config)
            mask.layers[l] = StructureMask.Layer(keptKVGroups: [], keptChannels: [], attention: false, mlp: false)
            scores.append(try meanNLL(model.prepared(mask: mask), windows: windows, batchSize: batchSize) - dense)
            progress?(l + 1, config.layers.count)
        }
        return scores
    }

    /// Mean token NLL over all windows (every window has the same number of predicted tokens), in Double.
    static func meanNLL(_ model: PreparedModel, windows: [[Int]], batchSize: Int) throws -> Double {
        var total = 0.0, count = 0
        var start = 0
        while start < windows.count {
            let end = min(start + max(batchSize, 1), windows.count)
            for row in try model.tokenNLL(Array(windows[start..<end])) {
                total += row.reduce(0, +)
                count += row.count
            }
            start = end
        }
        return count == 0 ? 0 : total / Double(count)
    }
}
