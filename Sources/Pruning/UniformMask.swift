import Checkpoints
import Transformer

extension StructureMask {
    /// The uniform plan at a budget (`plan` sizes the exports with it): each kind keeps the run's global count
    /// N − floor(N · (1 − ρ)) (`hardMaskIndex`), spread over the layers as evenly as their sizes allow (the remainder
    /// one structure a layer, first layers first), then MLP channels aligned to multiples of `channelMultiple` per
    /// layer (1: off). With alignment, any plan at that budget has the same widths in all.
    public static func uniform(config: ModelConfig, keepRatios: KeepRatios, channelMultiple: Int) -> StructureMask {
        func counts(_ kind: StructureKind) -> [Int] {
            let sizes = config.layers.indices.map { config.structureCount(kind, layer: $0) }
            let total = sizes.reduce(0, +)
            let target = total - hardMaskIndex(count: total, keepRatio: keepRatios[kind])
            var counts = sizes.map { total == 0 ? 0 : $0 * target / total }
            var left = target - counts.reduce(0, +)
            for l in counts.indices where left > 0 && counts[l] < sizes[l] { counts[l] += 1; left -= 1 }
            return counts
        }
        let attention = counts(.attention), mlp = counts(.mlp)
        let mask = StructureMask(layers: config.layers.indices.map { l in
            StructureMask.Layer(keptKVGroups: Array(0..<attention[l]), keptChannels: Array(0..<mlp[l]))
        })
        return mask.aligningMLPChannels(to: channelMultiple,
                                        priority: config.layers.indices.map { l in (0..<config.structureCount(.mlp, layer: l)).map { -Double($0) } },
                                        config: config)
    }
}
