import Essentials
import Foundation

/// A Hugging Face `config.json` for the LLaMA family (`llama` including Llama 3.x RoPE scaling, `mistral`, `qwen2`,
/// `qwen3`, `phi3` including LongRoPE and its sliding window, `gemma3_text` with `Gemma3TextOptions`). Hugging
/// Face's names live only in `CodingKeys`; `init(from:)` validates and throws `CheckpointError` naming the key and
/// its value. The families differ only in fields of `ModelConfig` (`attentionBias`, `queryKeyNorm`, `ropeScaling`,
/// `localAttention`, the Gemma options) and in their tensor names (`weightNames`: Phi-3's stacked tensors, Gemma's
/// norms); there is one forward pass for all of them.
public struct HFConfig: Decodable, Sendable, Equatable {
    /// `model_type`.
    public var modelType: String
    /// Residual width.
    public var hiddenSize: Int
    /// SwiGLU width (all layers unless `intermediateSizePerLayer` is given).
    public var intermediateSize: Int
    /// Number of decoder layers.
    public var layerCount: Int
    /// Query heads per layer (model-wide value).
    public var attentionHeads: Int
    /// KV heads per layer (model-wide value; defaults to `attentionHeads`, 4 for gemma3_text).
    public var kvHeads: Int
    /// Width of one head (defaults to hidden / heads, 256 for gemma3_text).
    public var headDim: Int
    /// RMSNorm epsilon (LlamaConfig default 1e-6).
    public var rmsNormEps: Double
    /// RoPE base (`rope_theta`, or `rope_parameters.rope_theta` in transformers v5; default 10000). gemma3_text: the
    /// global layers' base (`Gemma3TextOptions`; default 1e6).
    public var ropeTheta: Double
    /// Whether `lm_head` reuses the embedding (default false; true for gemma3_text).
    public var tieWordEmbeddings: Bool
    /// Vocabulary size.
    public var vocabSize: Int
    /// Trained context length (default 2048; 131072 for gemma3_text).
    public var maxPositionEmbeddings: Int
    /// Whether q/k/v carry biases (always for qwen2; `attention_bias` for llama and qwen3).
    public var attentionBias: Bool
    /// Whether q and k heads are RMS-normalised before RoPE (qwen3; gemma3_text sets it in `modelConfig`).
    public var queryKeyNorm: Bool
    /// Llama 3.x RoPE scaling from `rope_scaling` or `rope_parameters`, else nil.
    public var ropeScaling: RoPEScaling?
    /// `sliding_window` when not null. Mistral's is recorded, not applied: the forward pass attends to the whole
    /// context, which equals sliding-window attention only for contexts up to this many tokens. Phi-3's is applied
    /// to every layer, as transformers' `Phi3Model` does, when it is shorter than `max_position_embeddings`
    /// (Phi-3-mini-4k: 2047 of 4096; the 128k models' 262144 hides nothing within their context).
    public var slidingWindow: Int?
    /// Per-layer query heads of a heterogeneous (pruned) export (design.md section 6), else nil.
    public var attentionHeadsPerLayer: [Int]?
    /// Per-layer KV heads of a heterogeneous export, else nil.
    public var kvHeadsPerLayer: [Int]?
    /// Per-layer SwiGLU widths of a heterogeneous export, else nil.
    public var intermediateSizePerLayer: [Int]?
    /// Gemma 3's window pattern, RoPE bases and attention scale (`gemma3_text`), else nil.
    var gemma3: Gemma3TextOptions?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case attentionHeads = "num_attention_heads"
        case kvHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeParameters = "rope_parameters"
        case ropeScaling = "rope_scaling"
        case tieWordEmbeddings = "tie_word_embeddings"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act"
        case attentionHeadsPerLayer = "num_attention_heads_per_layer"
        case kvHeadsPerLayer = "num_key_value_heads_per_layer"
        case intermediateSizePerLayer = "intermediate_size_per_layer"
        case slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// transformers v5 `rope_parameters`, or the older `rope_scaling` (default RoPE, `llama3`, or Phi-3's `longrope`).
    struct RopeParameters: Decodable {
        var ropeTheta: Double?
        var ropeType: String?
        /// Older configs name the scaling kind `type`.
        var type: String?
        var factor: Double?
        var lowFreqFactor: Double?
        var highFreqFactor: Double?
        var originalMaxPositionEmbeddings: Int?
        var shortFactor: [Double]?
        var longFactor: [Double]?
        var attentionFactor: Double?
        var partialRotaryFactor: Double?
        enum CodingKeys: String, CodingKey {
            case ropeTheta = "rope_theta", ropeType = "rope_type", type, factor
            case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case shortFactor = "short_factor", longFactor = "long_factor", attentionFactor = "attention_factor"
            case partialRotaryFactor = "partial_rotary_factor"
        }
    }

    /// The architectures this reader understands.
    public static let supportedModelTypes: Set<String> = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text"]

    /// Key for `JSONDecoder.userInfo`: the file path named in errors.
    public static let fileKey = CodingUserInfoKey(rawValue: "policyprune.checkpoint.file")!

    /// Decodes and validates; errors name the key and its value (file path from `userInfo[fileKey]`).
    public init(from decoder: Decoder) throws {
        let file = decoder.userInfo[Self.fileKey] as? String ?? "config.json"
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func bad(_ key: CodingKeys, _ value: Any, _ reason: String) -> CheckpointError {
            .badValue(file: file, key: key.rawValue, value: "\(value)", reason: reason)
        }
        // Wraps DecodingError (wrong JSON type) into an error naming the key.
        func get<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T? {
            do {
                return try c.decodeIfPresent(T.self, forKey: key)
            } catch let error as CheckpointError {
                throw error
            } catch {
                throw bad(key, "(unreadable)", "expected \(T.self)")
            }
        }
        func require<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T {
            guard let v = try get(T.self, key) else { throw CheckpointError.missingKey(file: file, key: key.rawValue) }
            return v
        }
        func positive(_ key: CodingKeys) throws -> Int {
            let v = try require(Int.self, key)
            guard v > 0 else { throw bad(key, v, "must be positive") }
            return v
        }

        modelType = try require(String.self, .modelType)
        if modelType == "gemma3" {
            // Gemma3ForConditionalGeneration (4B, 12B, 27B): the text model sits in text_config beside a vision
            // tower, its tensors under language_model, its global RoPE scaled (linear): not read.
            throw bad(.modelType, modelType, "multimodal Gemma 3 (text_config + vision_config) is not supported; only the text-only gemma3_text (Gemma3ForCausalLM: 270M, 1B)")
        }
        guard Self.supportedModelTypes.contains(modelType) else {
            throw CheckpointError.unknownArchitecture(file: file, architecture: modelType)
        }
        // Gemma 3 names its activation hidden_activation (transformers ignores a hidden_act there), and several of
        // its defaults differ from LlamaConfig's (Gemma3TextConfig: head_dim 256, 4 KV heads, tied, 131072).
        let isGemma3 = modelType == "gemma3_text"
        if !isGemma3, let act = try get(String.self, .hiddenAct), act != "silu" { throw bad(.hiddenAct, act, "only silu (SwiGLU) is supported") }
        hiddenSize = try positive(.hiddenSize)
        intermediateSize = try positive(.intermediateSize)
        layerCount = try positive(.layerCount)
        attentionHeads = try positive(.attentionHeads)
        gemma3 = isGemma3 ? try Gemma3TextOptions(from: decoder, file: file, layerCount: layerCount) : nil
        kvHeads = try get(Int.self, .kvHeads) ?? (isGemma3 ? 4 : attentionHeads)
        guard kvHeads > 0, attentionHeads % kvHeads == 0 else { throw bad(.kvHeads, kvHeads, "must divide num_attention_heads \(attentionHeads)") }
        if let d = try get(Int.self, .headDim) ?? (isGemma3 ? 256 : nil) {
            guard d > 0, d % 2 == 0 else { throw bad(.headDim, d, "must be positive and even") }
            headDim = d
        } else {
            guard hiddenSize % attentionHeads == 0, (hiddenSize / attentionHeads) % 2 == 0 else {
                throw bad(.attentionHeads, attentionHeads, "hidden_size \(hiddenSize) / heads must be an even integer")
            }
            headDim = hiddenSize / attentionHeads
        }
        rmsNormEps = try get(Double.self, .rmsNormEps) ?? 1e-6
        guard rmsNormEps >= 0, rmsNormEps < 1 else { throw bad(.rmsNormEps, rmsNormEps, "must be in [0, 1)") }

        let parameters = try get(RopeParameters.self, .ropeParameters)
        var scalingSource: (key: String, parameters: RopeParameters)? = parameters.map { ("rope_parameters", $0) }
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling), let scaling = try get(RopeParameters.self, .ropeScaling) {
            scalingSource = ("rope_scaling", scaling)
        }
        maxPositionEmbeddings = try get(Int.self, .maxPositionEmbeddings) ?? (isGemma3 ? 131_072 : 2048)
        // Partial RoPE (Phi-4-mini: 0.75) rotates only the first part of each head; the forward pass rotates whole heads.
        for (key, factor) in [("partial_rotary_factor", try get(Double.self, .partialRotaryFactor)),
                              ("rope_parameters.partial_rotary_factor", parameters?.partialRotaryFactor),
                              ("rope_scaling.partial_rotary_factor", scalingSource?.parameters.partialRotaryFactor)] {
            if let factor, factor != 1 {
                throw CheckpointError.badValue(file: file, key: key, value: "\(factor)", reason: "partial RoPE is not supported (only 1.0)")
            }
        }
        ropeScaling = nil
        if let (key, p) = scalingSource {
            let type = p.ropeType ?? p.type ?? "default"
            switch type {
            case "default":
                break
            case "llama3":
                func value(_ name: String, _ v: Double?) throws -> Float {
                    guard let v, v > 0, v.isFinite else {
                        throw CheckpointError.badValue(file: file, key: "\(key).\(name)", value: v.map { "\($0)" } ?? "(missing)",
                                                       reason: "llama3 RoPE scaling needs a positive \(name)")
                    }
                    return Float(v)
                }
                let original = p.originalMaxPositionEmbeddings ?? 0
                guard original > 0 else {
                    throw CheckpointError.badValue(file: file, key: "\(key).original_max_position_embeddings", value: "\(original)",
                                                   reason: "llama3 RoPE scaling needs a positive original context")
                }
                let low = try value("low_freq_factor", p.lowFreqFactor), high = try value("high_freq_factor", p.highFreqFactor)
                guard high > low else {
                    throw CheckpointError.badValue(file: file, key: "\(key).high_freq_factor", value: "\(high)",
                                                   reason: "must exceed low_freq_factor \(low)")
                }
                ropeScaling = .llama3(Llama3RoPEScaling(factor: try value("factor", p.factor), lowFrequencyFactor: low,
                                                        highFrequencyFactor: high, originalContextLength: original))
            case "longrope" where modelType == "phi3", "su" where modelType == "phi3":
                ropeScaling = .longRoPE(try Self.longRoPE(p, key: key, file: file, headDim: headDim, contextLength: maxPositionEmbeddings,
                                                          topLevelOriginal: try get(Int.self, .originalMaxPositionEmbeddings)))
            default:
                throw CheckpointError.badValue(file: file, key: "\(key).rope_type", value: type,
                                               reason: "only default and llama3 RoPE (and longrope for phi3) are supported")
            }
        }
        ropeTheta = try get(Double.self, .ropeTheta) ?? parameters?.ropeTheta ?? 10000
        if let gemma3 {
            // Per layer type, read and checked (default RoPE only) by Gemma3TextOptions.
            ropeTheta = gemma3.globalRopeTheta
            ropeScaling = nil
        }
        guard ropeTheta > 0 else { throw bad(.ropeTheta, ropeTheta, "must be positive") }
        tieWordEmbeddings = try get(Bool.self, .tieWordEmbeddings) ?? isGemma3
        vocabSize = try positive(.vocabSize)
        attentionBias = modelType == "qwen2" ? true : (try get(Bool.self, .attentionBias) ?? false)
        queryKeyNorm = modelType == "qwen3"
        if try get(Bool.self, .useSlidingWindow) == true {
            throw bad(.useSlidingWindow, true, "sliding-window attention is not supported")
        }
        // Qwen configs carry a sliding_window that applies only with use_sliding_window; Mistral's and Phi-3's
        // apply when set.
        slidingWindow = ["mistral", "phi3"].contains(modelType) ? try get(Int.self, .slidingWindow) : nil
        if let window = slidingWindow, window <= 0 { throw bad(.slidingWindow, window, "must be positive or null") }
        if try get(Bool.self, .mlpBias) == true { throw bad(.mlpBias, true, "MLP biases are not supported") }

        func perLayer(_ key: CodingKeys) throws -> [Int]? {
            guard let list = try get([Int].self, key) else { return nil }
            guard list.count == layerCount else { throw bad(key, list, "needs one entry per layer (\(layerCount))") }
            if let negative = list.first(where: { $0 < 0 }) { throw bad(key, negative, "must not be negative") }
            return list
        }
        attentionHeadsPerLayer = try perLayer(.attentionHeadsPerLayer)
        kvHeadsPerLayer = try perLayer(.kvHeadsPerLayer)
        intermediateSizePerLayer = try perLayer(.intermediateSizePerLayer)
        // The model-wide pair was checked above; only per-layer lists (whose length is bounded by the JSON) need a
        // loop, so a hostile num_hidden_layers alone never drives one.
        let hasPerLayerHeads = attentionHeadsPerLayer != nil || kvHeadsPerLayer != nil
        for i in 0..<(hasPerLayerHeads ? layerCount : 0) {
            let q = attentionHeadsPerLayer?[i] ?? attentionHeads, kv = kvHeadsPerLayer?[i] ?? kvHeads
            guard (q == 0 && kv == 0) || (kv > 0 && q % kv == 0) else {
                throw bad(.kvHeadsPerLayer, kv, "layer \(i): \(q) query heads are not a multiple of \(kv) KV heads")
            }
        }
    }

    /// Phi-3's LongRoPE from `rope_scaling` / `rope_parameters` (`key`), as transformers' Phi3Config and
    /// `_compute_longrope_parameters` read it: the top-level `original_max_position_embeddings` first (Phi3Config
    /// gives it priority; default 4096), `factor` defaulting to `max_position_embeddings` / original, and
    /// `attention_factor` defaulting to sqrt(1 + ln factor / ln original).
    static func longRoPE(_ p: RopeParameters, key: String, file: String, headDim: Int, contextLength: Int,
                         topLevelOriginal: Int?) throws -> LongRoPEScaling {
        func factors(_ name: String, _ values: [Double]?) throws -> [Float] {
            guard let values, !values.isEmpty else {
                throw CheckpointError.missingKey(file: file, key: "\(key).\(name)")
            }
            guard values.count == headDim / 2 else {
                throw CheckpointError.badValue(file: file, key: "\(key).\(name)", value: "\(values.count) entries",
                                               reason: "needs one per frequency of a head of width \(headDim) (\(headDim / 2))")
            }
            if let bad = values.first(where: { !($0 > 0) || !$0.isFinite }) {
                throw CheckpointError.badValue(file: file, key: "\(key).\(name)", value: "\(bad)", reason: "LongRoPE factors must be positive")
            }
            return values.map(Float.init)
        }
        let short = try factors("short_factor", p.shortFactor), long = try factors("long_factor", p.longFactor)
        let original = topLevelOriginal ?? p.originalMaxPositionEmbeddings ?? 4096
        guard original > 0 else {
            throw CheckpointError.badValue(file: file, key: "original_max_position_embeddings", value: "\(original)", reason: "must be positive")
        }
        let factor = p.factor ?? Double(contextLength) / Double(original)
        let attention = p.attentionFactor.map(Float.init)
            ?? LongRoPEScaling.defaultAttentionFactor(factor: factor, originalContextLength: original)
        guard attention > 0, attention.isFinite else {
            throw CheckpointError.badValue(file: file, key: "\(key).attention_factor", value: "\(attention)", reason: "must be positive")
        }
        return LongRoPEScaling(shortFactors: short, longFactors: long, originalContextLength: original, attentionFactor: attention)
    }

    /// Parses `config.json` at `path`.
    public static func load(path: String) throws -> HFConfig {
        let file = try MappedFile(checkpoint: path)
        let bytes = try file.bytes(at: 0, length: file.count, "config JSON")
        let decoder = JSONDecoder()
        decoder.userInfo[fileKey] = path
        do {
            return try decoder.decode(HFConfig.self, from: Data(bytes))
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError.corrupt(file: path, reason: "not a JSON object: \(error.localizedDescription)")
        }
    }

    /// The longest per-layer list (0 without any): with `num_hidden_layers` it bounds the layer count.
    var perLayerEntryCount: Int {
        [attentionHeadsPerLayer, kvHeadsPerLayer, intermediateSizePerLayer].map { $0?.count ?? 0 }.max() ?? 0
    }

    /// The config.json keys behind each `ModelConfig` field.
    static let configKeys = ConfigKeys(
        layers: CodingKeys.layerCount.rawValue, hidden: CodingKeys.hiddenSize.rawValue, heads: CodingKeys.attentionHeads.rawValue,
        kvHeads: CodingKeys.kvHeads.rawValue, headDim: CodingKeys.headDim.rawValue, ffn: CodingKeys.intermediateSize.rawValue,
        vocab: CodingKeys.vocabSize.rawValue, context: CodingKeys.maxPositionEmbeddings.rawValue)

    /// The architecture as `[LayerSpec]` (a layer with 0 heads has no attention; 0 channels, no MLP). It has one
    /// entry per `num_hidden_layers`: check that against the tensors present (`ModelConfig.checkLayerCount`, as
    /// `CheckpointLoader` does) before asking for it on an untrusted file.
    public var modelConfig: ModelConfig {
        let layers = (0..<layerCount).map { i -> LayerSpec in
            let q = attentionHeadsPerLayer?[i] ?? attentionHeads
            let kv = kvHeadsPerLayer?[i] ?? kvHeads
            let ffn = intermediateSizePerLayer?[i] ?? intermediateSize
            return LayerSpec(queryHeads: q, kvHeads: kv, headDim: headDim, ffnDim: ffn, hasAttention: q > 0, hasMLP: ffn > 0)
        }
        var config = ModelConfig(architecture: modelType, hiddenSize: hiddenSize, vocabSize: vocabSize, layers: layers,
                                 normEpsilon: Float(rmsNormEps), ropeTheta: Float(ropeTheta), tiedEmbeddings: tieWordEmbeddings,
                                 attentionBias: attentionBias, queryKeyNorm: queryKeyNorm, ropeScaling: ropeScaling,
                                 contextLength: maxPositionEmbeddings)
        if modelType == "phi3", let window = slidingWindow, window < maxPositionEmbeddings {
            config.localAttention = .phi3(window: window, ropeTheta: Float(ropeTheta), layers: layerCount)
        }
        gemma3?.apply(to: &config)
        return config
    }

    /// The weight-name table of this config's family: Phi-3 stacks q/k/v and gate/up (`phi3Names`), Gemma 3 names
    /// its norms its own way and stores them as w of 1 + w (`gemma3Names`).
    var weightNames: WeightNames { Self.names(modelType: modelType) }

    /// The weight-name table of `model_type` `modelType`.
    static func names(modelType: String) -> WeightNames {
        switch modelType {
        case "phi3": return phi3Names
        case "gemma3_text": return gemma3Names
        default: return names
        }
    }

    /// Phi-3's tensor names: `self_attn.qkv_proj` ([q; k; v] rows) and `mlp.gate_up_proj` ([gate; up] rows), the
    /// rest as `names`.
    static let phi3Names = names.fusing(FusedProjections(
        qkv: { "model.layers.\($0).self_attn.qkv_proj.weight" }, gateUp: { "model.layers.\($0).mlp.gate_up_proj.weight" }))

    /// Hugging Face tensor names (`model.layers.N.self_attn.q_proj.weight`, ...).
    static let names = WeightNames(
        tokenEmbedding: "model.embed_tokens.weight", finalNorm: "model.norm.weight", head: "lm_head.weight",
        layer: { l, t in
            let p = "model.layers.\(l)."
            switch t {
            case .attentionNorm: return p + "input_layernorm.weight"
            case .wq: return p + "self_attn.q_proj.weight"
            case .wk: return p + "self_attn.k_proj.weight"
            case .wv: return p + "self_attn.v_proj.weight"
            case .wo: return p + "self_attn.o_proj.weight"
            case .bq: return p + "self_attn.q_proj.bias"
            case .bk: return p + "self_attn.k_proj.bias"
            case .bv: return p + "self_attn.v_proj.bias"
            case .qNorm: return p + "self_attn.q_norm.weight"
            case .kNorm: return p + "self_attn.k_norm.weight"
            // Gemma's post-sublayer norms (`gemma3Names` names them its own way): never expected in this table,
            // named so that a stray tensor is reported by a readable name.
            case .postAttentionNorm: return p + "post_attention_norm.weight"
            case .postMLPNorm: return p + "post_feedforward_layernorm.weight"
            case .mlpNorm: return p + "post_attention_layernorm.weight"
            case .gate: return p + "mlp.gate_proj.weight"
            case .up: return p + "mlp.up_proj.weight"
            case .down: return p + "mlp.down_proj.weight"
            }
        },
        // Old checkpoints saved the RoPE inverse frequencies as buffers; they are recomputed from rope_theta.
        isIgnorable: { $0.hasSuffix(".self_attn.rotary_emb.inv_freq") })
}
