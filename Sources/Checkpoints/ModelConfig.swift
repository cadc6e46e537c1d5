/// The shape of one decoder layer. Every model is a list of these (design.md decision 2): uniform checkpoints
/// expand to identical entries, pruned models are simply non-uniform lists.
public struct LayerSpec: Codable, Sendable, Equatable, Hashable {
    /// Number of query heads.
    public var queryHeads: Int
    /// Number of key/value heads (KV groups); `queryHeads` is a multiple of it when both are non-zero.
    public var kvHeads: Int
    /// Width of one head.
    public var headDim: Int
    /// SwiGLU intermediate width (number of MLP channels).
    public var ffnDim: Int
    /// Whether the attention sublayer exists (false: it adds nothing to the residual).
    public var hasAttention: Bool
    /// Whether the MLP sublayer exists.
    public var hasMLP: Bool

    /// Query heads per KV group (0 when the layer has no KV heads).
    public var groupSize: Int { kvHeads == 0 ? 0 : queryHeads / kvHeads }
    /// Rows of the query projection.
    public var queryDim: Int { queryHeads * headDim }
    /// Rows of each of the key and value projections.
    public var kvDim: Int { kvHeads * headDim }

    /// A layer; both sublayers present unless stated.
    public init(queryHeads: Int, kvHeads: Int, headDim: Int, ffnDim: Int, hasAttention: Bool = true, hasMLP: Bool = true) {
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.ffnDim = ffnDim
        self.hasAttention = hasAttention
        self.hasMLP = hasMLP
    }
}

/// Architecture of a LLaMA-family causal LM, independent of the file it came from.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// Source architecture name (`llama`, `qwen2`, `mistral`, ...).
    public var architecture: String
    /// Residual-stream width.
    public var hiddenSize: Int
    /// Vocabulary size (rows of the embedding and of the head).
    public var vocabSize: Int
    /// One entry per decoder layer.
    public var layers: [LayerSpec]
    /// RMSNorm epsilon.
    public var normEpsilon: Float
    /// RoPE base frequency.
    public var ropeTheta: Float
    /// Whether the output head reuses the token embedding.
    public var tiedEmbeddings: Bool
    /// Whether q/k/v projections carry biases (Qwen2 layout).
    public var attentionBias: Bool
    /// Whether each query and key head is RMS-normalised (one `[headDim]` weight per layer for q, one for k)
    /// after the projection and before RoPE (Qwen3 layout).
    public var queryKeyNorm: Bool
    /// How RoPE's inverse frequencies are adjusted (Llama 3.x), or nil for plain RoPE.
    public var ropeScaling: RoPEScaling?
    /// Trained context length (informational; the forward pass does not enforce it).
    public var contextLength: Int
    /// Factor applied to the token embeddings entering layer 0 (Gemma: sqrt(hidden) in Float32), or nil for none.
    /// The tied output head uses the unscaled embedding.
    public var embeddingScale: Float?
    /// Whether each sublayer's output is RMS-normalised (`LayerWeights.postAttentionNorm` / `postMLPNorm`) before
    /// it joins the residual stream (Gemma 2/3 layout).
    public var postSublayerNorms: Bool
    /// The activation of the gated MLP: `act(gate) · up`.
    public var mlpActivation: MLPActivation
    /// Factor on the attention scores q·k, or nil for 1/sqrt(head width) (Gemma 3 27B uses another).
    public var attentionScale: Float?
    /// Sliding-window attention on some layers with their own RoPE base (Gemma 3) or on every layer (Phi-3), or nil
    /// when every layer attends to the whole causal context.
    public var localAttention: LocalAttention?

    /// A model configuration; the family options (`attentionBias`, `queryKeyNorm`, `ropeScaling`, and the Gemma
    /// ones from `embeddingScale` on) default to the plain LLaMA layout.
    public init(architecture: String, hiddenSize: Int, vocabSize: Int, layers: [LayerSpec], normEpsilon: Float,
                ropeTheta: Float, tiedEmbeddings: Bool, attentionBias: Bool = false, queryKeyNorm: Bool = false,
                ropeScaling: RoPEScaling? = nil, contextLength: Int, embeddingScale: Float? = nil,
                postSublayerNorms: Bool = false, mlpActivation: MLPActivation = .silu, attentionScale: Float? = nil,
                localAttention: LocalAttention? = nil) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.vocabSize = vocabSize
        self.layers = layers
        self.normEpsilon = normEpsilon
        self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings
        self.attentionBias = attentionBias
        self.queryKeyNorm = queryKeyNorm
        self.ropeScaling = ropeScaling
        self.contextLength = contextLength
        self.embeddingScale = embeddingScale
        self.postSublayerNorms = postSublayerNorms
        self.mlpActivation = mlpActivation
        self.attentionScale = attentionScale
        self.localAttention = localAttention
    }

    /// The RoPE base of layer `layer`: the local base on a sliding-window layer, else `ropeTheta`.
    public func ropeTheta(layer: Int) -> Float {
        if let local = localAttention, local.isLocal(layer) { return local.ropeTheta }
        return ropeTheta
    }

    /// The RoPE scaling of layer `layer`: none on a Gemma sliding-window layer (llama.cpp's `freq_scale_l`), else
    /// `ropeScaling`.
    public func ropeScaling(layer: Int) -> RoPEScaling? {
        if let local = localAttention, local.isLocal(layer), !local.scalesRoPE { return nil }
        return ropeScaling
    }

    /// How many keys a query of layer `layer` sees, itself included (the sliding window), or nil for all earlier
    /// positions.
    public func attentionWindow(layer: Int) -> Int? {
        if let local = localAttention, local.isLocal(layer) { return local.window }
        return nil
    }
}

/// The activation of a gated MLP (`down(act(gate(x)) · up(x))`).
public enum MLPActivation: String, Codable, Sendable, Equatable {
    /// SiLU: SwiGLU (LLaMA, Qwen, Mistral).
    case silu
    /// GELU with the tanh approximation (Gemma's `gelu_pytorch_tanh`, llama.cpp's `ggml_gelu`).
    case geluTanh
}

/// Sliding-window ("local") attention: the layers marked local attend only to the last `window` positions (a query
/// included) and rotate with `ropeTheta`; the others are global. Gemma 3 interleaves them (five local layers with
/// their own base and no RoPE scaling, then one global); Phi-3 makes every layer local with the model's own base
/// and scaling (`phi3(window:ropeTheta:layers:)`).
public struct LocalAttention: Codable, Sendable, Equatable {
    /// Keys a query sees on a local layer, itself included (transformers: `kv > q - sliding_window`).
    public var window: Int
    /// RoPE base of the local layers.
    public var ropeTheta: Float
    /// One entry per layer: whether it is local.
    public var layers: [Bool]
    /// Whether the local layers apply the model's RoPE scaling (Phi-3) or rotate unscaled (Gemma 3, llama.cpp's
    /// `freq_scale_l`).
    public var scalesRoPE: Bool

    /// A local-attention pattern.
    public init(window: Int, ropeTheta: Float, layers: [Bool], scalesRoPE: Bool = false) {
        self.window = window
        self.ropeTheta = ropeTheta
        self.layers = layers
        self.scalesRoPE = scalesRoPE
    }

    /// Phi-3's form (transformers' `Phi3Model` masks every layer with `sliding_window`): every one of `layers`
    /// layers local, rotating like a global one (base `ropeTheta`, scaled).
    public static func phi3(window: Int, ropeTheta: Float, layers: Int) -> LocalAttention {
        LocalAttention(window: window, ropeTheta: ropeTheta, layers: Array(repeating: true, count: layers), scalesRoPE: true)
    }

    /// Whether this is Phi-3's form for a model with RoPE base `ropeTheta`: every layer local, the global base,
    /// scaled (what GGUF/HF `phi3` can state with one `sliding_window`).
    public func isPhi3Form(ropeTheta global: Float) -> Bool {
        scalesRoPE && ropeTheta == global && layers.allSatisfy { $0 }
    }

    /// llama.cpp's `set_swa_pattern(period)`: layer i is local unless i % period == period - 1 (Gemma 3: five local
    /// layers, then one global).
    public static func pattern(period: Int, layers: Int) -> [Bool] {
        (0..<layers).map { period <= 0 || $0 % period < period - 1 }
    }

    /// Whether layer `layer` is local.
    public func isLocal(_ layer: Int) -> Bool { layer >= 0 && layer < layers.count && layers[layer] }
}

/// Weights of one decoder layer in the canonical layout (design.md decision 1): row-major `[out, in]` Float32,
/// q/k rows in the Hugging Face "rotate-half" RoPE order.
public struct LayerWeights: Sendable {
    /// [hidden]
    public var attentionNorm: [Float]
    /// [queryHeads * headDim, hidden]
    public var wq: [Float]
    /// [kvHeads * headDim, hidden]
    public var wk: [Float]
    /// [kvHeads * headDim, hidden]
    public var wv: [Float]
    /// [hidden, queryHeads * headDim]
    public var wo: [Float]
    /// Optional query bias (Qwen2): [queryHeads * headDim], rotate-half order like `wq`.
    public var bq: [Float]?
    /// Optional key bias: [kvHeads * headDim], rotate-half order like `wk`.
    public var bk: [Float]?
    /// Optional value bias: [kvHeads * headDim].
    public var bv: [Float]?
    /// Optional per-head query RMSNorm weight (Qwen3): [headDim], rotate-half order, shared by every query head.
    public var qNorm: [Float]?
    /// Optional per-head key RMSNorm weight (Qwen3): [headDim], shared by every KV head.
    public var kNorm: [Float]?
    /// Optional RMSNorm weight of the attention output before the residual add (Gemma): [hidden].
    public var postAttentionNorm: [Float]?
    /// [hidden]
    public var mlpNorm: [Float]
    /// [ffnDim, hidden]
    public var gate: [Float]
    /// [ffnDim, hidden]
    public var up: [Float]
    /// [hidden, ffnDim]
    public var down: [Float]
    /// Optional RMSNorm weight of the MLP output before the residual add (Gemma): [hidden].
    public var postMLPNorm: [Float]?

    /// One layer's weights; an absent sublayer (see `LayerSpec`) has empty arrays.
    public init(attentionNorm: [Float], wq: [Float], wk: [Float], wv: [Float], wo: [Float],
                bq: [Float]? = nil, bk: [Float]? = nil, bv: [Float]? = nil, qNorm: [Float]? = nil, kNorm: [Float]? = nil,
                postAttentionNorm: [Float]? = nil, mlpNorm: [Float], gate: [Float], up: [Float], down: [Float],
                postMLPNorm: [Float]? = nil) {
        self.attentionNorm = attentionNorm
        self.wq = wq; self.wk = wk; self.wv = wv; self.wo = wo
        self.bq = bq; self.bk = bk; self.bv = bv
        self.qNorm = qNorm; self.kNorm = kNorm
        self.postAttentionNorm = postAttentionNorm
        self.mlpNorm = mlpNorm
        self.gate = gate; self.up = up; self.down = down
        self.postMLPNorm = postMLPNorm
    }
}

/// All weights of a model in the canonical layout.
public struct ModelWeights: Sendable {
    /// [vocab, hidden]
    public var tokenEmbedding: [Float]
    /// One entry per `ModelConfig.layers` entry.
    public var layers: [LayerWeights]
    /// [hidden]
    public var finalNorm: [Float]
    /// [vocab, hidden]; nil when the head is tied to `tokenEmbedding`.
    public var head: [Float]?

    /// All weights; `head` nil when tied.
    public init(tokenEmbedding: [Float], layers: [LayerWeights], finalNorm: [Float], head: [Float]?) {
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.head = head
    }
}

extension ModelConfig {
    /// Checks that `weights` have exactly the shapes this config implies; the error names the tensor.
    public func validate(_ weights: ModelWeights, file: String) throws {
        func check(_ name: String, _ count: Int, _ expected: Int) throws {
            if count != expected {
                throw CheckpointError.shapeMismatch(file: file, tensor: name, expected: "\(expected) elements", found: "\(count) elements")
            }
        }
        try check("token_embedding", weights.tokenEmbedding.count, vocabSize * hiddenSize)
        try check("final_norm", weights.finalNorm.count, hiddenSize)
        if let head = weights.head { try check("lm_head", head.count, vocabSize * hiddenSize) }
        if case .frequencyFactors(let factors)? = ropeScaling, let hd = layers.first?.headDim, factors.count != hd / 2 {
            throw CheckpointError.shapeMismatch(file: file, tensor: "rope_freqs", expected: "\(hd / 2) elements", found: "\(factors.count) elements")
        }
        if case .longRoPE(let p)? = ropeScaling, let hd = layers.first?.headDim {
            for (name, factors) in [("short_factor", p.shortFactors), ("long_factor", p.longFactors)] where factors.count != hd / 2 {
                throw CheckpointError.shapeMismatch(file: file, tensor: "rope_scaling.\(name)", expected: "\(hd / 2) elements", found: "\(factors.count) elements")
            }
        }
        if let local = localAttention, local.layers.count != layers.count || local.window <= 0 {
            throw CheckpointError.shapeMismatch(file: file, tensor: "local_attention", expected: "\(layers.count) layers, window > 0",
                                                found: "\(local.layers.count) layers, window \(local.window)")
        }
        if weights.layers.count != layers.count {
            throw CheckpointError.shapeMismatch(file: file, tensor: "layers", expected: "\(layers.count) layers", found: "\(weights.layers.count) layers")
        }
        for (i, (spec, w)) in zip(layers, weights.layers).enumerated() {
            let p = "layers.\(i)."
            // A sublayer that is absent (hasAttention/hasMLP false) may keep or drop its norm vector.
            let attentionNormCount = !spec.hasAttention && w.attentionNorm.isEmpty ? 0 : hiddenSize
            let mlpNormCount = !spec.hasMLP && w.mlpNorm.isEmpty ? 0 : hiddenSize
            try check(p + "attention_norm", w.attentionNorm.count, attentionNormCount)
            try check(p + "q_proj", w.wq.count, spec.queryDim * hiddenSize)
            try check(p + "k_proj", w.wk.count, spec.kvDim * hiddenSize)
            try check(p + "v_proj", w.wv.count, spec.kvDim * hiddenSize)
            try check(p + "o_proj", w.wo.count, hiddenSize * spec.queryDim)
            if let b = w.bq { try check(p + "q_proj.bias", b.count, spec.queryDim) }
            if let b = w.bk { try check(p + "k_proj.bias", b.count, spec.kvDim) }
            if let b = w.bv { try check(p + "v_proj.bias", b.count, spec.kvDim) }
            if let n = w.qNorm { try check(p + "q_norm", n.count, spec.headDim) }
            if let n = w.kNorm { try check(p + "k_norm", n.count, spec.headDim) }
            if queryKeyNorm && spec.hasAttention && (w.qNorm == nil || w.kNorm == nil) {
                throw CheckpointError.missingTensor(file: file, tensor: p + (w.qNorm == nil ? "q_norm" : "k_norm"))
            }
            if let n = w.postAttentionNorm { try check(p + "post_attention_norm", n.count, hiddenSize) }
            if let n = w.postMLPNorm { try check(p + "post_mlp_norm", n.count, hiddenSize) }
            if postSublayerNorms && spec.hasAttention && w.postAttentionNorm == nil {
                throw CheckpointError.missingTensor(file: file, tensor: p + "post_attention_norm")
            }
            if postSublayerNorms && spec.hasMLP && w.postMLPNorm == nil {
                throw CheckpointError.missingTensor(file: file, tensor: p + "post_mlp_norm")
            }
            try check(p + "mlp_norm", w.mlpNorm.count, mlpNormCount)
            try check(p + "gate_proj", w.gate.count, spec.ffnDim * hiddenSize)
            try check(p + "up_proj", w.up.count, spec.ffnDim * hiddenSize)
            try check(p + "down_proj", w.down.count, hiddenSize * spec.ffnDim)
        }
    }
}
