import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// Pruning and export of the non-LLaMA families, on the tiny transformers-made models of
/// `Tests/TransformerTests/Fixtures/families` (see `FamilyGoldenTests` there). The masked forward pass of each
/// must equal the dense forward pass of its compacted model, exported and reloaded: for qwen2 this shows that the
/// q/k/v bias rows leave with the weight rows of their heads and KV groups; for qwen3 that the per-head q/k norms
/// stay whole; for llama3 that the RoPE scaling survives both formats; for phi3 that q/k/v and gate/up are stacked
/// again and the window and LongRoPE survive; for gemma3 that the norms go back to Gemma's w of 1 + w and the window
/// pattern, RoPE bases and attention scale survive. Tolerance as `RoundTripTests`: relative 1e-5 with an absolute
/// floor of 1e-5 × the largest logit (export only moves data).
final class FamilyExportTests: XCTestCase {
    static let families = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TransformerTests/Fixtures/families").standardizedFileURL

    func load(_ relative: String) throws -> TestModel {
        let path = Self.families.appendingPathComponent(relative).path
        let checkpoint = try CheckpointLoader.load(path: path)
        let model = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: path)
        return TestModel(checkpoint: checkpoint, model: model, ids: [1, 17, 250, 3, 99, 310, 42, 42, 7, 128, 64, 200, 5, 319, 11, 77])
    }

    /// Exports `plan` of `m` as `format` into `folder` and returns the reloaded model.
    func exportAndReload(_ m: TestModel, _ plan: PrunePlan, format: ExportFormat, folder: String, name: String) throws -> (LoadedCheckpoint, LanguageModel) {
        let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
        let out = (folder as NSString).appendingPathComponent(format == .hf ? name : name + ".gguf")
        let request = ExportRequest(config: compacted.config, weights: compacted.weights, format: format, dtype: .f32,
                                    tokenizer: m.checkpoint.tokenizer, name: name, extraFiles: [:], provenance: [:])
        _ = try ModelExporter.export(request, to: out, force: false)
        let reloaded = try CheckpointLoader.load(path: out)
        return (reloaded, try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: out))
    }

    /// One KV group pruned in layers 0 and 2 (a different one in each), MLP channels pruned in every layer.
    func oneGroupPlan(_ config: ModelConfig) throws -> PrunePlan {
        try Plans.plan(config.layers.enumerated().map { i, spec in
            StructureMask.Layer(keptKVGroups: i == 1 ? Array(0..<spec.kvHeads) : [i == 0 ? 1 : 0],
                                keptChannels: (0..<spec.ffnDim).filter { ($0 + i) % 3 != 0 })
        }, for: config)
    }

    func testQwen2MaskedEqualsCompactedExports() throws {
        let m = try load("qwen2")
        let folder = try temporaryFolder(self)
        for (planName, plan) in [("one group", try oneGroupPlan(m.model.config)),
                                 ("uniform", try Plans.uniform(m.model.config, groups: 1, channels: 40)),
                                 ("uniform-all-heads", try Plans.uniform(m.model.config, groups: 2, channels: 40)),
                                 ("heterogeneous", try Plans.heterogeneous(m.model.config))] {
            let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
            let dense = try m.model.dense.logits([m.ids])[0]
            XCTAssertNotNil(compareAll(masked.map(Double.init), dense.map(Double.init), Tolerance(relative: 1e-3), "pruning changes the logits"))
            for format in ExportFormat.allCases {
                let (reloaded, model) = try exportAndReload(m, plan, format: format, folder: folder, name: "\(planName)-\(format)".replacingOccurrences(of: " ", with: "-"))
                XCTAssertTrue(reloaded.config.attentionBias, "\(planName) \(format)")
                assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "qwen2 \(planName) \(format) vs masked")
                // llama.cpp's qwen2 loader needs every query head (attn_q is n_embd × n_embd), so a GGUF of a
                // uniform plan with a KV group gone is arch llama with the biases; the HF folder stays Qwen2.
                if planName == "uniform" { XCTAssertEqual(reloaded.config.architecture, format == .gguf ? "llama" : "qwen2", "\(format)") }
                if planName == "uniform-all-heads" { XCTAssertEqual(reloaded.config.architecture, "qwen2", "\(format)") }
            }
        }
        // The compacted bias of layer 0 (kept KV group 1) is exactly the original's rows of group 1 and its heads.
        let compacted = try oneGroupPlan(m.model.config).compact(config: m.model.config, weights: m.model.weights)
        let original = m.model.layerWeights(0), hd = m.model.config.layers[0].headDim
        XCTAssertEqual(compacted.weights.layers[0].bk, Array(original.bk![hd..<(2 * hd)]))
        XCTAssertEqual(compacted.weights.layers[0].bq, Array(original.bq![(2 * hd)..<(4 * hd)]))
    }

    func testQwen3ExportsKeepQueryKeyNorms() throws {
        let m = try load("qwen3")
        let folder = try temporaryFolder(self)
        let plan = try oneGroupPlan(m.model.config)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let (hf, hfModel) = try exportAndReload(m, plan, format: .hf, folder: folder, name: "qwen3-hf")
        XCTAssertTrue(hf.config.queryKeyNorm)
        XCTAssertEqual(hf.config.architecture, "qwen3")
        assertLogitsEqual(try hfModel.dense.logits([m.ids])[0], masked, relative: 1e-5, "qwen3 hf vs masked")
        // Per-layer shapes have no llama.cpp architecture with q/k norms: a typed error, not a wrong file.
        XCTAssertThrowsError(try exportAndReload(m, plan, format: .gguf, folder: folder, name: "qwen3-het")) {
            guard case CheckpointWriteError.unsupportedModel? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
        let uniform = try Plans.uniform(m.model.config, groups: 1, channels: 40)
        let uniformMasked = try m.model.prepared(mask: uniform.structureMask).logits([m.ids])[0]
        let (gguf, ggufModel) = try exportAndReload(m, uniform, format: .gguf, folder: folder, name: "qwen3-uniform")
        XCTAssertEqual(gguf.config.architecture, "qwen3")
        assertLogitsEqual(try ggufModel.dense.logits([m.ids])[0], uniformMasked, relative: 1e-5, "qwen3 gguf vs masked")
    }

    func testLlama3ScalingSurvivesExport() throws {
        let m = try load("llama3")
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 1, channels: 40)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let (hf, hfModel) = try exportAndReload(m, plan, format: .hf, folder: folder, name: "llama3-hf")
        XCTAssertEqual(hf.config.ropeScaling, m.model.config.ropeScaling)
        assertLogitsEqual(try hfModel.dense.logits([m.ids])[0], masked, relative: 1e-5, "llama3 hf vs masked")
        let (gguf, ggufModel) = try exportAndReload(m, plan, format: .gguf, folder: folder, name: "llama3-gguf")
        guard case .frequencyFactors(let factors)? = gguf.config.ropeScaling else { return XCTFail("no rope_freqs written") }
        // Our factors equal llama.cpp's converter's, which wrote the fixture GGUF.
        let converted = try load("llama3.gguf")
        XCTAssertEqual(.frequencyFactors(factors), converted.model.config.ropeScaling)
        assertLogitsEqual(try ggufModel.dense.logits([m.ids])[0], masked, relative: 1e-4, "llama3 gguf vs masked")
        // A GGUF source keeps only the factors, which config.json cannot state.
        XCTAssertThrowsError(try exportAndReload(converted, plan, format: .hf, folder: folder, name: "from-gguf")) {
            guard case CheckpointWriteError.unsupportedModel? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
    }

    /// Asserts that exporting `plan` of `m` as `format` is refused with `unsupportedModel` before anything is written.
    func assertRefused(_ m: TestModel, _ plan: PrunePlan, format: ExportFormat, folder: String, name: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertThrowsError(try exportAndReload(m, plan, format: format, folder: folder, name: name), file: file, line: line) {
            guard case CheckpointWriteError.unsupportedModel? = $0 as? CheckpointWriteError else { return XCTFail("\($0)", file: file, line: line) }
        }
        let out = (folder as NSString).appendingPathComponent(format == .hf ? name : name + ".gguf")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(name): nothing written", file: file, line: line)
    }

    /// Phi-3 with its attention whole (MLP channels pruned alike in every layer) exports as phi3 in both formats:
    /// q/k/v and gate/up stacked again under the family's names (`attn_qkv`, `ffn_up` of 2 × 48 rows; `qkv_proj`,
    /// `gate_up_proj`), the window of 8 kept (`phi3.attention.sliding_window`, `sliding_window`), and the reloaded
    /// model equals the masked forward pass.
    func testPhi3UniformMLPPlanExportsAsPhi3() throws {
        let m = try load("phi3")
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 2, channels: 48)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        for format in ExportFormat.allCases {
            let (reloaded, model) = try exportAndReload(m, plan, format: format, folder: folder, name: "phi3-mlp-\(format)")
            XCTAssertEqual(reloaded.config.architecture, "phi3", "\(format)")
            XCTAssertEqual(reloaded.config.localAttention, .phi3(window: 8, ropeTheta: 10_000, layers: 3), "\(format)")
            XCTAssertEqual(reloaded.config.layers[0].ffnDim, 48)
            assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "phi3 mlp-only \(format) vs masked")
        }
        let gguf = try GGUFFile(path: folder + "/phi3-mlp-gguf.gguf")
        XCTAssertEqual(gguf.tensorInfo(named: "blk.0.attn_qkv.weight")?.shape, [128, 64])
        XCTAssertEqual(gguf.tensorInfo(named: "blk.0.ffn_up.weight")?.shape, [96, 64])
        XCTAssertNil(gguf.tensorInfo(named: "blk.0.attn_q.weight"))
        XCTAssertNil(gguf.tensorInfo(named: "blk.0.ffn_gate.weight"))
        XCTAssertEqual(gguf.metadata["phi3.attention.sliding_window"]?.int, 8)
        XCTAssertEqual(gguf.metadata["phi3.rope.scaling.original_context_length"]?.int, 128)
        let safetensors = try SafetensorsFile(path: folder + "/phi3-mlp-hf/model.safetensors")
        XCTAssertEqual(safetensors.tensorInfo(named: "model.layers.2.self_attn.qkv_proj.weight")?.shape, [128, 64])
        XCTAssertEqual(safetensors.tensorInfo(named: "model.layers.2.mlp.gate_up_proj.weight")?.shape, [96, 64])
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/phi3-mlp-hf/config.json"))) as? [String: Any])
        XCTAssertEqual(config["model_type"] as? String, "phi3")
        XCTAssertEqual(config["architectures"] as? [String], ["Phi3ForCausalLM"])
        XCTAssertEqual(config["sliding_window"] as? Int, 8)
    }

    /// Pruned attention (fewer query heads than hidden / head width): hf stays phi3, uniform or per layer, with
    /// `head_dim` stated; GGUF has no architecture for it while the window applies (llama.cpp's phi3 sizes the
    /// query and o_proj by the hidden width; llama and deci have no window): refused before writing, naming why.
    func testPhi3PrunedAttentionExportsAsHFAndIsRefusedAsGGUFWithItsWindow() throws {
        let m = try load("phi3")
        let folder = try temporaryFolder(self)
        for (planName, plan) in [("uniform", try Plans.uniform(m.model.config, groups: 1, channels: 40)),
                                 ("one-group", try oneGroupPlan(m.model.config)),
                                 ("heterogeneous", try Plans.heterogeneous(m.model.config))] {
            let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
            let (reloaded, model) = try exportAndReload(m, plan, format: .hf, folder: folder, name: "phi3-\(planName)")
            XCTAssertEqual(reloaded.config.architecture, "phi3", planName)
            XCTAssertNotNil(reloaded.config.localAttention, planName)
            assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "phi3 \(planName) hf vs masked")
            try assertRefused(m, plan, format: .gguf, folder: folder, name: "phi3-\(planName)")
        }
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/phi3-uniform/config.json"))) as? [String: Any])
        XCTAssertEqual(config["num_attention_heads"] as? Int, 2)
        XCTAssertEqual(config["head_dim"] as? Int, 16)
        XCTAssertNil(config["num_attention_heads_per_layer"], "a uniform plan is a plain Phi3Config")
    }

    /// A Phi-3 without a window (Phi-4's null sliding_window) computes exactly the llama layout, so pruned attention
    /// goes to GGUF `llama` (uniform) or `deci` (per layer) with separate q/k/v and gate/up, a note saying why.
    func testPhi3WithoutWindowPrunedAttentionExportsAsLlamaOrDeci() throws {
        let loaded = try load("phi3")
        var config = loaded.model.config
        config.localAttention = nil
        let model = try LanguageModel(config: config, weights: loaded.model.weights)
        let m = TestModel(checkpoint: loaded.checkpoint, model: model, ids: loaded.ids)
        let folder = try temporaryFolder(self)
        for (planName, plan, arch) in [("uniform", try Plans.uniform(config, groups: 1, channels: 40), "llama"),
                                       ("heterogeneous", try Plans.heterogeneous(config), "deci")] {
            let masked = try model.prepared(mask: plan.structureMask).logits([m.ids])[0]
            let compacted = try plan.compact(config: config, weights: model.weights)
            let out = folder + "/phi3-\(planName).gguf"
            let result = try ModelExporter.export(ExportRequest(config: compacted.config, weights: compacted.weights, format: .gguf, dtype: .f32,
                                                                tokenizer: m.checkpoint.tokenizer, name: "phi3-\(planName)"), to: out, force: false)
            XCTAssertEqual(result.architecture, arch)
            XCTAssertTrue(result.notes.contains { $0.contains("separate q/k/v") }, "\(result.notes)")
            let reloaded = try CheckpointLoader.load(path: out)
            XCTAssertEqual(reloaded.config.architecture, arch)
            let reloadedModel = try LanguageModel(config: reloaded.config, weights: reloaded.weights)
            assertLogitsEqual(try reloadedModel.dense.logits([m.ids])[0], masked, relative: 1e-5, "phi3 without window, \(planName) as \(arch)")
        }
    }

    /// LongRoPE survives both formats (GGUF: rope_factors_short/long.weight and rope.scaling.attn_factor /
    /// original_context_length as llama.cpp's converter writes them; hf: rope_scaling longrope with
    /// original_max_position_embeddings), also from the converted GGUF to hf. `load`'s 16 ids stay within the
    /// original context (short factors), the 24 reference ids pass it (long factors): both are compared. Pruned
    /// attention with LongRoPE has no GGUF form (llama.cpp's phi3 needs the full query width; llama has no
    /// LongRoPE): refused.
    func testPhi3LongRoPESurvivesExport() throws {
        let m = try load("phi3-longrope")
        let long = [1, 17, 250, 3, 99, 310, 42, 42, 7, 128, 64, 200, 5, 319, 11, 77, 150, 2, 33, 260, 90, 180, 12, 300]
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 2, channels: 48)
        let prepared = try m.model.prepared(mask: plan.structureMask)
        let masked = (short: try prepared.logits([m.ids])[0], long: try prepared.logits([long])[0])
        let converted = try load("phi3-longrope.gguf")
        for (source, format, name) in [(m, ExportFormat.hf, "hf"), (m, .gguf, "gguf"), (converted, .hf, "gguf-to-hf")] {
            let (reloaded, model) = try exportAndReload(source, plan, format: format, folder: folder, name: "longrope-\(name)")
            XCTAssertEqual(reloaded.config.architecture, "phi3", name)
            guard case .longRoPE(let p)? = reloaded.config.ropeScaling, case .longRoPE(let q)? = m.model.config.ropeScaling else {
                return XCTFail("\(name): LongRoPE lost")
            }
            XCTAssertEqual(p.shortFactors, q.shortFactors, name)
            XCTAssertEqual(p.longFactors, q.longFactors, name)
            XCTAssertEqual(p.originalContextLength, 16, name)
            XCTAssertEqual(p.attentionFactor, q.attentionFactor, accuracy: 1e-6, name)
            assertLogitsEqual(try model.dense.logits([m.ids])[0], masked.short, relative: 1e-5, "longrope \(name), short regime")
            assertLogitsEqual(try model.dense.logits([long])[0], masked.long, relative: 1e-5, "longrope \(name), long regime")
        }
        try assertRefused(m, try Plans.uniform(m.model.config, groups: 1, channels: 48), format: .gguf, folder: folder, name: "longrope-heads")
    }

    /// llama.cpp (and `GGUFTokenizer`) apply Phi-3's tokenizer rule (whitespace after special tokens stripped) by
    /// "phi3"/"phi-3" in `general.name`: a GGUF export under a name without it keeps the source's name beside it,
    /// with a note, so the exported file tokenizes as its source did.
    func testPhi3TokenizerRuleSurvivesTheExportName() throws {
        let m = try load("phi3.gguf")
        let folder = try temporaryFolder(self)
        for (name, expected) in [("pruned", "pruned (Phi3)"), ("phi3-pruned", "phi3-pruned")] {
            let out = folder + "/\(name).gguf"
            let result = try ModelExporter.export(ExportRequest(config: m.model.config, weights: m.model.weights, format: .gguf, dtype: .f32,
                                                                tokenizer: m.checkpoint.tokenizer, name: name), to: out, force: false)
            XCTAssertEqual(try GGUFFile(path: out).metadata["general.name"]?.string, expected)
            XCTAssertEqual(result.notes.contains { $0.contains("general.name keeps 'Phi3'") }, name == "pruned", "\(result.notes)")
        }
    }

    /// Gemma 3 exports as `Gemma3ForCausalLM` (hf) from its folder and from its converted GGUF, and as GGUF `gemma3`:
    /// a uniform plan (one KV group of two, 48 channels per layer) reloads to the masked forward pass in both
    /// formats; `config.json` states the pattern, window, bases and query_pre_attn_scalar, and the norms are stored
    /// as the folder had them (w, not the 1 + w computed with), up to the rounding of 1 + w.
    func testGemma3UniformPlanExportsAsGemma3() throws {
        let m = try load("gemma3")
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 1, channels: 48)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let converted = try load("gemma3.gguf")
        for (source, format, name) in [(m, ExportFormat.hf, "hf"), (m, .gguf, "gguf"), (converted, .hf, "gguf-to-hf")] {
            let (reloaded, model) = try exportAndReload(source, plan, format: format, folder: folder, name: "gemma3-\(name)")
            var expected = try plan.compact(config: m.model.config, weights: m.model.weights).config
            expected.attentionScale = reloaded.config.attentionScale   // within an ulp (Float vs Double 1/sqrt(32))
            XCTAssertEqual(reloaded.config, expected, name)
            assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 uniform \(name) vs masked")
        }
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/gemma3-hf/config.json"))) as? [String: Any])
        XCTAssertEqual(config["model_type"] as? String, "gemma3_text")
        XCTAssertEqual(config["architectures"] as? [String], ["Gemma3ForCausalLM"])
        XCTAssertEqual(config["num_attention_heads"] as? Int, 2)
        XCTAssertEqual(config["head_dim"] as? Int, 32)
        XCTAssertEqual(config["query_pre_attn_scalar"] as? Int, 32)
        XCTAssertEqual(config["sliding_window"] as? Int, 8)
        XCTAssertEqual(config["layer_types"] as? [String], Array(repeating: "sliding_attention", count: 5) + ["full_attention"])
        XCTAssertEqual(config["rope_theta"] as? Double, 1_000_000)
        XCTAssertEqual(config["rope_local_base_freq"] as? Double, 10_000)
        XCTAssertEqual(config["hidden_activation"] as? String, "gelu_pytorch_tanh")
        XCTAssertNil(config["hidden_act"])
        let original = try SafetensorsFile(path: Self.families.appendingPathComponent("gemma3/model.safetensors").path)
        for (file, what) in [(folder + "/gemma3-hf/model.safetensors", "from the folder"), (folder + "/gemma3-gguf-to-hf/model.safetensors", "from the GGUF")] {
            let exported = try SafetensorsFile(path: file)
            for tensor in ["model.layers.0.input_layernorm.weight", "model.layers.5.post_attention_layernorm.weight",
                           "model.layers.2.pre_feedforward_layernorm.weight", "model.layers.3.post_feedforward_layernorm.weight",
                           "model.layers.4.self_attn.q_norm.weight", "model.norm.weight"] {
                let a = try exported.floats(named: tensor), b = try original.floats(named: tensor)
                XCTAssertEqual(a.count, b.count, tensor)
                XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max() ?? 1, Float.ulpOfOne, "\(tensor) \(what)")
            }
        }
        let gguf = try GGUFFile(path: folder + "/gemma3-gguf.gguf")
        XCTAssertEqual(gguf.metadata["general.architecture"]?.string, "gemma3")
        XCTAssertEqual(gguf.metadata["gemma3.rope.freq_base_swa"]?.float, 10_000)
    }

    /// Per-layer shapes (the heterogeneous plan: a layer without attention, one without MLP; and one KV group kept
    /// in layers 0 and 2 only) export as hf with the per-layer lists and `layer_types`, which PolicyPrune reads back
    /// to the masked forward pass (transformers cannot build them, the note says); GGUF stays refused before writing
    /// (llama.cpp's gemma3 sizes every layer by layer 0).
    func testGemma3PerLayerShapesExportAsHFOnly() throws {
        let m = try load("gemma3")
        let folder = try temporaryFolder(self)
        for (planName, plan) in [("heterogeneous", try Plans.heterogeneous(m.model.config)), ("one-group", try oneGroupPlan(m.model.config))] {
            let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
            let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
            let out = folder + "/gemma3-\(planName)"
            let result = try ModelExporter.export(ExportRequest(config: compacted.config, weights: compacted.weights, format: .hf, dtype: .f32,
                                                                tokenizer: m.checkpoint.tokenizer, name: planName), to: out, force: false)
            XCTAssertFalse(result.uniform)
            XCTAssertTrue(result.notes.contains { $0.contains("cannot build") }, "\(result.notes)")
            let reloaded = try CheckpointLoader.load(path: out)
            XCTAssertEqual(reloaded.config.layers, compacted.config.layers, planName)
            XCTAssertEqual(reloaded.config.localAttention, m.model.config.localAttention, planName)
            let model = try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: out)
            assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 \(planName) hf vs masked")
            try assertRefused(m, plan, format: .gguf, folder: folder, name: "gemma3-\(planName)-gguf")
        }
    }

    /// What a Hugging Face config states but llama.cpp's gemma3 derives: layer types other than five of every six,
    /// and a query_pre_attn_scalar other than the head width. Both survive hf; GGUF refuses them before writing
    /// rather than write a file llama.cpp would compute differently. A local RoPE base other than 10,000 is written
    /// as `rope.freq_base_swa`, as llama.cpp's converter does and its gemma3 loader reads.
    func testGemma3StatedOptionsSurviveHFAndGGUFRefusesWhatItCannotState() throws {
        let loaded = try load("gemma3")
        let folder = try temporaryFolder(self)
        func variant(_ name: String, _ change: (inout ModelConfig) -> Void) throws -> TestModel {
            var config = loaded.model.config
            change(&config)
            return TestModel(checkpoint: loaded.checkpoint, model: try LanguageModel(config: config, weights: loaded.model.weights), ids: loaded.ids)
        }
        let pattern = try variant("pattern") { $0.localAttention?.layers = [false, true, false, true, true, false] }
        let scale = try variant("scale") { $0.attentionScale = Float(pow(24.0, -0.5)) }
        let base = try variant("base") { $0.localAttention?.ropeTheta = 20_000 }
        for (name, m, ggufRefused) in [("pattern", pattern, true), ("scale", scale, true), ("base", base, false)] {
            let plan = try Plans.uniform(m.model.config, groups: 2, channels: 48)
            let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
            for format in ExportFormat.allCases {
                if format == .gguf && ggufRefused {
                    try assertRefused(m, plan, format: .gguf, folder: folder, name: "gemma3-\(name)-gguf")
                    continue
                }
                let (reloaded, model) = try exportAndReload(m, plan, format: format, folder: folder, name: "gemma3-\(name)-\(format)")
                XCTAssertEqual(reloaded.config.localAttention, m.model.config.localAttention, "\(name) \(format)")
                XCTAssertEqual(try XCTUnwrap(reloaded.config.attentionScale), try XCTUnwrap(m.model.config.attentionScale), accuracy: 1e-7)
                assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 \(name) \(format) vs masked")
            }
        }
    }
}
