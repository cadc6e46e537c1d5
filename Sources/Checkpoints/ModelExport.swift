import Foundation

/// The two export targets of design.md section 6.
public enum ExportFormat: String, CaseIterable, Sendable, Codable {
    /// A Hugging Face folder: `model.safetensors`, `config.json`, tokenizer files.
    case hf
    /// One GGUF file for llama.cpp.
    case gguf

    /// Storage types the format accepts.
    public var dtypes: [WeightDType] { self == .hf ? [.f32, .f16, .bf16] : [.f32, .f16, .q8_0] }
}

/// What to write: a model in the canonical layout (any `[LayerSpec]`), how to store it, and what goes with it.
public struct ExportRequest {
    /// The architecture to write (usually a compacted, heterogeneous one).
    public var config: ModelConfig
    /// Canonical weights matching `config`.
    public var weights: ModelWeights
    /// Target format.
    public var format: ExportFormat
    /// Storage type of the weight matrices.
    public var dtype: WeightDType
    /// The source checkpoint's tokenizer, carried over.
    public var tokenizer: TokenizerSource
    /// A name for the model (`general.name`).
    public var name: String
    /// Extra files placed beside the model in an `hf` folder (for example `plan.json`).
    public var extraFiles: [String: Data]
    /// Tokenizer files for an `hf` folder converted from the source's tokenizer, by file name (for a GGUF source,
    /// Tokenization's `HuggingFaceTokenizerExport.files(for:)` makes `tokenizer.json` and its companions). When
    /// set, they are written instead of copying the source's tokenizer files.
    public var tokenizerFiles: [String: Data]
    /// Provenance strings: GGUF metadata `policyprune.<key>` and safetensors `__metadata__`.
    public var provenance: [String: String]

    /// A request; `extraFiles`, `tokenizerFiles` and `provenance` default to empty.
    public init(config: ModelConfig, weights: ModelWeights, format: ExportFormat, dtype: WeightDType, tokenizer: TokenizerSource,
                name: String, extraFiles: [String: Data] = [:], tokenizerFiles: [String: Data] = [:], provenance: [String: String] = [:]) {
        self.config = config
        self.weights = weights
        self.format = format
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.name = name
        self.extraFiles = extraFiles
        self.tokenizerFiles = tokenizerFiles
        self.provenance = provenance
    }
}

/// What was written.
public struct ExportResult: Sendable {
    /// The output path (a folder for `hf`, a file for `gguf`).
    public var path: String
    /// Files written with their sizes in bytes, by name relative to `path` (`""` for a single GGUF file).
    public var files: [(name: String, bytes: Int)]
    /// The architecture written (`llama`, `deci`, `qwen2`; `config.json` `model_type` for hf).
    public var architecture: String
    /// Whether every layer has the same shape (a plain model any loader accepts).
    public var uniform: Bool
    /// Things the user should know (placeholders added for llama.cpp, tokenizer not carried, dtype fallbacks).
    public var notes: [String]

    /// Total bytes written.
    public var totalBytes: Int { files.reduce(0) { $0 + $1.bytes } }
}

/// Writes models in the export formats, atomically (`AtomicOutput`): nothing appears at the destination unless
/// the whole export succeeded.
public enum ModelExporter {
    /// Writes `request` to `path`; an existing `path` is replaced only with `force`.
    public static func export(_ request: ExportRequest, to path: String, force: Bool) throws -> ExportResult {
        guard request.format.dtypes.contains(request.dtype) else {
            throw CheckpointWriteError.unsupportedDType(format: request.format == .hf ? "hf (safetensors)" : "GGUF", dtype: request.dtype.rawValue)
        }
        try request.config.validate(request.weights, file: "<export>")
        switch request.format {
        case .hf: return try HuggingFaceExport.write(request, to: path, force: force)
        case .gguf: return try GGUFExport.write(request, to: path, force: force)
        }
    }

    /// Whether every layer has the same shape with both sublayers present (a plain LLaMA).
    static func isUniform(_ config: ModelConfig) -> Bool {
        guard let first = config.layers.first, first.hasAttention, first.hasMLP, first.queryHeads > 0, first.ffnDim > 0 else { return false }
        return config.layers.allSatisfy { $0 == first }
    }

    /// Refuses a model whose family options the target cannot express, naming them: the Gemma parts (scaled
    /// embeddings, post-sublayer norms, GELU-tanh, interleaved sliding windows, a non-default attention scale) exist
    /// only in Gemma 3's own targets (GGUF `gemma3`, whose loader implies the window pattern and scale, and hf
    /// `gemma3_text`); Phi-3's every-layer sliding window and LongRoPE only in `phi3` (GGUF or hf). Any other
    /// target (`arch` `llama`, `deci`, `qwen2`, `qwen3`, or an hf folder of another family) would silently compute
    /// another model.
    static func checkFamilyFits(_ config: ModelConfig, arch: String, format: String) throws {
        var gemmaParts: [String] = [], phi3Parts: [String] = []
        if config.embeddingScale != nil { gemmaParts.append("scaled input embeddings") }
        if config.postSublayerNorms { gemmaParts.append("post-sublayer norms") }
        if config.mlpActivation != .silu { gemmaParts.append("\(config.mlpActivation.rawValue) MLP") }
        if config.attentionScale != nil { gemmaParts.append("attention scale") }
        if let local = config.localAttention {
            if local.isPhi3Form(ropeTheta: config.ropeTheta) {
                phi3Parts.append("a sliding window of \(local.window) on every layer")
            } else {
                gemmaParts.append("sliding-window layers")
            }
        }
        if case .longRoPE? = config.ropeScaling { phi3Parts.append("LongRoPE") }
        let gemmaTarget = ["gemma3", "gemma3_text"].contains(arch)
        let refused = (gemmaTarget ? [] : gemmaParts) + (arch == "phi3" ? [] : phi3Parts)
        guard !refused.isEmpty else { return }
        var hints: [String] = []
        if !gemmaTarget && !gemmaParts.isEmpty { hints.append("export a gemma3 model as hf, or as gguf with one width per layer") }
        if arch != "phi3" && !phi3Parts.isEmpty {
            hints.append("export a phi3 model as hf, or as gguf with its attention whole (llama.cpp's phi3 needs every layer's query width to equal the hidden width)")
        }
        throw CheckpointWriteError.unsupportedModel(format: format, reason:
            "\(config.architecture) has \(refused.joined(separator: ", ")), which \(arch) cannot express; \(hints.joined(separator: "; "))")
    }

    /// File size in bytes (0 when unreadable).
    static func size(of path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}

extension WeightAssembly {
    /// The tensors of `weights` under `names`, shapes from `config`, q/k rows in `order`, norms as the format stores
    /// them (`WeightNames.storedNorm`). Absent sublayers have no tensors.
    static func records(_ config: ModelConfig, _ weights: ModelWeights, names: WeightNames, order: RoPERowOrder) -> [TensorRecord] {
        let d = config.hiddenSize
        func rope(_ w: [Float], heads: Int, headDim: Int) -> [Float] {
            order == .adjacentPairs ? permuteToAdjacentPairs(w, heads: heads, headDim: headDim) : w
        }
        var out = [TensorRecord(name: names.tokenEmbedding, shape: [config.vocabSize, d], values: weights.tokenEmbedding)]
        for (i, (spec, w)) in zip(config.layers, weights.layers).enumerated() {
            if spec.hasAttention {
                out.append(TensorRecord(name: names.layer(i, .attentionNorm), shape: [d], values: names.storedNorm(w.attentionNorm)))
                if let fused = names.fused {
                    out.append(TensorRecord(name: fused.qkv(i), shape: [spec.queryDim + 2 * spec.kvDim, d],
                                            values: rope(w.wq, heads: spec.queryHeads, headDim: spec.headDim)
                                                + rope(w.wk, heads: spec.kvHeads, headDim: spec.headDim) + w.wv))
                } else {
                    out.append(TensorRecord(name: names.layer(i, .wq), shape: [spec.queryDim, d], values: rope(w.wq, heads: spec.queryHeads, headDim: spec.headDim)))
                    out.append(TensorRecord(name: names.layer(i, .wk), shape: [spec.kvDim, d], values: rope(w.wk, heads: spec.kvHeads, headDim: spec.headDim)))
                    out.append(TensorRecord(name: names.layer(i, .wv), shape: [spec.kvDim, d], values: w.wv))
                }
                out.append(TensorRecord(name: names.layer(i, .wo), shape: [d, spec.queryDim], values: w.wo))
                if let bq = w.bq, let bk = w.bk, let bv = w.bv {
                    out.append(TensorRecord(name: names.layer(i, .bq), shape: [spec.queryDim], values: rope(bq, heads: spec.queryHeads, headDim: spec.headDim)))
                    out.append(TensorRecord(name: names.layer(i, .bk), shape: [spec.kvDim], values: rope(bk, heads: spec.kvHeads, headDim: spec.headDim)))
                    out.append(TensorRecord(name: names.layer(i, .bv), shape: [spec.kvDim], values: bv))
                }
                if let qNorm = w.qNorm, let kNorm = w.kNorm {
                    out.append(TensorRecord(name: names.layer(i, .qNorm), shape: [spec.headDim], values: names.storedNorm(qNorm)))
                    out.append(TensorRecord(name: names.layer(i, .kNorm), shape: [spec.headDim], values: names.storedNorm(kNorm)))
                }
                if let n = w.postAttentionNorm {
                    out.append(TensorRecord(name: names.layer(i, .postAttentionNorm), shape: [d], values: names.storedNorm(n)))
                }
            }
            if spec.hasMLP {
                out.append(TensorRecord(name: names.layer(i, .mlpNorm), shape: [d], values: names.storedNorm(w.mlpNorm)))
                if let fused = names.fused {
                    out.append(TensorRecord(name: fused.gateUp(i), shape: [2 * spec.ffnDim, d], values: w.gate + w.up))
                } else {
                    out.append(TensorRecord(name: names.layer(i, .gate), shape: [spec.ffnDim, d], values: w.gate))
                    out.append(TensorRecord(name: names.layer(i, .up), shape: [spec.ffnDim, d], values: w.up))
                }
                out.append(TensorRecord(name: names.layer(i, .down), shape: [d, spec.ffnDim], values: w.down))
                if let n = w.postMLPNorm {
                    out.append(TensorRecord(name: names.layer(i, .postMLPNorm), shape: [d], values: names.storedNorm(n)))
                }
            }
        }
        out.append(TensorRecord(name: names.finalNorm, shape: [d], values: names.storedNorm(weights.finalNorm)))
        if let head = weights.head, !config.tiedEmbeddings {
            out.append(TensorRecord(name: names.head, shape: [config.vocabSize, d], values: head))
        }
        return out
    }
}

/// Reading back what `ModelExporter` recorded about an export's origin (`ExportRequest.provenance`, e.g.
/// `dense_parameters`), so `info` can state the parameter reduction of an exported model.
public enum ExportProvenance {
    /// GGUF `policyprune.*` metadata, or the `__metadata__` of an hf folder's `model.safetensors` (without
    /// `format`); empty for a checkpoint PolicyPrune did not export.
    public static func read(_ checkpoint: LoadedCheckpoint) -> [String: String] {
        switch checkpoint.format {
        case .gguf:
            guard case .gguf(let file) = checkpoint.tokenizer else { return [:] }
            var out: [String: String] = [:]
            for key in file.metadataKeys where key.hasPrefix("policyprune.") {
                if let value = file.metadata[key]?.string { out[String(key.dropFirst("policyprune.".count))] = value }
            }
            return out
        case .huggingFace:
            let path = (checkpoint.path as NSString).appendingPathComponent("model.safetensors")
            guard let file = try? SafetensorsFile(path: path) else { return [:] }
            var out = file.metadata
            out.removeValue(forKey: "format")
            return out
        case .llama2c:
            return [:]
        }
    }
}
