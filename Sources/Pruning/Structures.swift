import Checkpoints

/// The two kinds of structure the policy-gradient method scores (spec §1.1): attention KV groups and MLP
/// intermediate channels. They have separate budgets and learning rates unless a joint budget is asked for.
public enum StructureKind: String, Codable, Sendable, CaseIterable {
    /// One KV head together with the `G` query heads that share it.
    case attention
    /// One SwiGLU intermediate channel (row of gate/up, column of down).
    case mlp
}

/// One prunable unit of a LLaMA-family decoder (spec §2.2, §2.7).
public enum PrunableStructure: Hashable, Codable, Sendable {
    /// KV group `group` of layer `layer`: its G query heads' q rows and o columns, its k and v rows.
    case kvGroup(layer: Int, group: Int)
    /// MLP channel `channel` of layer `layer`: gate/up row and down column.
    case mlpChannel(layer: Int, channel: Int)
    /// The whole attention sublayer of a layer (all its KV groups).
    case attentionSublayer(layer: Int)
    /// The whole MLP sublayer of a layer (all its channels).
    case mlpSublayer(layer: Int)
    /// A whole decoder layer (attention and MLP); removing it makes the block the identity.
    case layer(Int)
}

/// Parameter counts split the way the paper reports them (design.md decision 7, spec §2.5): the pruning rate is
/// measured over the attention and MLP projections; embeddings, output head and norms are counted separately.
public struct ParameterCount: Codable, Sendable, Equatable, Hashable {
    /// q, k, v, o projection weights (plus q/k/v biases when the model has them), summed over layers.
    public var attention: Int
    /// gate, up, down projection weights, summed over layers.
    public var mlp: Int
    /// Token embedding table.
    public var embeddings: Int
    /// Output head (0 when tied to the embedding).
    public var head: Int
    /// RMSNorm weights: one per present sublayer plus the final norm.
    public var norms: Int

    public init(attention: Int, mlp: Int, embeddings: Int, head: Int, norms: Int) {
        self.attention = attention
        self.mlp = mlp
        self.embeddings = embeddings
        self.head = head
        self.norms = norms
    }

    enum CodingKeys: String, CodingKey { case attention, mlp, embeddings, head, norms }

    /// The largest count a field may hold when read from a file: 2^53, the largest integer JSON numbers carry
    /// exactly. Bounding each field keeps `prunable` and `total` from overflowing (a plan claiming 2^63-1
    /// attention parameters trapped in `total`).
    public static let maximumCount = 1 << 53

    /// Reads a count record, rejecting negative or impossible values with the key named.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> Int {
            let v = try c.decode(Int.self, forKey: key)
            guard v >= 0, v <= Self.maximumCount else {
                let path = (c.codingPath.map(\.stringValue) + [key.rawValue]).joined(separator: ".")
                throw PruningError.invalidValue(key: path, value: "\(v)", reason: "a parameter count must be in 0...\(Self.maximumCount)")
            }
            return v
        }
        self.init(attention: try count(.attention), mlp: try count(.mlp), embeddings: try count(.embeddings),
                  head: try count(.head), norms: try count(.norms))
    }

    /// The prunable part: attention + MLP projections (the denominator of the paper's pruning rate).
    public var prunable: Int { attention + mlp }
    /// Every parameter of the model.
    public var total: Int { attention + mlp + embeddings + head + norms }
}

extension LayerSpec {
    /// Parameters of one KV group: `(2G + 2) · hd · d` projection weights (G query rows and G o-columns of width
    /// hd, one k and one v row block), plus `(G + 2) · hd` q/k/v bias entries when `attentionBias`.
    public func kvGroupParameterCost(hiddenSize d: Int, attentionBias: Bool) -> Int {
        let g = groupSize
        return (2 * g + 2) * headDim * d + (attentionBias ? (g + 2) * headDim : 0)
    }

    /// Parameters of one MLP channel: a row of gate and up and a column of down, `3 · d`.
    public func mlpChannelParameterCost(hiddenSize d: Int) -> Int { 3 * d }

    /// Attention projection parameters of this layer (0 when the sublayer is absent).
    /// Counted per head (q rows and o columns per query head, k and v rows per KV head), so it also holds after
    /// the query-head granularity left groups of unequal size.
    public func attentionParameters(hiddenSize d: Int, attentionBias: Bool) -> Int {
        guard hasAttention else { return 0 }
        return (2 * queryHeads + 2 * kvHeads) * headDim * d + (attentionBias ? (queryHeads + 2 * kvHeads) * headDim : 0)
    }

    /// MLP projection parameters of this layer (0 when the sublayer is absent).
    public func mlpParameters(hiddenSize d: Int) -> Int {
        hasMLP ? ffnDim * mlpChannelParameterCost(hiddenSize: d) : 0
    }
}

extension ModelConfig {
    /// Parameter count of this model; a pruned (non-uniform) config counts what it has.
    public var parameterCount: ParameterCount {
        let d = hiddenSize
        var attention = 0, mlp = 0, norms = d
        for spec in layers {
            attention += spec.attentionParameters(hiddenSize: d, attentionBias: attentionBias)
            mlp += spec.mlpParameters(hiddenSize: d)
            norms += (spec.hasAttention ? d : 0) + (spec.hasMLP ? d : 0)
            // Qwen3's per-head q/k norms: shared by every head, so no KV group removes them.
            if queryKeyNorm && spec.hasAttention { norms += 2 * spec.headDim }
            // Gemma's post-sublayer norms go with their sublayer.
            if postSublayerNorms { norms += (spec.hasAttention ? d : 0) + (spec.hasMLP ? d : 0) }
        }
        return ParameterCount(attention: attention, mlp: mlp, embeddings: vocabSize * d,
                              head: tiedEmbeddings ? 0 : vocabSize * d, norms: norms)
    }

    /// Number of scored structures of a kind in layer `layer` (KV groups or channels; 0 for an absent sublayer).
    public func structureCount(_ kind: StructureKind, layer: Int) -> Int {
        let spec = layers[layer]
        switch kind {
        case .attention: return spec.hasAttention ? spec.kvHeads : 0
        case .mlp: return spec.hasMLP ? spec.ffnDim : 0
        }
    }

    /// Number of scored structures of a kind over all layers (N_A or N_M of spec §1.3).
    public func structureCount(_ kind: StructureKind) -> Int {
        layers.indices.reduce(0) { $0 + structureCount(kind, layer: $1) }
    }

    /// Parameter cost of one structure of a kind in layer `layer` (one KV group or one channel).
    public func unitParameterCost(_ kind: StructureKind, layer: Int) -> Int {
        let spec = layers[layer]
        switch kind {
        case .attention: return spec.kvGroupParameterCost(hiddenSize: hiddenSize, attentionBias: attentionBias)
        case .mlp: return spec.mlpChannelParameterCost(hiddenSize: hiddenSize)
        }
    }

    /// Parameters removed together with a structure (projection weights and q/k/v biases; norms are not counted,
    /// they are reported separately).
    public func parameterCost(of structure: PrunableStructure) -> Int {
        switch structure {
        case .kvGroup(let l, _): return unitParameterCost(.attention, layer: l)
        case .mlpChannel(let l, _): return unitParameterCost(.mlp, layer: l)
        case .attentionSublayer(let l):
            return layers[l].attentionParameters(hiddenSize: hiddenSize, attentionBias: attentionBias)
        case .mlpSublayer(let l): return layers[l].mlpParameters(hiddenSize: hiddenSize)
        case .layer(let l):
            return parameterCost(of: .attentionSublayer(layer: l)) + parameterCost(of: .mlpSublayer(layer: l))
        }
    }
}

/// Number of structures the hard-mask rule keeps out of `count` distinct scores at keep ratio `keepRatio`
/// (spec §2.4): `count − floor(count · (1 − keepRatio))`, the index computed in Double. Ties can keep more.
public func hardMaskKeptCount(count: Int, keepRatio: Double) -> Int {
    count - min(count, hardMaskIndex(count: count, keepRatio: keepRatio))
}
