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

        public init(keptKVGroups: [Int], keptChannels: [Int], attention: Bool = true, mlp: Bool = true) {
            self.keptKVGroups = keptKVGroups
            self.keptChannels = keptChannels
            self.attention = attention
            self.mlp = mlp
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

    public var description: String {
        switch self {
        case .layerCount(let e, let f): return "mask has \(f) layers, the model has \(e)"
        case .outOfRange(let l, let w, let id, let lim): return "layer \(l): \(w) id \(id) out of range 0..<\(lim)"
        case .notAscending(let l, let w, let id): return "layer \(l): \(w) ids must be ascending and unique (at \(id))"
        }
    }
}
