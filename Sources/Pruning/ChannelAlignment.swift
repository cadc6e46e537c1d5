import Checkpoints
import Transformer

extension StructureMask {
    /// The mask with every layer keeping a multiple of `multiple` MLP channels, and never more channels in all than
    /// this mask keeps (so the budget is still met), for exports that quantize in 32-wide blocks: a pruned
    /// `ffn_down` row of 811 channels fits no Q8_0/Q4_K block and falls back to F16.
    ///
    /// Largest remainder: each layer first keeps `floor(c_l / N) · N` of its `c_l` kept channels; the channels this
    /// leaves over, in blocks of N, go back to the layers with the largest remainders `c_l mod N` (ties: lower
    /// layer first), as long as the total stays within `Σ c_l`. A layer keeps its highest-`priority` channels
    /// (ties: lower index). Layers that keep everything, and layers whose dense width is not itself a multiple of
    /// N (their dense model has the same problem), are left as they are. `multiple ≤ 1` returns the mask unchanged.
    /// - Parameter priority: `[layer][channel]`, higher is kept first (the metric, or the keep probabilities).
    public func aligningMLPChannels(to multiple: Int, priority: [[Double]], config: ModelConfig) -> StructureMask {
        guard multiple > 1 else { return self }
        var result = self
        var counts = layers.map(\.keptChannels.count)
        var free = 0
        var remainders: [(layer: Int, remainder: Int)] = []
        for l in layers.indices {
            let n = config.structureCount(.mlp, layer: l)
            let c = counts[l]
            guard n % multiple == 0, c < n, c % multiple != 0 else { continue }
            let down = c / multiple * multiple
            free += c - down
            counts[l] = down
            remainders.append((l, c - down))
        }
        remainders.sort { $0.remainder > $1.remainder || ($0.remainder == $1.remainder && $0.layer < $1.layer) }
        for entry in remainders where free >= multiple {
            counts[entry.layer] += multiple
            free -= multiple
        }
        for l in layers.indices where counts[l] != layers[l].keptChannels.count {
            let p = priority[l]
            let order = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
            result.layers[l].keptChannels = order.prefix(counts[l]).sorted()
        }
        return result
    }
}
