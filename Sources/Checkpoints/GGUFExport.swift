import Essentials
import Foundation

/// The `gguf` export (design.md section 6): arch `llama` (or `qwen2`, `qwen3`, `gemma3`, `phi3`) when every layer has
/// the same shape, arch `deci` with per-layer `head_count`, `head_count_kv` and `feed_forward_length` arrays
/// otherwise; q/k rows in the adjacent-pairs RoPE order (NeoX rotate-half for the Qwen, Gemma and Phi-3 families);
/// Llama 3.x RoPE scaling as llama.cpp's `rope_freqs.weight`, LongRoPE as `rope_factors_short/long.weight`; the
/// tokenizer metadata carried over.
enum GGUFExport {
    static func write(_ request: ExportRequest, to path: String, force: Bool) throws -> ExportResult {
        let uniform = ModelExporter.isUniform(request.config)
        let source = request.config.architecture
        if source == "gemma3" && !uniform {
            // llama.cpp's gemma3 loader and graph size every layer by layer 0's feed_forward_length and head counts
            // (n_ff(), n_head()), and have no way to drop a sublayer; the deci graph has none of Gemma's norms,
            // scaled embeddings, GELU or sliding windows. Refused before anything is written.
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason:
                "gemma3 with per-layer shapes (\(shapeSummary(request.config))) has no llama.cpp architecture: its gemma3 loader needs every layer as wide as layer 0 with both sublayers, and no other format computes Gemma; prune to one width per layer (--scope per-layer, --attention-rate 0, an MLP rate that keeps a multiple of --channel-multiple, e.g. 0.3125)")
        }
        let arch = targetArchitecture(request.config, uniform: uniform)
        let narrowQwen2 = uniform && source == "qwen2" && arch == "llama"
        try ModelExporter.checkFamilyFits(request.config, arch: arch, format: "GGUF")
        if arch == "gemma3" { try checkGemma3Implied(request.config) }
        if !uniform && source == "qwen2" && !request.config.attentionBias {
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason: "qwen2 without q/k/v biases")
        }
        if !uniform && request.config.queryKeyNorm {
            // deci reads neither per-head q/k norms nor the NeoX RoPE order.
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason:
                "\(source) with per-head q/k norms and per-layer shapes has no llama.cpp architecture; export as hf")
        }
        var notes: [String] = []
        if source == "phi3" && arch != "phi3" {
            let why = uniform ? "llama.cpp's phi3 sizes every layer's query and o_proj by the hidden width, which the pruned attention no longer has"
                              : "llama.cpp's phi3 has one shape for every layer"
            notes.append("written as \(arch) with separate q/k/v and gate/up, which computes the same model: \(why)")
        }
        var (config, weights) = (request.config, request.weights)
        if arch == "deci" { notes += addLlamaCppPlaceholders(&config, &weights) }
        if narrowQwen2 {
            notes.append("qwen2 with pruned query heads written as arch llama (with its q/k/v biases): llama.cpp's qwen2 loader needs every query head")
        }
        let order = GGUFFile.ropeRowOrder(architecture: arch)

        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string(arch))
        let (name, nameNote) = generalName(request)
        gguf.set("general.name", .string(name))
        if let nameNote { notes.append(nameNote) }
        let fileType: UInt32 = ["f32": 0, "f16": 1, "q8_0": 7][request.dtype.rawValue] ?? 0
        gguf.set("general.file_type", .uint32(fileType))
        if request.dtype == .q8_0 { gguf.set("general.quantization_version", .uint32(2)) }
        let layers = config.layers
        let headDim = layers.first?.headDim ?? 0
        gguf.set("\(arch).vocab_size", .uint32(UInt32(config.vocabSize)))
        gguf.set("\(arch).context_length", .uint32(UInt32(config.contextLength)))
        gguf.set("\(arch).embedding_length", .uint32(UInt32(config.hiddenSize)))
        gguf.set("\(arch).block_count", .uint32(UInt32(layers.count)))
        func perLayer(_ key: String, _ values: [Int]) {
            if uniform, let first = values.first {
                gguf.set("\(arch).\(key)", .uint32(UInt32(first)))
            } else {
                gguf.set("\(arch).\(key)", .array(.int32(values.map { Int32($0) })))
            }
        }
        perLayer("feed_forward_length", layers.map { $0.hasMLP ? $0.ffnDim : 0 })
        perLayer("attention.head_count", layers.map { $0.hasAttention ? $0.queryHeads : 0 })
        perLayer("attention.head_count_kv", layers.map { $0.hasAttention ? $0.kvHeads : 0 })
        // llama.cpp derives the head width from layer 0 unless told; state it so any layer may be attention-free.
        gguf.set("\(arch).attention.key_length", .uint32(UInt32(headDim)))
        gguf.set("\(arch).attention.value_length", .uint32(UInt32(headDim)))
        gguf.set("\(arch).rope.dimension_count", .uint32(UInt32(headDim)))
        gguf.set("\(arch).rope.freq_base", .float32(config.ropeTheta))
        gguf.set("\(arch).attention.layer_norm_rms_epsilon", .float32(config.normEpsilon))
        if let local = config.localAttention {   // gemma3 and phi3 only (checkFamilyFits): the pattern is implied
            gguf.set("\(arch).attention.sliding_window", .uint32(UInt32(local.window)))
            // The local RoPE base, as llama.cpp's converter writes it and its gemma3 loader reads it.
            if arch == "gemma3" { gguf.set("gemma3.rope.freq_base_swa", .float32(local.ropeTheta)) }
            if arch == "phi3" {
                notes.append("llama.cpp's phi3 graph currently ignores the sliding window of \(local.window) (its loader warns); transformers and PolicyPrune apply it, so llama.cpp differs past \(local.window) tokens")
            }
        } else if arch == "phi3" {
            gguf.set("phi3.attention.sliding_window", .uint32(0))   // the converter's "no window"
        }
        if arch == "phi3" {
            var original = config.contextLength
            if case .longRoPE(let p)? = config.ropeScaling {
                original = p.originalContextLength
                gguf.set("phi3.rope.scaling.attn_factor", .float32(p.attentionFactor))
            }
            gguf.set("phi3.rope.scaling.original_context_length", .uint32(UInt32(original)))
        }
        let (tokenizer, tokenizerNote) = try tokenizerMetadata(request.tokenizer, vocabSize: config.vocabSize)
        for (key, value) in tokenizer { gguf.set(key, value) }
        if let tokenizerNote { notes.append(tokenizerNote) }
        for (key, value) in request.provenance.sorted(by: { $0.key < $1.key }) { gguf.set("policyprune.\(key)", .string(value)) }

        var records = WeightAssembly.records(config, weights, names: GGUFFile.names(architecture: arch), order: order)
        switch config.ropeScaling {
        case nil: break
        case .llama3(let p)?:
            let factors = p.frequencyFactors(headDim: headDim, theta: config.ropeTheta)
            records.insert(TensorRecord(name: GGUFFile.ropeFrequenciesTensor, shape: [factors.count], values: factors), at: 0)
        case .frequencyFactors(let factors)?:
            records.insert(TensorRecord(name: GGUFFile.ropeFrequenciesTensor, shape: [factors.count], values: factors), at: 0)
        case .longRoPE(let p)?:   // phi3 only (checkFamilyFits)
            records.insert(TensorRecord(name: GGUFFile.shortRoPEFactorsTensor, shape: [p.shortFactors.count], values: p.shortFactors), at: 0)
            records.insert(TensorRecord(name: GGUFFile.longRoPEFactorsTensor, shape: [p.longFactors.count], values: p.longFactors), at: 0)
        }
        var fallbacks: [String] = []
        for record in records {
            // llama.cpp keeps 1-D tensors (norms, biases) in F32; Q8_0 needs rows of whole 32-value blocks, and like
            // llama.cpp's converter a tensor whose rows are not falls back to F16.
            var type = request.dtype
            if record.shape.count == 1 { type = .f32 }
            if type == .q8_0, (record.shape.last ?? 0) % 32 != 0 {
                type = .f16
                fallbacks.append(record.name)
            }
            gguf.tensors.append(GGUFWriter.Tensor(record, type: type))
        }
        if !fallbacks.isEmpty {
            notes.append("\(fallbacks.count) tensor(s) whose rows are not a multiple of 32 stored as F16 instead of Q8_0: " + fallbacks.prefix(4).joined(separator: ", ") + (fallbacks.count > 4 ? ", ..." : ""))
        }
        try AtomicOutput.writeFile(path, force: force) { temporary in try gguf.write(to: temporary) }
        return ExportResult(path: path, files: [("", ModelExporter.size(of: path))], architecture: arch, uniform: uniform, notes: notes)
    }

    /// Refuses a Gemma 3 (uniform, so bound for GGUF `gemma3`) whose window pattern or attention scale llama.cpp's
    /// gemma3 would not compute: its loader fixes five sliding layers of every six and derives the scale from the
    /// head width (the 27B: hidden / heads), while a Hugging Face config states both (`layer_types`,
    /// `query_pre_attn_scalar`), and a pruned 27B's head count moves llama.cpp's scale. Before anything is written.
    static func checkGemma3Implied(_ config: ModelConfig) throws {
        let layers = config.layers.count
        if let local = config.localAttention, local.layers != LocalAttention.pattern(period: 6, layers: layers) {
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason:
                "gemma3 with sliding-window layers \(local.layers.indices.filter { local.layers[$0] }) has no llama.cpp form: its gemma3 loader slides five layers of every six; export as hf")
        }
        let implied = GGUFFile.gemma3AttentionScale(hiddenSize: config.hiddenSize, layerCount: layers,
                                                    headDim: config.layers.first?.headDim ?? 1, firstLayerHeads: config.layers.first?.queryHeads ?? 0)
        if let scale = config.attentionScale, abs(scale / implied - 1) > 1e-6 {
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason:
                "gemma3 with attention scale \(scale) has no llama.cpp form: its gemma3 loader derives \(implied) from the head width (the 62-layer 27B: hidden / heads); export as hf")
        }
    }

    /// The llama.cpp architecture a model is written as: its own family when uniform and llama.cpp can load it
    /// (`qwen2`, `qwen3`, `gemma3`; `phi3` only while every layer's query width equals the hidden width, which
    /// llama.cpp's phi3 loader requires of `attn_qkv` and `attn_output`), else `llama` when uniform, else `deci`.
    static func targetArchitecture(_ config: ModelConfig, uniform: Bool) -> String {
        let source = config.architecture
        guard uniform else { return "deci" }
        // llama.cpp's qwen2 and phi3 loaders size attn_q and attn_output as n_embd × n_embd (src/models/qwen2.cpp,
        // phi3.cpp), so with query heads pruned they cannot load as their own arch; arch llama reads q/k/v biases as
        // optional tensors and sizes attention by head_count × key_length, so they run there (llama-perplexity).
        let fullQueryWidth = config.layers.allSatisfy { $0.hasAttention && $0.queryDim == config.hiddenSize }
        if ["qwen3", "gemma3"].contains(source) { return source }
        if ["qwen2", "phi3"].contains(source) && fullQueryWidth { return source }
        return "llama"
    }

    /// `general.name`: the requested name, unless the source's tokenizer follows llama.cpp's Phi-3 rule (special
    /// tokens strip the whitespace after them, chosen by "phi-3"/"phi3" in `general.name`, as `GGUFTokenizer` does
    /// too) and the requested name would drop it: then the source's name follows in parentheses, with a note.
    static func generalName(_ request: ExportRequest) -> (String, String?) {
        guard case .gguf(let file) = request.tokenizer, let sourceName = file.metadata["general.name"]?.string else {
            return (request.name, nil)
        }
        func phi3Rule(_ name: String) -> Bool { ["phi-3", "phi3"].contains { name.lowercased().contains($0) } }
        guard phi3Rule(sourceName), !phi3Rule(request.name) else { return (request.name, nil) }
        return ("\(request.name) (\(sourceName))",
                "general.name keeps '\(sourceName)': llama.cpp picks Phi-3's tokenizer rule (whitespace after special tokens stripped) by that name")
    }

    /// The distinct layer shapes of `config`, for an error message: "ffn 1024×5, 2048×13; attention off ×2".
    static func shapeSummary(_ config: ModelConfig) -> String {
        var counts: [String: Int] = [:]
        for l in config.layers {
            let key = !l.hasMLP ? "no MLP" : !l.hasAttention ? "no attention" : "ffn \(l.ffnDim), \(l.queryHeads)/\(l.kvHeads) heads"
            counts[key, default: 0] += 1
        }
        return counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: "; ")
    }

    /// llama.cpp's `deci` graph (src/models/deci.cpp) has two gaps that would change the model's output:
    /// a layer with `feed_forward_length` 0 is skipped whole (`continue` before `inpL = cur`, so its attention
    /// output is dropped), and the head width is derived only when layer 0 has heads. So: a layer that keeps
    /// attention but lost its MLP gets a 1-channel all-zero MLP, and an attention-free layer 0 gets one all-zero KV
    /// group. Both add exactly 0 to the residual stream (silu(0)·0 = 0; zero values through a zero o_proj), so
    /// every loader computes the pruned model's logits exactly.
    static func addLlamaCppPlaceholders(_ config: inout ModelConfig, _ weights: inout ModelWeights) -> [String] {
        var notes: [String] = []
        let d = config.hiddenSize
        let ones = [Float](repeating: 1, count: d)
        for i in config.layers.indices where config.layers[i].hasAttention && !config.layers[i].hasMLP {
            config.layers[i].ffnDim = 1
            config.layers[i].hasMLP = true
            weights.layers[i].mlpNorm = ones
            weights.layers[i].gate = [Float](repeating: 0, count: d)
            weights.layers[i].up = [Float](repeating: 0, count: d)
            weights.layers[i].down = [Float](repeating: 0, count: d)
            notes.append("layer \(i): MLP removed; written as a 1-channel all-zero MLP (llama.cpp's deci graph skips the whole layer when feed_forward_length is 0)")
        }
        if let first = config.layers.first, !first.hasAttention,
           let donor = config.layers.first(where: { $0.hasAttention && $0.kvHeads > 0 }) {
            let g = donor.groupSize, hd = donor.headDim
            config.layers[0].queryHeads = g
            config.layers[0].kvHeads = 1
            config.layers[0].headDim = hd
            config.layers[0].hasAttention = true
            var w = weights.layers[0]
            w.attentionNorm = ones
            w.wq = [Float](repeating: 0, count: g * hd * d)
            w.wk = [Float](repeating: 0, count: hd * d)
            w.wv = [Float](repeating: 0, count: hd * d)
            w.wo = [Float](repeating: 0, count: d * g * hd)
            if config.attentionBias {
                w.bq = [Float](repeating: 0, count: g * hd)
                w.bk = [Float](repeating: 0, count: hd)
                w.bv = [Float](repeating: 0, count: hd)
            }
            weights.layers[0] = w
            notes.append("layer 0: attention removed; written as one all-zero KV group (llama.cpp reads the head width only when layer 0 has heads)")
        }
        return notes
    }

    /// The `tokenizer.*` metadata to write: copied from a GGUF source; converted from a llama2.c `tokenizer.bin`
    /// the way llama.cpp's convert-llama2c-to-ggml does (SentencePiece `llama` model, spaces as U+2581, byte
    /// tokens typed as bytes, ids 0/1/2 as unk/BOS/EOS). A Hugging Face tokenizer.json is not converted (note).
    static func tokenizerMetadata(_ source: TokenizerSource, vocabSize: Int) throws -> ([(String, GGUFValue)], String?) {
        switch source {
        case .gguf(let file):
            return (file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.map { ($0, file.metadata[$0]!) }, nil)
        case .llama2c(let path):
            return (try llama2cVocabulary(path: path, vocabSize: vocabSize), nil)
        case .huggingFaceJSON:
            return ([], "the tokenizer.json of the source is not converted to GGUF metadata; llama.cpp needs tokenizer.ggml.* to run the file")
        case .none:
            return ([], "the source has no tokenizer; none written")
        }
    }

    /// llama2.c `tokenizer.bin` (int32 max_token_length, then per token float32 score, int32 length, bytes) as
    /// GGUF `llama` tokenizer metadata.
    static func llama2cVocabulary(path: String, vocabSize: Int) throws -> [(String, GGUFValue)] {
        let file = try MappedFile(checkpoint: path)
        var reader = MappedReader(file, offset: 4)
        var tokens: [String] = [], scores: [Float] = [], types: [Int32] = []
        for id in 0..<vocabSize {
            let score = try reader.float32("score of token \(id)")
            let length = try reader.integer(Int32.self, "length of token \(id)")
            guard length >= 0 else { throw CheckpointError.corrupt(file: path, reason: "token \(id) has length \(length)") }
            var text = try reader.string(length: Int(length), "bytes of token \(id)")
            // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte.
            var type: Int32 = 1
            switch id {
            case 0: text = "<unk>"; type = 2
            case 1: text = "<s>"; type = 3
            case 2: text = "</s>"; type = 3
            default:
                if text.isEmpty { type = 3 }
                else if text.utf8.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">") { type = 6 }
            }
            tokens.append(text.replacingOccurrences(of: " ", with: "\u{2581}"))
            scores.append(score)
            types.append(type)
        }
        return [
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .array(.string(tokens))),
            ("tokenizer.ggml.scores", .array(.float32(scores))),
            ("tokenizer.ggml.token_type", .array(.int32(types))),
            ("tokenizer.ggml.unknown_token_id", .uint32(0)),
            ("tokenizer.ggml.bos_token_id", .uint32(1)),
            ("tokenizer.ggml.eos_token_id", .uint32(2)),
        ]
    }
}
