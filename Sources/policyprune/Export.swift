import ArgumentParser
import Checkpoints
import Essentials
import Foundation
import Pruning
import Tokenization
import Transformer

extension ExportFormat: ExpressibleByArgument {}
extension WeightDType: ExpressibleByArgument {}

/// `policyprune export`: writes the pruned model physically smaller, as a Hugging Face folder or a GGUF file.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a pruned model as a smaller checkpoint (Hugging Face folder or GGUF file) that other tools load.",
        discussion: """
            hf: model.safetensors + config.json + tokenizer files (+ plan.json). A uniform result is a plain
            LlamaForCausalLM (Qwen2/Qwen3/Phi3ForCausalLM for those families); a heterogeneous one adds per-layer
            lists to config.json. A GGUF source's tokenizer is converted to tokenizer.json, tokenizer_config.json
            and special_tokens_map.json.
            gguf: arch llama (or the source's qwen2, qwen3, gemma3, phi3) when every layer has the same shape, arch
            deci with per-layer arrays otherwise. phi3 keeps its arch only with its attention whole (llama.cpp's
            phi3 needs the full query width); with a sliding window or LongRoPE nothing else can hold it.
            Without --plan the model is written unpruned (a format conversion).
            """)

    @OptionGroup var model: ModelOptions
    @Option(help: "Pruning plan (plan.json) made for this model.") var plan: String?
    @Option(help: "Output format: hf or gguf.") var format: ExportFormat
    @Option(help: "Weight storage: f32, f16, bf16 (hf only) or q8_0 (gguf only).") var dtype: WeightDType = .f32
    @Option(help: "Output path: a folder for hf, a .gguf file for gguf.") var out: String
    @Flag(help: "Replace the output path if it exists.") var force = false

    func validate() throws {
        guard format.dtypes.contains(dtype) else {
            throw ValidationError("--dtype \(dtype.rawValue) is not available for --format \(format.rawValue) (choose \(format.dtypes.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    func run() throws {
        // Refuse an existing output before the (slow) load.
        try AtomicOutput.checkDestination(out, force: force)
        let t0 = Date()
        let checkpoint = try CheckpointLoader.load(path: model.model)
        var extraFiles: [String: Data] = [:]
        var provenance = ["source": (model.model as NSString).lastPathComponent, "tool_version": PolicyPrune.version]
        let original = checkpoint.config
        let config: ModelConfig, weights: ModelWeights
        if let planPath = plan {
            let prunePlan = try PlanOptions.read(planPath, option: "--plan")
            // The same identity rule as every --plan: shapes, ids, parameter count and (when recorded) sha256.
            let hash = try modelSHA256(model.model)
            do {
                try prunePlan.validate(against: original, modelSHA256: hash)
                (config, weights) = try prunePlan.compact(config: original, weights: checkpoint.weights)
            } catch let error as PruningError {
                throw PlanFileError.mismatch(option: "--plan", path: planPath, model: model.model, reason: error.description)
            } catch let error as MaskError {
                throw PlanFileError.mismatch(option: "--plan", path: planPath, model: model.model, reason: error.description)
            }
            let data = try prunePlan.jsonData()
            extraFiles["plan.json"] = data
            provenance["plan_method"] = prunePlan.method
            provenance["plan_model_sha256"] = prunePlan.modelSHA256
        } else {
            (config, weights) = (original, checkpoint.weights)
        }
        let dense = original.parameterCount, kept = config.parameterCount
        provenance["dense_parameters"] = "\(dense.total)"
        provenance["dense_attention_mlp_parameters"] = "\(dense.prunable)"
        let name = ((model.model as NSString).lastPathComponent as NSString).deletingPathExtension + (plan == nil ? "" : "-pruned")
        // An hf folder gets tokenizer.json and its companions converted from a GGUF tokenizer.
        let tokenizerFiles = format == .hf ? try HuggingFaceTokenizerExport.files(for: checkpoint.tokenizer) : [:]
        let request = ExportRequest(config: config, weights: weights, format: format, dtype: dtype, tokenizer: checkpoint.tokenizer,
                                    name: name, extraFiles: format == .hf ? extraFiles : [:], tokenizerFiles: tokenizerFiles,
                                    provenance: provenance)
        let result = try ModelExporter.export(request, to: out, force: force)

        print("wrote        \(result.path) (\(format.rawValue), \(dtype.rawValue), architecture \(result.architecture)\(result.uniform ? ", uniform" : ", per-layer sizes"))")
        for file in result.files {
            print("  " + (file.name.isEmpty ? (result.path as NSString).lastPathComponent : file.name).padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(format: "%14d bytes", file.bytes))
        }
        print(String(format: "parameters   attention+MLP %d -> %d (%.2f%% removed); total %d -> %d (%.2f%% removed)",
                     dense.prunable, kept.prunable, 100 * (1 - Double(kept.prunable) / Double(max(dense.prunable, 1))),
                     dense.total, kept.total, 100 * (1 - Double(kept.total) / Double(max(dense.total, 1)))))
        print("layer  q-heads  kv-heads   ffn")
        for (i, l) in config.layers.enumerated() {
            print(String(format: "%5d  %7d  %8d  %5d", i, l.hasAttention ? l.queryHeads : 0, l.hasAttention ? l.kvHeads : 0, l.hasMLP ? l.ffnDim : 0))
        }
        for line in result.notes { note("note: \(line)") }
        note(String(format: "export took %.2f s", Date().timeIntervalSince(t0)))
    }
}
