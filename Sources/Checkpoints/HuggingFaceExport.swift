import Essentials
import Foundation

/// The `hf` export: a folder with `model.safetensors` (Hugging Face names, rotate-half q/k rows), `config.json`
/// and the tokenizer files (design.md section 6).
enum HuggingFaceExport {
    static func write(_ request: ExportRequest, to path: String, force: Bool) throws -> ExportResult {
        let config = request.config
        let uniform = ModelExporter.isUniform(config)
        try ModelExporter.checkFamilyFits(config, arch: hfFamily(config).modelType, format: "hf")
        var notes: [String] = []
        let configJSON = try configJSON(config, uniform: uniform, dtype: request.dtype, tokenizer: request.tokenizer)
        var metadata = request.provenance
        metadata["format"] = "pt"
        var written: [(String, Int)] = []
        try AtomicOutput.writeDirectory(path, force: force) { folder in
            func inFolder(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
            let names = HFConfig.names(modelType: hfFamily(config).modelType)
            let records = WeightAssembly.records(config, request.weights, names: names, order: .rotateHalf)
            try SafetensorsWriter.write(records, dtype: request.dtype, metadata: metadata, to: inFolder("model.safetensors"))
            try AtomicOutput.writeData(configJSON, to: inFolder("config.json"))
            func plainName(_ name: String) throws -> String {
                guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
                    throw CheckpointWriteError.unsupportedModel(format: "hf", reason: "file name '\(name)' must be a plain file name")
                }
                return name
            }
            if !request.tokenizerFiles.isEmpty {
                for (name, data) in request.tokenizerFiles.sorted(by: { $0.key < $1.key }) {
                    try AtomicOutput.writeData(data, to: inFolder(try plainName(name)))
                }
            } else {
                try copyTokenizer(request.tokenizer, into: inFolder, notes: &notes)
            }
            for (name, data) in request.extraFiles.sorted(by: { $0.key < $1.key }) {
                try AtomicOutput.writeData(data, to: inFolder(try plainName(name)))
            }
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
                written.append((name, ModelExporter.size(of: inFolder(name))))
            }
        }
        if !uniform {
            notes.append("heterogeneous model: config.json carries per-layer lists; Hugging Face transformers cannot build it (tensor shapes differ per layer), PolicyPrune and the plan beside it can")
        } else if case .longRoPE? = config.ropeScaling, let layer = config.layers.first, layer.queryDim != config.hiddenSize {
            notes.append("transformers' Phi3Config checks the LongRoPE factor count against hidden_size / num_attention_heads (\(config.hiddenSize / max(layer.queryHeads, 1) / 2), not head_dim / 2 = \(layer.headDim / 2)) and refuses this config; PolicyPrune reads it")
        } else if config.architecture == "gemma3", let layer = config.layers.first, layer.queryHeads > 0, config.hiddenSize % layer.queryHeads != 0 {
            // Gemma3TextConfig.validate_architecture, although head_dim is stated and the model never divides.
            notes.append("transformers' Gemma3TextConfig requires hidden_size to be a multiple of num_attention_heads (\(config.hiddenSize) % \(layer.queryHeads) = \(config.hiddenSize % layer.queryHeads)) and refuses this config; PolicyPrune reads it (keep a head count that divides \(config.hiddenSize) for transformers)")
        }
        return ExportResult(path: path, files: written, architecture: hfFamily(config).modelType,
                            uniform: uniform, notes: notes)
    }

    /// Copies the source's tokenizer files into the folder; a GGUF tokenizer needs converting
    /// (`ExportRequest.tokenizerFiles`), so without that only a note is left.
    static func copyTokenizer(_ tokenizer: TokenizerSource, into inFolder: (String) -> String, notes: inout [String]) throws {
        switch tokenizer {
        case .huggingFaceJSON(let json):
            try copy(json, to: inFolder("tokenizer.json"))
            // The files transformers reads beside tokenizer.json, when the source has them.
            let source = (json as NSString).deletingLastPathComponent
            for name in ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let file = (source as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: file) { try copy(file, to: inFolder(name)) }
            }
        case .llama2c(let bin):
            try copy(bin, to: inFolder((bin as NSString).lastPathComponent))
        case .gguf:
            notes.append("the GGUF tokenizer (tokenizer.ggml.*) was not converted to tokenizer.json (no tokenizer files given); export as gguf to keep it")
        case .none:
            notes.append("the source has no tokenizer; none written")
        }
    }

    /// `config.json`: a plain `LlamaForCausalLM` (or `Qwen2ForCausalLM`, `Qwen3ForCausalLM`, `Phi3ForCausalLM`,
    /// `Gemma3ForCausalLM`) config when uniform; otherwise the same
    /// keys plus `num_attention_heads_per_layer`, `num_key_value_heads_per_layer`, `intermediate_size_per_layer`
    /// and the removed sublayers (`no_op_attention_layers`, `no_op_mlp_layers`, in DeciLM's words).
    static func configJSON(_ config: ModelConfig, uniform: Bool, dtype: WeightDType, tokenizer: TokenizerSource) throws -> Data {
        let family = hfFamily(config)
        // Model-wide values: the first layer with attention / an MLP (the per-layer lists override them).
        let attentionLayer = config.layers.first { $0.hasAttention && $0.kvHeads > 0 }
        let heads = attentionLayer?.queryHeads ?? 1
        let kvHeads = attentionLayer?.kvHeads ?? 1
        let ffn = config.layers.first { $0.hasMLP && $0.ffnDim > 0 }?.ffnDim ?? 1
        let headDim = config.layers.first?.headDim ?? config.hiddenSize / max(heads, 1)
        var json: [String: Any] = [
            "architectures": [family.className],
            "model_type": family.modelType,
            "hidden_size": config.hiddenSize,
            "intermediate_size": ffn,
            "num_hidden_layers": config.layers.count,
            "num_attention_heads": heads,
            "num_key_value_heads": kvHeads,
            "head_dim": headDim,
            "hidden_act": "silu",
            "rms_norm_eps": shortestDecimal(config.normEpsilon),
            "rope_theta": shortestDecimal(config.ropeTheta),
            "max_position_embeddings": config.contextLength,
            "vocab_size": config.vocabSize,
            "tie_word_embeddings": config.tiedEmbeddings,
            "attention_bias": config.attentionBias,
            "mlp_bias": false,
            "use_cache": true,
            "initializer_range": 0.02,
            "torch_dtype": ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][dtype.rawValue] ?? "float32",
        ]
        if ["qwen2", "phi3"].contains(family.modelType) { json.removeValue(forKey: "attention_bias"); json.removeValue(forKey: "mlp_bias") }
        if family.modelType == "gemma3_text" {
            json.removeValue(forKey: "hidden_act")
            json.removeValue(forKey: "mlp_bias")
            json.merge(try gemma3Keys(config, tokenizer: tokenizer)) { _, gemma in gemma }
        }
        if family.modelType == "phi3" {
            // Phi3Config: the window (null for none) applies to every layer (checkFamilyFits admitted only that
            // form); original_max_position_embeddings is LongRoPE's pretraining length, else the context.
            json["sliding_window"] = config.localAttention.map { $0.window as Any } ?? NSNull()
            var original = config.contextLength
            if case .longRoPE(let p)? = config.ropeScaling { original = p.originalContextLength }
            json["original_max_position_embeddings"] = original
            // Phi3Config defaults pad_token_id to 32000, and transformers refuses a padding id outside the
            // vocabulary: the GGUF's padding id, else that default while the vocabulary holds it, else null.
            var padding: Any = config.vocabSize > 32000 ? 32000 : NSNull()
            if case .gguf(let file) = tokenizer, let id = file.metadata["tokenizer.ggml.padding_token_id"]?.int, id < config.vocabSize {
                padding = id
            }
            json["pad_token_id"] = padding
        }
        switch config.ropeScaling {
        case nil:
            break
        case .llama3(let p)?:
            json["rope_scaling"] = ["rope_type": "llama3", "factor": shortestDecimal(p.factor),
                                    "low_freq_factor": shortestDecimal(p.lowFrequencyFactor),
                                    "high_freq_factor": shortestDecimal(p.highFrequencyFactor),
                                    "original_max_position_embeddings": p.originalContextLength] as [String: Any]
        case .frequencyFactors?:
            throw CheckpointWriteError.unsupportedModel(format: "hf", reason:
                "RoPE frequency factors from a GGUF's rope_freqs.weight have no config.json form (llama.cpp keeps no llama3 parameters); export as gguf")
        case .longRoPE(let p)?:   // phi3 only (checkFamilyFits)
            json["rope_scaling"] = ["rope_type": "longrope", "short_factor": p.shortFactors.map(shortestDecimal),
                                    "long_factor": p.longFactors.map(shortestDecimal),
                                    "attention_factor": shortestDecimal(p.attentionFactor)] as [String: Any]
        }
        switch tokenizer {
        case .llama2c:
            json["bos_token_id"] = 1; json["eos_token_id"] = 2
        case .gguf(let file):
            if let bos = file.metadata["tokenizer.ggml.bos_token_id"]?.int { json["bos_token_id"] = bos }
            if let eos = file.metadata["tokenizer.ggml.eos_token_id"]?.int { json["eos_token_id"] = eos }
        case .huggingFaceJSON, .none:
            break
        }
        if !uniform {
            json["num_attention_heads_per_layer"] = config.layers.map { $0.hasAttention ? $0.queryHeads : 0 }
            json["num_key_value_heads_per_layer"] = config.layers.map { $0.hasAttention ? $0.kvHeads : 0 }
            json["intermediate_size_per_layer"] = config.layers.map { $0.hasMLP ? $0.ffnDim : 0 }
            json["no_op_attention_layers"] = config.layers.indices.filter { !config.layers[$0].hasAttention }
            json["no_op_mlp_layers"] = config.layers.indices.filter { !config.layers[$0].hasMLP }
        }
        return try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }

    /// The Float as the Double with the same shortest decimal form (1e-05, not 9.999999747378752e-06), which is
    /// what the source config said and what reads back as the same Float.
    static func shortestDecimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }

    /// The transformers class and `model_type` of `config`'s family: `qwen2`, `qwen3`, `phi3` (stacked q/k/v and
    /// gate/up, `HFConfig.phi3Names`), `gemma3_text` (`HFConfig.gemma3Names`), else `llama` (Mistral is the llama
    /// layout and is written as one).
    static func hfFamily(_ config: ModelConfig) -> (className: String, modelType: String) {
        switch config.architecture {
        case "qwen2": return ("Qwen2ForCausalLM", "qwen2")
        case "qwen3": return ("Qwen3ForCausalLM", "qwen3")
        case "phi3": return ("Phi3ForCausalLM", "phi3")
        case "gemma3": return ("Gemma3ForCausalLM", "gemma3_text")
        default: return ("LlamaForCausalLM", "llama")
        }
    }

    /// The Gemma 3 keys of `config.json`, in the form both transformers 4.5x and 5 read (`Gemma3TextOptions` reads
    /// them back): `layer_types` and `sliding_window`, the two RoPE bases as `rope_theta` and
    /// `rope_local_base_freq`, `query_pre_attn_scalar` (an integer in Gemma3TextConfig) whose `** -0.5` is the
    /// attention scale, and soft-capping off. A model these cannot state (any other embedding scale, a scaled
    /// RoPE, a window that scales RoPE, no post-sublayer or q/k norms) is refused; none of PolicyPrune's readers
    /// makes one.
    static func gemma3Keys(_ config: ModelConfig, tokenizer: TokenizerSource) throws -> [String: Any] {
        func refuse(_ what: String) -> CheckpointWriteError {
            .unsupportedModel(format: "hf", reason: "this gemma3 model has \(what), which Gemma3ForCausalLM cannot express")
        }
        let headDim = config.layers.first?.headDim ?? 1
        guard config.embeddingScale == Float(Double(config.hiddenSize).squareRoot()) else {
            throw refuse("an embedding scale other than sqrt(hidden_size)")
        }
        guard config.postSublayerNorms, config.queryKeyNorm, config.mlpActivation == .geluTanh, !config.attentionBias else {
            throw refuse("a sublayer layout other than Gemma 3's")
        }
        guard config.ropeScaling == nil else { throw refuse("RoPE scaling") }
        let scale = config.attentionScale ?? 1 / Float(headDim).squareRoot()
        let scalar = (1 / (Double(scale) * Double(scale))).rounded()
        guard scalar >= 1, scalar < 1e9, abs(Float(Foundation.pow(scalar, -0.5)) / scale - 1) < 1e-6 else {
            throw refuse("an attention scale \(scale) that is not 1/sqrt of an integer query_pre_attn_scalar")
        }
        var keys: [String: Any] = [
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": Int(scalar),
            "rope_scaling": NSNull(),
            "final_logit_softcapping": NSNull(),
            "attn_logit_softcapping": NSNull(),
            "use_bidirectional_attention": false,
        ]
        if let local = config.localAttention {
            guard !local.scalesRoPE else { throw refuse("a sliding window that scales RoPE") }
            keys["sliding_window"] = local.window
            keys["rope_local_base_freq"] = shortestDecimal(local.ropeTheta)
        } else {
            keys["sliding_window"] = NSNull()
        }
        keys["layer_types"] = config.layers.indices.map { config.localAttention?.isLocal($0) == true ? "sliding_attention" : "full_attention" }
        // Gemma3TextConfig's default padding id is 0; a GGUF states its own.
        if case .gguf(let file) = tokenizer, let id = file.metadata["tokenizer.ggml.padding_token_id"]?.int, id < config.vocabSize {
            keys["pad_token_id"] = id
        }
        return keys
    }

    /// Copies a file into the folder being assembled.
    static func copy(_ source: String, to destination: String) throws {
        let file = try MappedFile(checkpoint: source)
        let bytes = try file.bytes(at: 0, length: file.count, "tokenizer file")
        let out = try OutputFile(creating: destination)
        try out.write(bytes)
        try out.finish()
    }
}
