import Checkpoints

/// Which prunable structures a forward pass computes (design.md decision 3). Per layer: the kept KV groups (each
/// with its query heads), the kept MLP channels, and whether each sublayer runs at all. The forward pass gathers
/// only the kept rows and columns, so a masked pass costs in proportion to what is kept.
public struct StructureMask: Codable, Sendable, Equatable, Hashable {
    /// The kept structures of one decoder layer.
    public struct Layer: Codable, Sendable, Equatable, Hashable {
        /// Kept KV-group ids, ascending, each in `0..<kvHeads`.
        public var keptKVGroups: [Int]
        /// Kept MLP channel ids, ascending, each in `0..<ffnDim`.
        public var keptChannels: [Int]
        /// Whether the attention sublayer runs (false: it adds nothing to the residual).
        public var attention: Bool
        /// Whether the MLP sublayer runs.
        public var mlp: Bool
        /// Kept query-head ids, ascending, each in `0..<queryHeads`, or nil for every query head of the kept KV
        /// groups. When given, `keptKVGroups` must be exactly the groups that keep a query head: a KV group goes
        /// when its last query head goes (the query-head granularity, for models with one or few KV heads).
        public var keptQueryHeads: [Int]?

        public init(keptKVGroups: [Int], keptChannels: [Int], attention: Bool = true, mlp: Bool = true, keptQueryHeads: [Int]? = nil) {
            self.keptKVGroups = keptKVGroups
            self.keptChannels = keptChannels
            self.attention = attention
            self.mlp = mlp
            self.keptQueryHeads = keptQueryHeads
        }

        /// The kept query heads of a layer shaped `spec`: `keptQueryHeads`, or every head of the kept groups.
        public func queryHeads(_ spec: LayerSpec) -> [Int] {
            keptQueryHeads ?? keptKVGroups.flatMap { group in (0..<spec.groupSize).map { group * spec.groupSize + $0 } }
        }

        /// Whether attention contributes anything (on and at least one group kept).
        public var attentionActive: Bool { attention && !keptKVGroups.isEmpty }
        /// Whether the MLP contributes anything (on and at least one channel kept).
        public var mlpActive: Bool { mlp && !keptChannels.isEmpty }
    }

    /// One entry per decoder layer.
    public var layers: [Layer]

    public init(layers: [Layer]) { self.layers = layers }

    /// Keeps everything the config has.
    public static func dense(_ config: ModelConfig) -> StructureMask {
        StructureMask(layers: config.layers.map {
            Layer(keptKVGroups: Array(0..<$0.kvHeads), keptChannels: Array(0..<$0.ffnDim),
                  attention: $0.hasAttention, mlp: $0.hasMLP)
        })
    }

    /// Checks the mask against a config: layer count, ids in range, ascending and unique.
    public func validate(against config: ModelConfig) throws {
        guard layers.count == config.layers.count else {
            throw MaskError.layerCount(expected: config.layers.count, found: layers.count)
        }
        for (i, (layer, spec)) in zip(layers, config.layers).enumerated() {
            try Self.checkIds(layer.keptKVGroups, limit: spec.kvHeads, layer: i, what: "KV group")
            try Self.checkIds(layer.keptChannels, limit: spec.ffnDim, layer: i, what: "MLP channel")
            if let heads = layer.keptQueryHeads {
                try Self.checkIds(heads, limit: spec.queryHeads, layer: i, what: "query head")
                let groups = Array(Set(heads.map { $0 / max(spec.groupSize, 1) })).sorted()
                if groups != layer.keptKVGroups { throw MaskError.groupsWithoutHeads(layer: i, groups: layer.keptKVGroups, fromHeads: groups) }
            }
        }
    }

    private static func checkIds(_ ids: [Int], limit: Int, layer: Int, what: String) throws {
        var previous = -1
        for id in ids {
            if id < 0 || id >= limit { throw MaskError.outOfRange(layer: layer, what: what, id: id, limit: limit) }
            if id <= previous { throw MaskError.notAscending(layer: layer, what: what, id: id) }
            previous = id
        }
    }
}

/// A structure mask that does not fit the model.
public enum MaskError: Error, CustomStringConvertible, Equatable {
    case layerCount(expected: Int, found: Int)
    case outOfRange(layer: Int, what: String, id: Int, limit: Int)
    case notAscending(layer: Int, what: String, id: Int)
    /// Kept query heads given, but the kept KV groups are not exactly the groups of those heads.
    case groupsWithoutHeads(layer: Int, groups: [Int], fromHeads: [Int])

    public var description: String {
        switch self {
        case .layerCount(let e, let f): return "mask has \(f) layers, the model has \(e)"
        case .outOfRange(let l, let w, let id, let lim): return "layer \(l): \(w) id \(id) out of range 0..<\(lim)"
        case .notAscending(let l, let w, let id): return "layer \(l): \(w) ids must be ascending and unique (at \(id))"
        case .groupsWithoutHeads(let l, let g, let h):
            return "layer \(l): kept KV groups \(g) must be the groups of the kept query heads, \(h) (a group goes with its last head)"
        }
    }
}
