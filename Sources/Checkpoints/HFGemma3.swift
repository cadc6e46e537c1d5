import Foundation

/// The Gemma 3 parts of a `gemma3_text` config.json (transformers' `Gemma3TextConfig`, `Gemma3ForCausalLM`), read
/// as transformers 5.24's `configuration_gemma3.py` and `modeling_gemma3.py` use them; absent keys take that
/// config's defaults. What they mean in `ModelConfig` (`modelConfig(of:)`):
/// - `layer_types` (`sliding_attention` / `full_attention` per layer), else `sliding_window_pattern` (default 6:
///   layer i slides unless (i + 1) % 6 == 0): the sliding layers attend to the last `sliding_window` keys
///   (`kv > q - sliding_window`) and rotate with their own base;
/// - RoPE bases per layer type: `rope_parameters.full_attention` / `.sliding_attention` (transformers 5), or
///   `rope_theta` / `rope_local_base_freq` (4.x; defaults 1e6 / 1e4); only `default` RoPE: a `rope_scaling` or a
///   `rope_type` of another kind (Gemma 3 4B+'s `linear`) is refused naming the key;
/// - the attention scale `query_pre_attn_scalar ** -0.5` (Float32, as torch multiplies the scores);
/// - `hidden_activation` `gelu_pytorch_tanh`; embeddings × sqrt(hidden); RMSNorm after each sublayer; per-head q/k
///   norms; and every norm multiplies by (1 + weight) (`HFConfig.gemma3Names`, `normWeightOffset`).
/// Refused, naming the key: a non-null `final_logit_softcapping` / `attn_logit_softcapping` (Gemma 2's; null in
/// Gemma 3), `use_bidirectional_attention` (EmbeddingGemma), `attention_bias` (it also puts a bias on o_proj).
struct Gemma3TextOptions: Sendable, Equatable {
    /// Keys a sliding layer's query sees, itself included (0 when no layer slides and the key is null).
    var slidingWindow: Int
    /// `layer_types` as given (true: sliding), one entry per layer; nil when the pattern implies them.
    var layerTypes: [Bool]?
    /// `sliding_window_pattern`, used when `layerTypes` is nil.
    var slidingWindowPattern: Int
    /// RoPE base of the global (`full_attention`) layers.
    var globalRopeTheta: Double
    /// RoPE base of the sliding layers.
    var localRopeTheta: Double
    /// `query_pre_attn_scalar`: the scores are multiplied by its inverse square root.
    var queryPreAttentionScalar: Double

    enum CodingKeys: String, CodingKey {
        case slidingWindow = "sliding_window"
        case slidingWindowPattern = "sliding_window_pattern"
        case layerTypes = "layer_types"
        case queryPreAttentionScalar = "query_pre_attn_scalar"
        case hiddenActivation = "hidden_activation"
        case finalLogitSoftcapping = "final_logit_softcapping"
        case attentionLogitSoftcapping = "attn_logit_softcapping"
        case bidirectionalAttention = "use_bidirectional_attention"
        case attentionBias = "attention_bias"
        case ropeParameters = "rope_parameters"
        case ropeTheta = "rope_theta"
        case localRopeTheta = "rope_local_base_freq"
        case ropeScaling = "rope_scaling"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    /// One layer type's entry of transformers 5's nested `rope_parameters`: the same keys as a flat one.
    typealias LayerRoPE = HFConfig.RopeParameters

    /// transformers 5's `rope_parameters` for models with per-layer-type RoPE.
    struct NestedRoPE: Decodable {
        var fullAttention: LayerRoPE?
        var slidingAttention: LayerRoPE?
        enum CodingKeys: String, CodingKey { case fullAttention = "full_attention", slidingAttention = "sliding_attention" }
    }

    /// Reads and checks the Gemma keys of a config with `layerCount` layers; errors name the key and the value.
    init(from decoder: Decoder, file: String, layerCount: Int) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func bad(_ key: String, _ value: Any, _ reason: String) -> CheckpointError {
            .badValue(file: file, key: key, value: "\(value)", reason: reason)
        }
        func get<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T? {
            do {
                return try c.decodeIfPresent(T.self, forKey: key)
            } catch {
                throw bad(key.rawValue, "(unreadable)", "expected \(T.self)")
            }
        }

        let activation = try get(String.self, .hiddenActivation) ?? "gelu_pytorch_tanh"
        guard activation == "gelu_pytorch_tanh" else {
            throw bad(CodingKeys.hiddenActivation.rawValue, activation, "only gelu_pytorch_tanh (Gemma 3's) is supported")
        }
        for key in [CodingKeys.finalLogitSoftcapping, .attentionLogitSoftcapping] {
            if let cap = try get(Double.self, key) { throw bad(key.rawValue, cap, "logit soft-capping is not supported (null in Gemma 3)") }
        }
        if try get(Bool.self, .bidirectionalAttention) == true {
            throw bad(CodingKeys.bidirectionalAttention.rawValue, true, "bidirectional attention (EmbeddingGemma) is not a causal LM")
        }
        if try get(Bool.self, .attentionBias) == true {
            throw bad(CodingKeys.attentionBias.rawValue, true, "Gemma's attention biases include o_proj's, which is not supported")
        }
        if let factor = try get(Double.self, .partialRotaryFactor), factor != 1 {
            throw bad(CodingKeys.partialRotaryFactor.rawValue, factor, "partial RoPE is not supported (only 1.0)")
        }

        queryPreAttentionScalar = try get(Double.self, .queryPreAttentionScalar) ?? 256
        guard queryPreAttentionScalar > 0, queryPreAttentionScalar.isFinite else {
            throw bad(CodingKeys.queryPreAttentionScalar.rawValue, queryPreAttentionScalar, "must be positive")
        }

        if let types = try get([String].self, .layerTypes) {
            guard types.count == layerCount else {
                throw bad(CodingKeys.layerTypes.rawValue, "\(types.count) entries", "needs one per layer (\(layerCount))")
            }
            layerTypes = try types.map { type in
                switch type {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw bad(CodingKeys.layerTypes.rawValue, type, "only sliding_attention and full_attention are supported")
                }
            }
        } else {
            layerTypes = nil
        }
        slidingWindowPattern = try get(Int.self, .slidingWindowPattern) ?? 6
        if layerTypes == nil && slidingWindowPattern <= 0 {
            throw bad(CodingKeys.slidingWindowPattern.rawValue, slidingWindowPattern, "must be positive")
        }
        // transformers' default when the key is absent; a null window on a model with sliding layers is an error.
        let window: Int?
        if c.contains(.slidingWindow), try c.decodeNil(forKey: .slidingWindow) {
            window = nil
        } else {
            window = try get(Int.self, .slidingWindow) ?? 4096
        }
        // Layer 0 slides under any pattern but 1.
        let anySliding = layerTypes?.contains(true) ?? (slidingWindowPattern != 1)
        if anySliding, !(window.map { $0 > 0 } ?? false) {
            throw bad(CodingKeys.slidingWindow.rawValue, window.map { "\($0)" } ?? "null", "sliding layers need a positive window")
        }
        slidingWindow = window ?? 0

        // RoPE: one default rotation per layer type. transformers 5 nests it by layer type; 4.x configs give the two
        // bases and an optional rope_scaling, which transformers applies to the global layers.
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling) {
            let scaling = try get(LayerRoPE.self, .ropeScaling)
            let type = scaling?.ropeType ?? scaling?.type ?? "default"
            if type != "default" { throw bad("\(CodingKeys.ropeScaling.rawValue).rope_type", type, "only default RoPE is supported for gemma3") }
        }
        var global = try get(Double.self, .ropeTheta) ?? 1_000_000
        var local = try get(Double.self, .localRopeTheta) ?? 10_000
        if c.contains(.ropeParameters), try !c.decodeNil(forKey: .ropeParameters) {
            let nested = try get(NestedRoPE.self, .ropeParameters)
            guard let nested, nested.fullAttention != nil || nested.slidingAttention != nil else {
                throw bad(CodingKeys.ropeParameters.rawValue, "(not per layer type)",
                          "gemma3 needs full_attention and sliding_attention entries (transformers ignores a flat one)")
            }
            for (name, entry) in [("full_attention", nested.fullAttention), ("sliding_attention", nested.slidingAttention)] {
                guard let entry else { continue }
                let key = "\(CodingKeys.ropeParameters.rawValue).\(name)"
                let type = entry.ropeType ?? entry.type ?? "default"
                if type != "default" { throw bad("\(key).rope_type", type, "only default RoPE is supported for gemma3") }
                if let factor = entry.partialRotaryFactor, factor != 1 {
                    throw bad("\(key).partial_rotary_factor", factor, "partial RoPE is not supported (only 1.0)")
                }
                if let theta = entry.ropeTheta {
                    if name == "full_attention" { global = theta } else { local = theta }
                }
            }
        }
        for (key, theta) in [(CodingKeys.ropeTheta.rawValue, global), (CodingKeys.localRopeTheta.rawValue, local)] {
            guard theta > 0, theta.isFinite else { throw bad(key, theta, "must be positive") }
        }
        globalRopeTheta = global
        localRopeTheta = local
    }

    /// Whether each of `layerCount` layers slides (call only once the layer count is checked against the tensors).
    func slidingLayers(_ layerCount: Int) -> [Bool] {
        layerTypes ?? LocalAttention.pattern(period: slidingWindowPattern, layers: layerCount)
    }

    /// `config` (a plain description of the layers) with Gemma 3's options: the one model description the GGUF
    /// `gemma3` reader also builds (`GGUFFile.gemma3Options`), under the same architecture name.
    func apply(to config: inout ModelConfig) {
        config.architecture = "gemma3"
        config.ropeTheta = Float(globalRopeTheta)
        config.embeddingScale = Float(Double(config.hiddenSize).squareRoot())
        config.postSublayerNorms = true
        config.queryKeyNorm = true
        config.mlpActivation = .geluTanh
        config.attentionScale = Float(Foundation.pow(queryPreAttentionScalar, -0.5))
        let sliding = slidingLayers(config.layers.count)
        config.localAttention = sliding.contains(true)
            ? LocalAttention(window: slidingWindow, ropeTheta: Float(localRopeTheta), layers: sliding) : nil
    }
}

extension HFConfig {
    /// Gemma 3's tensor names. The norms differ from LLaMA's: `post_attention_layernorm` normalises the attention
    /// output (LLaMA's MLP input norm has that name), `pre_feedforward_layernorm` is the MLP's input norm and
    /// `post_feedforward_layernorm` its output's. Every norm weight is stored as w where the model multiplies by
    /// 1 + w (`Gemma3RMSNorm`); the canonical weight is 1 + w, as llama.cpp's converter stores it.
    static let gemma3Names: WeightNames = {
        var table = names
        let llama = names.layer
        table.layer = { l, t in
            let p = "model.layers.\(l)."
            switch t {
            case .postAttentionNorm: return p + "post_attention_layernorm.weight"
            case .mlpNorm: return p + "pre_feedforward_layernorm.weight"
            case .postMLPNorm: return p + "post_feedforward_layernorm.weight"
            default: return llama(l, t)
            }
        }
        table.normWeightOffset = 1
        return table
    }()
}
