import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// Pruning and export of the real Gemma 3 270M (from the model cache; see `Models.gemma3`). Its one KV head per
/// layer makes a KV group the whole attention of a layer, and llama.cpp's gemma3 loader sizes every layer by
/// layer 0, so: a uniform MLP plan exports as GGUF `gemma3` whose reloaded forward equals the masked forward; a
/// plan with per-layer shapes (different widths, or a layer's attention removed) runs masked and compacted alike
/// and exports as hf with per-layer lists (`Gemma3ForCausalLM` keys), but GGUF refuses it before anything is
/// written. Tolerance as `FamilyExportTests`: relative 1e-5 (export only moves data, F32).
final class Gemma3ExportTests: XCTestCase {
    /// Every layer keeps 1,536 of its 2,048 channels, a different quarter dropped in each layer; attention whole.
    func uniformPlan(_ config: ModelConfig) throws -> PrunePlan {
        try Plans.plan(config.layers.enumerated().map { i, spec in
            StructureMask.Layer(keptKVGroups: Array(0..<spec.kvHeads), keptChannels: (0..<spec.ffnDim).filter { ($0 + i) % 4 != 0 })
        }, for: config)
    }

    func testUniformMLPPlanExportsAsGemma3AndMatchesTheMaskedForward() throws {
        let m = try Models.gemma3()
        let config = m.model.config
        let plan = try uniformPlan(config)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let dense = try m.model.dense.logits([m.ids])[0]
        XCTAssertNotNil(compareAll(masked.map(Double.init), dense.map(Double.init), Tolerance(relative: 1e-3), "pruning changes the logits"))

        let compacted = try plan.compact(config: config, weights: m.model.weights)
        XCTAssertEqual(Set(compacted.config.layers.map(\.ffnDim)), [1536])
        XCTAssertEqual(compacted.weights.layers[3].postMLPNorm, m.model.layerWeights(3).postMLPNorm, "post norms stay whole")
        let folder = try temporaryFolder(self)
        let out = (folder as NSString).appendingPathComponent("gemma3-mlp25.gguf")
        let request = ExportRequest(config: compacted.config, weights: compacted.weights, format: .gguf, dtype: .f32,
                                    tokenizer: m.checkpoint.tokenizer, name: "gemma3-mlp25", extraFiles: [:], provenance: [:])
        let result = try ModelExporter.export(request, to: out, force: false)
        XCTAssertEqual(result.architecture, "gemma3")
        let reloaded = try CheckpointLoader.load(path: out)
        var expected = compacted.config
        expected.contextLength = reloaded.config.contextLength
        XCTAssertEqual(reloaded.config, expected, "every Gemma option survives the GGUF")
        let model = try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: out)
        assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 gguf vs masked")
    }

    /// Layer 0 narrower than the rest, and layer 3's only KV group (its whole attention) removed.
    func heterogeneousPlan(_ config: ModelConfig) throws -> PrunePlan {
        try Plans.plan(config.layers.enumerated().map { i, spec in
            StructureMask.Layer(keptKVGroups: i == 3 ? [] : Array(0..<spec.kvHeads),
                                keptChannels: Array(0..<(i == 0 ? 1024 : spec.ffnDim)))
        }, for: config)
    }

    func testPerLayerShapesRunMaskedAndCompactedAndExportOnlyAsHF() throws {
        let m = try Models.gemma3()
        let config = m.model.config
        let plan = try heterogeneousPlan(config)
        let compacted = try plan.compact(config: config, weights: m.model.weights)
        XCTAssertFalse(compacted.config.layers[3].hasAttention, "one KV head: removing it removes the layer's attention")
        XCTAssertNil(compacted.weights.layers[3].postAttentionNorm, "its post-attention norm goes with it")
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let inMemory = try LanguageModel(config: compacted.config, weights: compacted.weights)
        assertLogitsEqual(try inMemory.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 compacted vs masked")

        let folder = try temporaryFolder(self)
        func request(_ format: ExportFormat) -> ExportRequest {
            ExportRequest(config: compacted.config, weights: compacted.weights, format: format, dtype: .f32,
                          tokenizer: m.checkpoint.tokenizer, name: "het", extraFiles: [:], provenance: [:])
        }
        let gguf = (folder as NSString).appendingPathComponent("het.gguf")
        XCTAssertThrowsError(try ModelExporter.export(request(.gguf), to: gguf, force: false)) {
            guard case CheckpointWriteError.unsupportedModel? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: gguf), "gguf: nothing written")
        let hf = (folder as NSString).appendingPathComponent("het-hf")
        XCTAssertEqual(try ModelExporter.export(request(.hf), to: hf, force: false).architecture, "gemma3_text")
        let reloaded = try CheckpointLoader.load(path: hf)
        XCTAssertEqual(reloaded.config.layers, compacted.config.layers)
        let model = try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: hf)
        assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 per-layer hf vs masked")
    }

    /// The query-head granularity on the one-KV-head layers: every layer keeps 3 of its 4 query heads (a different
    /// one dropped per layer) and its KV group. The masked forward equals the GGUF `gemma3` export with
    /// `head_count` 3, reloaded; keeping all four heads through `keptQueryHeads` is the dense model.
    func testQueryHeadPlanExportsAndMatchesTheMaskedForward() throws {
        let m = try Models.gemma3()
        let config = m.model.config
        let allHeads = StructureMask(layers: config.layers.map {
            StructureMask.Layer(keptKVGroups: [0], keptChannels: Array(0..<$0.ffnDim), keptQueryHeads: Array(0..<$0.queryHeads))
        })
        assertLogitsEqual(try m.model.prepared(mask: allHeads).logits([m.ids])[0], try m.model.dense.logits([m.ids])[0],
                          relative: 0, "all query heads kept = dense")
        let plan = try Plans.plan(config.layers.indices.map { l in
            StructureMask.Layer(keptKVGroups: [0], keptChannels: Array(0..<config.layers[l].ffnDim),
                                keptQueryHeads: (0..<4).filter { $0 != l % 4 })
        }, for: config)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let compacted = try plan.compact(config: config, weights: m.model.weights)
        XCTAssertEqual(Set(compacted.config.layers.map(\.queryHeads)), [3])
        XCTAssertEqual(plan.keptParameters.attention, 18 * (2 * 3 + 2) * 256 * 640, "q/o of 3 heads + k/v of the group")
        let out = (try temporaryFolder(self) as NSString).appendingPathComponent("gemma3-3heads.gguf")
        let request = ExportRequest(config: compacted.config, weights: compacted.weights, format: .gguf, dtype: .f32,
                                    tokenizer: m.checkpoint.tokenizer, name: "gemma3-3heads", extraFiles: [:], provenance: [:])
        XCTAssertEqual(try ModelExporter.export(request, to: out, force: false).architecture, "gemma3")
        let reloaded = try CheckpointLoader.load(path: out)
        XCTAssertEqual(reloaded.config.layers[0], LayerSpec(queryHeads: 3, kvHeads: 1, headDim: 256, ffnDim: 2048))
        XCTAssertEqual(reloaded.config.attentionScale, config.attentionScale, "the scale follows the head width, not the head count")
        let model = try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: out)
        assertLogitsEqual(try model.dense.logits([m.ids])[0], masked, relative: 1e-5, "gemma3 3-head gguf vs masked")
    }
}
