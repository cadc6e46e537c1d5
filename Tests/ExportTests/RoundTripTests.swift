import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// Export -> load -> logits against the masked forward pass of the original model (issue 6, "Done when").
/// F32 tolerance: relative 1e-5 with an absolute floor of 1e-5 x the largest logit. Export is pure data movement
/// (plus the exact RoPE row permutation for GGUF), so the reloaded model computes the same GEMMs on the same
/// values as the masked pass; the floor only covers BLAS summation-order differences between shapes.
final class RoundTripTests: XCTestCase {
    /// Exports `plan` of `m` and returns the reloaded checkpoint and its logits next to the masked logits.
    func roundTrip(_ m: TestModel, _ plan: PrunePlan, format: ExportFormat, dtype: WeightDType = .f32,
                   folder: String) throws -> (reloaded: LoadedCheckpoint, logits: [Float], compacted: (config: ModelConfig, weights: ModelWeights), result: ExportResult) {
        let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
        let out = (folder as NSString).appendingPathComponent(format == .hf ? "model-\(dtype)" : "model-\(dtype).gguf")
        let provenance = ["dense_parameters": "\(m.model.config.parameterCount.total)"]
        let request = ExportRequest(config: compacted.config, weights: compacted.weights, format: format, dtype: dtype,
                                    tokenizer: m.checkpoint.tokenizer, name: "test", extraFiles: ["plan.json": try plan.jsonData()],
                                    provenance: provenance)
        let result = try ModelExporter.export(request, to: out, force: false)
        let reloaded = try CheckpointLoader.load(path: out)
        XCTAssertEqual(ExportProvenance.read(reloaded), provenance, "\(format): provenance reads back")
        let lm = try LanguageModel(config: reloaded.config, weights: reloaded.weights, file: out)
        return (reloaded, try lm.dense.logits([m.ids])[0], compacted, result)
    }

    func checkHeterogeneous(_ m: TestModel, name: String) throws {
        let folder = try temporaryFolder(self)
        let plan = try Plans.heterogeneous(m.model.config)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]

        // Compaction alone: a dense model of the compacted shapes gives the masked logits.
        let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
        XCTAssertFalse(compacted.config.layers[1].hasAttention)
        XCTAssertFalse(compacted.config.layers[2].hasMLP)
        let direct = try LanguageModel(config: compacted.config, weights: compacted.weights).dense.logits([m.ids])[0]
        assertLogitsEqual(direct, masked, relative: 1e-5, "\(name) compacted vs masked")

        for format in ExportFormat.allCases {
            let r = try roundTrip(m, plan, format: format, folder: folder)
            assertLogitsEqual(r.logits, masked, relative: 1e-5, "\(name) \(format) f32 export vs masked forward")
            XCTAssertFalse(r.result.uniform)
            let layers = r.reloaded.config.layers
            XCTAssertEqual(layers.count, m.model.config.layers.count)
            XCTAssertFalse(layers[1].hasAttention, "\(format): layer 1 has no attention")
            XCTAssertEqual(layers[1].queryHeads, 0)
            if format == .hf {
                XCTAssertEqual(layers, compacted.config.layers, "hf stores the compacted shapes exactly")
                XCTAssertFalse(layers[2].hasMLP)
                XCTAssertEqual(r.reloaded.format, .huggingFace)
                let folderPath = r.reloaded.path
                XCTAssertTrue(FileManager.default.fileExists(atPath: folderPath + "/plan.json"))
                let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folderPath + "/config.json"))) as? [String: Any])
                XCTAssertEqual(json["num_attention_heads_per_layer"] as? [Int], layers.map { $0.hasAttention ? $0.queryHeads : 0 })
                XCTAssertEqual(json["intermediate_size_per_layer"] as? [Int], layers.map { $0.hasMLP ? $0.ffnDim : 0 })
                XCTAssertEqual((json["no_op_attention_layers"] as? [Int])?.contains(1), true)
                XCTAssertEqual(json["no_op_mlp_layers"] as? [Int], layers.indices.filter { !layers[$0].hasMLP })
            } else {
                XCTAssertEqual(r.reloaded.config.architecture, "deci")
                // llama.cpp placeholder: the MLP-free layer that keeps attention carries a 1-channel zero MLP.
                XCTAssertEqual(layers[2].ffnDim, 1)
                let gguf = try GGUFFile(path: r.reloaded.path)
                XCTAssertEqual(gguf.metadata["deci.attention.head_count"]?.ints, layers.map { $0.hasAttention ? $0.queryHeads : 0 })
                XCTAssertEqual(gguf.metadata["deci.feed_forward_length"]?.ints, layers.map { $0.hasMLP ? $0.ffnDim : 0 })
                for (i, (got, want)) in zip(layers, compacted.config.layers).enumerated() where i != 2 {
                    XCTAssertEqual(got, want, "layer \(i)")
                }
                if layers.count >= 8 {
                    XCTAssertEqual(gguf.metadata["deci.attention.head_count_kv"]?.ints?[7], 0)
                    XCTAssertEqual(gguf.metadata["deci.feed_forward_length"]?.ints?[7], 0, "a layer with nothing left has no MLP either")
                }
            }
        }
    }

    func testStories260KHeterogeneousRoundTrip() throws {
        try checkHeterogeneous(try Models.stories(), name: "stories260K")
    }

    func testSmolLM2HeterogeneousRoundTrip() throws {
        try checkHeterogeneous(try Models.smol(), name: "SmolLM2")
    }

    /// A uniform plan is a plain `llama` GGUF and a plain LlamaForCausalLM config (no per-layer keys).
    func testUniformPlanIsPlainLlama() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 2, channels: 86)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        for format in ExportFormat.allCases {
            let r = try roundTrip(m, plan, format: format, folder: folder)
            XCTAssertTrue(r.result.uniform)
            assertLogitsEqual(r.logits, masked, relative: 1e-5, "uniform \(format)")
            XCTAssertEqual(Set(r.reloaded.config.layers), [LayerSpec(queryHeads: 4, kvHeads: 2, headDim: 8, ffnDim: 86)])
            if format == .gguf {
                let gguf = try GGUFFile(path: r.reloaded.path)
                XCTAssertEqual(gguf.architecture, "llama")
                XCTAssertEqual(gguf.metadata["llama.attention.head_count"], .uint32(4))
                XCTAssertEqual(gguf.metadata["llama.attention.head_count_kv"], .uint32(2))
                XCTAssertEqual(gguf.metadata["llama.feed_forward_length"], .uint32(86))
                XCTAssertEqual(gguf.metadata["tokenizer.ggml.model"]?.string, "llama", "the llama2.c tokenizer is carried over")
            } else {
                let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: r.reloaded.path + "/config.json"))) as? [String: Any])
                XCTAssertEqual(json["architectures"] as? [String], ["LlamaForCausalLM"])
                XCTAssertEqual(json["model_type"] as? String, "llama")
                XCTAssertEqual(json["num_attention_heads"] as? Int, 4)
                XCTAssertEqual(json["num_key_value_heads"] as? Int, 2)
                XCTAssertEqual(json["intermediate_size"] as? Int, 86)
                XCTAssertEqual(json["head_dim"] as? Int, 8)
                XCTAssertNil(json["num_attention_heads_per_layer"])
                XCTAssertNil(json["intermediate_size_per_layer"])
                XCTAssertTrue(FileManager.default.fileExists(atPath: r.reloaded.path + "/tok512.bin"))
            }
        }
    }

    /// Layer 0 without attention: the GGUF gets one all-zero KV group there (llama.cpp derives the head width from
    /// layer 0) and the logits stay those of the masked pass.
    func testAttentionFreeFirstLayerGGUF() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        var layers = StructureMask.dense(m.model.config).layers
        layers[0].attention = false
        layers[3].keptChannels = [1, 5, 9]
        let plan = try Plans.plan(layers, for: m.model.config)
        let masked = try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0]
        let r = try roundTrip(m, plan, format: .gguf, folder: folder)
        assertLogitsEqual(r.logits, masked, relative: 1e-5, "attention-free layer 0")
        XCTAssertEqual(r.reloaded.config.layers[0], LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 8, ffnDim: 172))
        XCTAssertTrue(r.result.notes.contains { $0.contains("layer 0") })
    }

    /// The writers' own encoders are checked against the reader: GGUF Q8_0 / F16 and safetensors BF16 / F16 read back
    /// exactly as `WeightDType.roundTrip` predicts.
    func expectedWeights(_ compacted: (config: ModelConfig, weights: ModelWeights), format: ExportFormat, dtype: WeightDType) -> ModelWeights {
        var w = compacted.weights
        let d = compacted.config.hiddenSize
        // hf rounds every tensor; GGUF keeps 1-D tensors in F32 and stores Q8_0 rows that are not whole blocks as F16.
        func matrix(_ v: [Float], rowLength: Int) -> [Float] {
            if dtype == .q8_0 && rowLength % 32 != 0 { return WeightDType.f16.roundTrip(v) }
            return dtype.roundTrip(v)
        }
        func vector(_ v: [Float]) -> [Float] { format == .hf ? dtype.roundTrip(v) : v }
        w.tokenEmbedding = matrix(w.tokenEmbedding, rowLength: d)
        w.finalNorm = vector(w.finalNorm)
        if let head = w.head { w.head = matrix(head, rowLength: d) }
        for (i, spec) in compacted.config.layers.enumerated() {
            var l = w.layers[i]
            l.attentionNorm = vector(l.attentionNorm); l.mlpNorm = vector(l.mlpNorm)
            l.wq = matrix(l.wq, rowLength: d); l.wk = matrix(l.wk, rowLength: d); l.wv = matrix(l.wv, rowLength: d)
            l.wo = matrix(l.wo, rowLength: spec.queryDim)
            l.gate = matrix(l.gate, rowLength: d); l.up = matrix(l.up, rowLength: d)
            l.down = matrix(l.down, rowLength: spec.ffnDim)
            l.bq = l.bq.map(vector); l.bk = l.bk.map(vector); l.bv = l.bv.map(vector)
            w.layers[i] = l
        }
        return w
    }

    /// F16 / BF16 / Q8_0. Two checks per dtype:
    /// 1. exact storage: the reloaded logits equal (rel 1e-5, as for F32) the forward pass of the compacted weights
    ///    rounded in memory exactly as the writer stores them, so nothing but the stated rounding happens;
    /// 2. precision: the mean next-token NLL moves by less than a bound derived from the dtype's relative rounding
    ///    error `u` (F16 2^-11, BF16 2^-8, Q8_0 ~ 0.5/127 of the block maximum): a perturbation of relative size u
    ///    per weight moves the logits by about u x |logit| x sqrt(depth) in the worst case; with logits of order
    ///    10 and NLL changes bounded by the largest logit change, 40 u is a generous bound (0.02 F16, 0.16 BF16,
    ///    0.17 Q8_0), while a wrong layout would move the NLL by whole nats.
    func checkDTypes(_ m: TestModel, name: String) throws {
        let folder = try temporaryFolder(self)
        let plan = try Plans.heterogeneous(m.model.config)
        let vocab = m.model.config.vocabSize
        let maskedNLL = meanNLL(try m.model.prepared(mask: plan.structureMask).logits([m.ids])[0], ids: m.ids, vocab: vocab)
        for (format, dtype) in [(ExportFormat.hf, WeightDType.f16), (.hf, .bf16), (.gguf, .f16), (.gguf, .q8_0)] {
            let r = try roundTrip(m, plan, format: format, dtype: dtype, folder: folder)
            let expectedModel = try LanguageModel(config: r.compacted.config, weights: expectedWeights(r.compacted, format: format, dtype: dtype))
            assertLogitsEqual(r.logits, try expectedModel.dense.logits([m.ids])[0], relative: 1e-5, "\(name) \(format) \(dtype) vs rounded weights")
            let nll = meanNLL(r.logits, ids: m.ids, vocab: vocab)
            let bound = 40 * dtype.relativeRoundingBound
            XCTAssertEqual(nll, maskedNLL, accuracy: bound, "\(name) \(format) \(dtype): mean NLL \(nll) vs \(maskedNLL)")
            print("\(name) \(format) \(dtype): mean NLL \(nll) vs f32 \(maskedNLL) (|diff| \(abs(nll - maskedNLL)), bound \(bound))")
        }
    }

    func testStories260KStorageTypes() throws {
        try checkDTypes(try Models.stories(), name: "stories260K")
    }

    func testSmolLM2StorageTypes() throws {
        try checkDTypes(try Models.smol(), name: "SmolLM2")
    }
}
