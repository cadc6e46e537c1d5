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
/// stay whole; for llama3 that the RoPE scaling survives both formats. Tolerance as `RoundTripTests`: relative
/// 1e-5 with an absolute floor of 1e-5 × the largest logit (export only moves data).
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
}
