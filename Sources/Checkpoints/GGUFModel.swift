/// Reading a LLaMA-family model's architecture out of GGUF metadata (llama.cpp `llama-hparams` / `llama-arch` keys).
extension GGUFFile {
    /// GGUF architectures this reader builds models for. `llama` and `deci` store q/k rows in the adjacent-pairs
    /// RoPE order (llama.cpp's converter permutes them, and `deci` is the heterogeneous-llama export target);
    /// `qwen2` and `qwen3` use NeoX RoPE, i.e. the Hugging Face rotate-half order; `qwen2` has q/k/v biases and
    /// `qwen3` per-head q/k norms. Llama 3.x RoPE scaling arrives as a `rope_freqs.weight` tensor for any of them.
    /// `gemma3` (NeoX order) adds what `gemma3Options` reads: scaled input embeddings, post-sublayer norms,
    /// GELU-tanh, q/k norms and interleaved sliding-window layers. `phi3` (NeoX order) stacks q/k/v and gate/up
    /// (`names(architecture:)`) and adds what `phi3Options` reads: a sliding window and LongRoPE.
    public static let supportedArchitectures: Set<String> = ["llama", "deci", "qwen2", "qwen3", "gemma3", "phi3"]

    /// llama.cpp's tensor of per-frequency RoPE divisors ([head width / 2], F32), written for Llama 3.x models.
    static let ropeFrequenciesTensor = "rope_freqs.weight"
    /// llama.cpp's LongRoPE divisors beyond the original context ([head width / 2], F32; phi3).
    static let longRoPEFactorsTensor = "rope_factors_long.weight"
    /// llama.cpp's LongRoPE divisors within the original context ([head width / 2], F32; phi3).
    static let shortRoPEFactorsTensor = "rope_factors_short.weight"

    /// An integer metadata value; `missingKey` when absent and required, `badValue` when not an integer.
    func integer(_ key: String) throws -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let v = value.int else { throw CheckpointError.badValue(file: path, key: key, value: "\(value)", reason: "expected an integer") }
        return v
    }

    /// A per-layer integer: one value for every layer, or an array with exactly one entry per layer.
    func perLayer(_ key: String, layers: Int) throws -> [Int]? {
        guard let value = metadata[key] else { return nil }
        if let v = value.int { return Array(repeating: v, count: layers) }
        guard let list = value.ints else {
            throw CheckpointError.badValue(file: path, key: key, value: "\(value.type)", reason: "expected an integer or an integer array")
        }
        guard list.count == layers else {
            throw CheckpointError.badValue(file: path, key: key, value: "array of \(list.count)", reason: "needs one entry per layer (\(layers))")
        }
        if let negative = list.first(where: { $0 < 0 }) {
            throw CheckpointError.badValue(file: path, key: key, value: "\(negative)", reason: "must not be negative")
        }
        return list
    }

    /// The model described by this file's metadata and tensor shapes.
    public func modelConfig() throws -> ModelConfig {
        guard let arch = architecture else { throw CheckpointError.missingKey(file: path, key: "general.architecture") }
        guard Self.supportedArchitectures.contains(arch) else { throw CheckpointError.unknownArchitecture(file: path, architecture: arch) }
        func required(_ key: String) throws -> Int {
            guard let v = try integer(key) else { throw CheckpointError.missingKey(file: path, key: key) }
            guard v > 0 else { throw CheckpointError.badValue(file: path, key: key, value: "\(v)", reason: "must be positive") }
            return v
        }
        let hidden = try required("\(arch).embedding_length")
        let layerCount = try required("\(arch).block_count")
        // Checked before any per-layer array is sized by it: block_count 2^31-1 used to allocate 16 GiB here.
        let perLayerEntries = ["attention.head_count", "attention.head_count_kv", "feed_forward_length"]
            .compactMap { metadata["\(arch).\($0)"].flatMap { if case .array(let a) = $0 { return a.count } else { return nil } } }
        try ModelConfig.checkLayerCount(layerCount, key: "\(arch).block_count",
                                        limit: max(tensorInfos.count, perLayerEntries.max() ?? 0), file: path)
        guard let heads = try perLayer("\(arch).attention.head_count", layers: layerCount) else {
            throw CheckpointError.missingKey(file: path, key: "\(arch).attention.head_count")
        }
        let kvHeads = try perLayer("\(arch).attention.head_count_kv", layers: layerCount) ?? heads
        guard let ffn = try perLayer("\(arch).feed_forward_length", layers: layerCount) else {
            throw CheckpointError.missingKey(file: path, key: "\(arch).feed_forward_length")
        }
        let headDim: Int
        if let k = try integer("\(arch).attention.key_length") {
            headDim = k
        } else {
            guard let firstHeads = heads.first(where: { $0 > 0 }), hidden % firstHeads == 0 else {
                throw CheckpointError.badValue(file: path, key: "\(arch).attention.head_count", value: "\(heads.first ?? 0)",
                                               reason: "cannot derive the head width from embedding_length \(hidden)")
            }
            headDim = hidden / firstHeads
        }
        guard headDim > 0, headDim % 2 == 0 else {
            throw CheckpointError.badValue(file: path, key: "\(arch).attention.key_length", value: "\(headDim)", reason: "head width must be positive and even")
        }
        if let v = try integer("\(arch).attention.value_length"), v != headDim {
            throw CheckpointError.badValue(file: path, key: "\(arch).attention.value_length", value: "\(v)", reason: "must equal the key length \(headDim)")
        }
        if let r = try integer("\(arch).rope.dimension_count"), r != headDim {
            throw CheckpointError.badValue(file: path, key: "\(arch).rope.dimension_count", value: "\(r)", reason: "partial RoPE is not supported (head width \(headDim))")
        }
        var layers: [LayerSpec] = []
        for i in 0..<layerCount {
            let q = heads[i], kv = kvHeads[i]
            guard (q == 0 && kv == 0) || (kv > 0 && q % kv == 0) else {
                throw CheckpointError.badValue(file: path, key: "\(arch).attention.head_count_kv", value: "\(kv)",
                                               reason: "layer \(i): \(q) query heads are not a multiple of \(kv) KV heads")
            }
            layers.append(LayerSpec(queryHeads: q, kvHeads: kv, headDim: headDim, ffnDim: ffn[i], hasAttention: q > 0, hasMLP: ffn[i] > 0))
        }

        let epsKey = "\(arch).attention.layer_norm_rms_epsilon"
        guard let epsValue = metadata[epsKey] else { throw CheckpointError.missingKey(file: path, key: epsKey) }
        guard let eps = epsValue.float, eps >= 0, eps < 1 else {
            throw CheckpointError.badValue(file: path, key: epsKey, value: "\(epsValue)", reason: "expected a float in [0, 1)")
        }
        let thetaKey = "\(arch).rope.freq_base"
        var theta: Float = 10000
        if let value = metadata[thetaKey] {
            guard let t = value.float, t > 0 else { throw CheckpointError.badValue(file: path, key: thetaKey, value: "\(value)", reason: "expected a positive float") }
            theta = t
        }
        if let value = metadata["\(arch).rope.scaling.type"], let type = value.string, type != "none" {
            throw CheckpointError.badValue(file: path, key: "\(arch).rope.scaling.type", value: type, reason: "RoPE scaling is not supported")
        }
        let context = try integer("\(arch).context_length") ?? 2048

        guard let embedding = tensorInfo(named: Self.names.tokenEmbedding) else {
            throw CheckpointError.missingTensor(file: path, tensor: Self.names.tokenEmbedding)
        }
        guard embedding.dims.count == 2 else {
            throw CheckpointError.shapeMismatch(file: path, tensor: embedding.name, expected: "[\(hidden), vocab]", found: "\(embedding.dims)")
        }
        let vocab = embedding.dims[1]
        if let v = try integer("\(arch).vocab_size"), v != vocab {
            throw CheckpointError.badValue(file: path, key: "\(arch).vocab_size", value: "\(v)", reason: "token_embd.weight has \(vocab) rows")
        }
        let hasBias = arch == "qwen2" || tensorInfos.contains { $0.name.hasSuffix(".attn_q.bias") }
        var scaling: RoPEScaling?
        if let info = tensorInfo(named: Self.ropeFrequenciesTensor) {
            guard info.shape == [headDim / 2] else {
                throw CheckpointError.shapeMismatch(file: path, tensor: info.name, expected: "[\(headDim / 2)]", found: "\(info.shape)")
            }
            let factors = try floats(named: info.name)
            if let bad = factors.first(where: { !($0 > 0) || !$0.isFinite }) {
                throw CheckpointError.badValue(file: path, key: info.name, value: "\(bad)", reason: "RoPE frequency factors must be positive")
            }
            scaling = .frequencyFactors(factors)
        }
        var config = ModelConfig(architecture: arch, hiddenSize: hidden, vocabSize: vocab, layers: layers, normEpsilon: eps,
                                 ropeTheta: theta, tiedEmbeddings: tensorInfo(named: Self.names.head) == nil,
                                 attentionBias: hasBias, queryKeyNorm: arch == "qwen3", ropeScaling: scaling,
                                 contextLength: context)
        if arch == "gemma3" { try gemma3Options(&config, heads: heads) }
        if arch == "phi3" { try phi3Options(&config) }
        // No ggml encoding stores an element in less than one bit, so the file bounds the element count.
        let (maxElements, overflow) = file.count.multipliedReportingOverflow(by: 8)
        try config.checkFits(file: path, maxElements: overflow ? .max : maxElements, keys: configKeys(arch))
        return config
    }

    /// The Gemma 3 parts of `config`, as llama.cpp's gemma3 hparams and graph define them (`llama-model.cpp`,
    /// `models/gemma3.cpp`), which transformers' `Gemma3ForCausalLM` computes too:
    /// - input embeddings × sqrt(hidden) (transformers casts the factor to the weights' dtype: Float32 here);
    /// - RMSNorm after each sublayer (`post_attention_norm`, `post_ffw_norm`), per-head q/k norms before RoPE; the
    ///   converter has already added Gemma's `1 +` to every norm weight, so they are used as stored;
    /// - `gelu_pytorch_tanh(gate) · up`;
    /// - sliding window `attention.sliding_window` on five layers of every six (`set_swa_pattern(6)`), those layers
    ///   rotating with `rope.freq_base_swa` (the converter writes transformers' local base; default 10,000), the
    ///   global ones with `rope.freq_base`;
    /// - attention scale 1/sqrt(key_length), except the 62-layer 27B model: 1/sqrt(hidden / heads)
    ///   (`gemma3AttentionScale`).
    func gemma3Options(_ config: inout ModelConfig, heads: [Int]) throws {
        let windowKey = "gemma3.attention.sliding_window"
        guard let window = try integer(windowKey) else { throw CheckpointError.missingKey(file: path, key: windowKey) }
        guard window > 0 else { throw CheckpointError.badValue(file: path, key: windowKey, value: "\(window)", reason: "must be positive") }
        let localBaseKey = "gemma3.rope.freq_base_swa"
        var localBase: Float = 10_000
        if let value = metadata[localBaseKey] {
            guard let base = value.float, base > 0, base.isFinite else {
                throw CheckpointError.badValue(file: path, key: localBaseKey, value: "\(value)", reason: "expected a positive float")
            }
            localBase = base
        }
        if config.ropeScaling != nil {
            // llama.cpp scales only the global layers; not modelled here.
            throw CheckpointError.badValue(file: path, key: Self.ropeFrequenciesTensor, value: "present", reason: "RoPE scaling of gemma3 is not supported")
        }
        let layerCount = config.layers.count
        config.embeddingScale = Float(Double(config.hiddenSize).squareRoot())
        config.postSublayerNorms = true
        config.queryKeyNorm = true
        config.mlpActivation = .geluTanh
        config.localAttention = LocalAttention(window: window, ropeTheta: localBase, layers: LocalAttention.pattern(period: 6, layers: layerCount))
        config.attentionScale = Self.gemma3AttentionScale(hiddenSize: config.hiddenSize, layerCount: layerCount,
                                                          headDim: config.layers.first?.headDim ?? 1, firstLayerHeads: heads.first ?? 0)
    }

    /// The attention scale llama.cpp's gemma3 derives (`f_attention_scale`): 1/sqrt(hidden / layer 0's heads) for
    /// the 62-layer 27B, else 1/sqrt(head width).
    static func gemma3AttentionScale(hiddenSize: Int, layerCount: Int, headDim: Int, firstLayerHeads: Int) -> Float {
        if layerCount == 62, firstLayerHeads > 0 { return 1 / Float(hiddenSize / firstLayerHeads).squareRoot() }
        return 1 / Float(headDim).squareRoot()
    }

    /// The Phi-3 parts of `config`, as llama.cpp's `convert_hf_to_gguf.py` writes them (`Phi3MiniModel`) and
    /// transformers' `Phi3ForCausalLM` computes them:
    /// - `phi3.attention.sliding_window` (0: none, as the converter writes a null window) on every layer, as
    ///   transformers applies it; a window at least `context_length` long hides nothing there and is not kept.
    ///   llama.cpp's phi3 graph currently ignores the window (its loader says so), so llama.cpp and transformers
    ///   differ past it; this follows transformers, the model's reference;
    /// - LongRoPE: `rope_factors_short.weight` / `rope_factors_long.weight`, `rope.scaling.attn_factor` and
    ///   `rope.scaling.original_context_length`, all required once either tensor is present.
    func phi3Options(_ config: inout ModelConfig) throws {
        let windowKey = "phi3.attention.sliding_window"
        if let window = try integer(windowKey) {
            guard window >= 0 else { throw CheckpointError.badValue(file: path, key: windowKey, value: "\(window)", reason: "must not be negative") }
            if window > 0 && window < config.contextLength {
                config.localAttention = .phi3(window: window, ropeTheta: config.ropeTheta, layers: config.layers.count)
            }
        }
        let short = tensorInfo(named: Self.shortRoPEFactorsTensor), long = tensorInfo(named: Self.longRoPEFactorsTensor)
        guard short != nil || long != nil else { return }
        guard let short, let long else {
            throw CheckpointError.missingTensor(file: path, tensor: short == nil ? Self.shortRoPEFactorsTensor : Self.longRoPEFactorsTensor)
        }
        if config.ropeScaling != nil {
            throw CheckpointError.unexpectedTensor(file: path, tensor: Self.ropeFrequenciesTensor + " (beside LongRoPE factors)")
        }
        let half = (config.layers.first?.headDim ?? 0) / 2
        func factors(_ info: GGUFTensorInfo) throws -> [Float] {
            guard info.shape == [half] else {
                throw CheckpointError.shapeMismatch(file: path, tensor: info.name, expected: "[\(half)]", found: "\(info.shape)")
            }
            let values = try floats(info)
            if let bad = values.first(where: { !($0 > 0) || !$0.isFinite }) {
                throw CheckpointError.badValue(file: path, key: info.name, value: "\(bad)", reason: "LongRoPE factors must be positive")
            }
            return values
        }
        let attentionKey = "phi3.rope.scaling.attn_factor", originalKey = "phi3.rope.scaling.original_context_length"
        guard let attentionValue = metadata[attentionKey] else { throw CheckpointError.missingKey(file: path, key: attentionKey) }
        guard let attention = attentionValue.float, attention > 0, attention.isFinite else {
            throw CheckpointError.badValue(file: path, key: attentionKey, value: "\(attentionValue)", reason: "expected a positive float")
        }
        guard let original = try integer(originalKey) else { throw CheckpointError.missingKey(file: path, key: originalKey) }
        guard original > 0 else { throw CheckpointError.badValue(file: path, key: originalKey, value: "\(original)", reason: "must be positive") }
        config.ropeScaling = .longRoPE(LongRoPEScaling(shortFactors: try factors(short), longFactors: try factors(long),
                                                       originalContextLength: original, attentionFactor: attention))
    }

    /// The GGUF keys behind each `ModelConfig` field for architecture `arch`.
    func configKeys(_ arch: String) -> ConfigKeys {
        ConfigKeys(layers: "\(arch).block_count", hidden: "\(arch).embedding_length", heads: "\(arch).attention.head_count",
                   kvHeads: "\(arch).attention.head_count_kv", headDim: "\(arch).attention.key_length",
                   ffn: "\(arch).feed_forward_length", vocab: "token_embd.weight rows", context: "\(arch).context_length")
    }

    /// The q/k row order of this file's architecture.
    var ropeRowOrder: RoPERowOrder { Self.ropeRowOrder(architecture: architecture ?? "") }

    /// The q/k row order llama.cpp uses for `architecture`: NeoX (rotate-half) for the Qwen, Gemma and Phi-3
    /// families, else pairs.
    static func ropeRowOrder(architecture: String) -> RoPERowOrder {
        ["qwen2", "qwen3", "gemma3", "phi3"].contains(architecture) ? .rotateHalf : .adjacentPairs
    }

    /// The weight-name table of `architecture`: `phi3Names` for phi3, else `names`.
    static func names(architecture: String) -> WeightNames { architecture == "phi3" ? phi3Names : names }

    /// llama.cpp's phi3 tensor names: `attn_qkv` ([q; k; v] rows) and `ffn_up` holding [gate; up] rows (its graph
    /// splits the product in halves, SwiGLU on the first); the LongRoPE factors are read by `phi3Options`.
    static let phi3Names: WeightNames = {
        var table = names.fusing(FusedProjections(qkv: { "blk.\($0).attn_qkv.weight" }, gateUp: { "blk.\($0).ffn_up.weight" }))
        table.isIgnorable = { [ropeFrequenciesTensor, longRoPEFactorsTensor, shortRoPEFactorsTensor].contains($0) }
        return table
    }()

    /// llama.cpp's tensor names (`llama-arch.cpp`).
    static let names = WeightNames(
        tokenEmbedding: "token_embd.weight", finalNorm: "output_norm.weight", head: "output.weight",
        layer: { l, t in
            let p = "blk.\(l)."
            switch t {
            case .attentionNorm: return p + "attn_norm.weight"
            case .wq: return p + "attn_q.weight"
            case .wk: return p + "attn_k.weight"
            case .wv: return p + "attn_v.weight"
            case .wo: return p + "attn_output.weight"
            case .bq: return p + "attn_q.bias"
            case .bk: return p + "attn_k.bias"
            case .bv: return p + "attn_v.bias"
            case .qNorm: return p + "attn_q_norm.weight"
            case .kNorm: return p + "attn_k_norm.weight"
            case .postAttentionNorm: return p + "post_attention_norm.weight"
            case .mlpNorm: return p + "ffn_norm.weight"
            case .gate: return p + "ffn_gate.weight"
            case .up: return p + "ffn_up.weight"
            case .down: return p + "ffn_down.weight"
            case .postMLPNorm: return p + "post_ffw_norm.weight"
            }
        },
        isIgnorable: { $0 == ropeFrequenciesTensor })
}
