import Checkpoints
import Kernels

/// One decoder layer's weights as a `LanguageModel` holds them: its only Float32 copy (issue 12 item 5). q/k/v and
/// gate/up are stored stacked, the layout the forward pass multiplies by, so the dense model shares these arrays
/// and a masked model gathers its rows and columns from them. The canonical per-tensor layout (`LayerWeights`) is
/// re-derived on request (`canonical`). Every tensor keeps the shape `spec` gives it, also for an absent sublayer,
/// so the canonical weights come back exactly as they went in.
struct FusedLayerWeights: Sendable {
    /// The layer's shape in the unmasked model.
    let spec: LayerSpec
    /// Residual-stream width (columns of `wqkv` and `wGateUp`).
    let hidden: Int
    /// [hidden], or empty when an absent attention sublayer came without one.
    let attentionNorm: [Float]
    /// [queryDim + 2·kvDim, hidden]: the canonical wq rows, then wk, then wv.
    let wqkv: [Float]
    /// Optional biases (Qwen2): [queryDim], [kvDim], [kvDim].
    let bq: [Float]?, bk: [Float]?, bv: [Float]?
    /// Optional per-head q/k RMSNorm weights (Qwen3): [headDim] each, shared by every head.
    let qNorm: [Float]?, kNorm: [Float]?
    /// [hidden, queryDim]
    let wo: [Float]
    /// [hidden], or empty when an absent MLP sublayer came without one.
    let mlpNorm: [Float]
    /// [2·ffnDim, hidden]: the canonical gate rows, then up rows.
    let wGateUp: [Float]
    /// [ffnDim, hidden]: down_proj transposed, so that a channel's weights are one contiguous row and a masked
    /// model gathers its kept channels as row copies, like gate/up (a column gather cost a tenth of an f32 step).
    let wDownT: [Float]
    /// Optional RMSNorm weights of the sublayer outputs (Gemma): [hidden] each.
    let postAttentionNorm: [Float]?, postMLPNorm: [Float]?

    /// Stacks q/k/v and gate/up of `w` (shaped by `spec`, already validated); the other tensors are shared, not copied.
    init(fusing w: LayerWeights, spec: LayerSpec, hidden: Int) {
        self.spec = spec
        self.hidden = hidden
        attentionNorm = w.attentionNorm
        wqkv = Self.stacking([w.wq, w.wk, w.wv])
        bq = w.bq; bk = w.bk; bv = w.bv
        qNorm = w.qNorm; kNorm = w.kNorm
        wo = w.wo
        mlpNorm = w.mlpNorm
        wGateUp = Self.stacking([w.gate, w.up])
        wDownT = Self.transposing(w.down, rows: hidden, columns: spec.ffnDim)
        postAttentionNorm = w.postAttentionNorm
        postMLPNorm = w.postMLPNorm
    }

    /// Element offset of the first k row in `wqkv`.
    var keyOffset: Int { spec.queryDim * hidden }
    /// Element offset of the first v row in `wqkv`.
    var valueOffset: Int { (spec.queryDim + spec.kvDim) * hidden }
    /// Element offset of the first up row in `wGateUp`.
    var upOffset: Int { spec.ffnDim * hidden }

    /// The layer in the canonical layout: wq, wk, wv, gate and up are copied out of the stacked matrices and down
    /// is transposed back; the norms, biases and wo are shared.
    var canonical: LayerWeights {
        LayerWeights(attentionNorm: attentionNorm,
                     wq: Array(wqkv[0..<keyOffset]), wk: Array(wqkv[keyOffset..<valueOffset]), wv: Array(wqkv[valueOffset...]),
                     wo: wo, bq: bq, bk: bk, bv: bv, qNorm: qNorm, kNorm: kNorm, postAttentionNorm: postAttentionNorm,
                     mlpNorm: mlpNorm, gate: Array(wGateUp[0..<upOffset]), up: Array(wGateUp[upOffset...]),
                     down: Self.transposing(wDownT, rows: spec.ffnDim, columns: hidden),
                     postMLPNorm: postMLPNorm)
    }

    /// `m` ([rows, columns], row-major) transposed to [columns, rows], in 32 × 32 tiles.
    static func transposing(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        precondition(m.count == rows * columns, "transposing: \(m.count) values for \(rows) x \(columns)")
        return [Float](unsafeUninitializedCapacity: m.count) { out, initialized in
            m.withUnsafeBufferPointer { src in
                let s = src.baseAddress, o = out.baseAddress
                guard let s, let o else { return }
                let tile = 32
                for r0 in stride(from: 0, to: rows, by: tile) {
                    for c0 in stride(from: 0, to: columns, by: tile) {
                        for r in r0..<min(rows, r0 + tile) {
                            for c in c0..<min(columns, c0 + tile) { (o + c * rows + r).initialize(to: s[r * columns + c]) }
                        }
                    }
                }
            }
            initialized = m.count
        }
    }

    /// The matrices one after another, allocated once at their exact size.
    private static func stacking(_ parts: [[Float]]) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts { out.append(contentsOf: p) }
        return out
    }
}

/// All weights of a model as a `LanguageModel` holds them: one Float32 copy, shared by the dense model.
struct FusedModelWeights: Sendable {
    /// One entry per `ModelConfig.layers` entry.
    let layers: [FusedLayerWeights]
    /// [vocab, hidden]
    let tokenEmbedding: [Float]
    /// [vocab, hidden]; nil when the head is tied to `tokenEmbedding`.
    let head: [Float]?
    /// [hidden]
    let finalNorm: [Float]

    /// Fuses `weights` (validated against `config`), releasing each canonical layer once it is fused: when the
    /// caller passed the only reference, the canonical q/k/v and gate/up tensors are freed layer by layer, so the
    /// peak is one copy plus the layers in flight, not two copies.
    init(fusing weights: consuming ModelWeights, config: ModelConfig) {
        var canonical = weights.layers
        weights.layers = []
        var fused = [FusedLayerWeights?](repeating: nil, count: canonical.count)
        canonical.withUnsafeMutableBufferPointer { source in
            fused.withUnsafeMutableBufferPointer { out in
                let sourceBase = source.baseAddress!, outBase = out.baseAddress!
                Parallel.forEach(config.layers.count) { i in
                    // Take the layer out of the array so that this is its last reference once fused.
                    let layer = (sourceBase + i).move()
                    (sourceBase + i).initialize(to: LayerWeights(attentionNorm: [], wq: [], wk: [], wv: [], wo: [],
                                                                 mlpNorm: [], gate: [], up: [], down: []))
                    (outBase + i).pointee = FusedLayerWeights(fusing: layer, spec: config.layers[i], hidden: config.hiddenSize)
                }
            }
        }
        layers = fused.map { $0! }
        tokenEmbedding = weights.tokenEmbedding
        head = weights.head
        finalNorm = weights.finalNorm
    }

    /// The weights in the canonical layout (a copy of q/k/v and gate/up; everything else shared).
    var canonical: ModelWeights {
        ModelWeights(tokenEmbedding: tokenEmbedding, layers: layers.map(\.canonical), finalNorm: finalNorm, head: head)
    }
}
