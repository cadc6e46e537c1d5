import XCTest
import FixtureSupport
import Kernels
@testable import Checkpoints

/// stories260K read three ways: the original llama2.c `.bin`, and the Hugging Face F32/BF16/F16 copies made by
/// fixtures/make/02_forward.py (which permutes q/k to rotate-half exactly like HF's converter).
final class Llama2cAndHuggingFaceTests: XCTestCase {
    /// Every tensor of `a` and `b`, named, for element-wise comparison.
    private func tensors(_ w: ModelWeights) -> [(String, [Float])] {
        var out: [(String, [Float])] = [("tokenEmbedding", w.tokenEmbedding), ("finalNorm", w.finalNorm)]
        for (i, l) in w.layers.enumerated() {
            out += [("\(i).attentionNorm", l.attentionNorm), ("\(i).wq", l.wq), ("\(i).wk", l.wk), ("\(i).wv", l.wv),
                    ("\(i).wo", l.wo), ("\(i).mlpNorm", l.mlpNorm), ("\(i).gate", l.gate), ("\(i).up", l.up), ("\(i).down", l.down)]
        }
        if let h = w.head { out.append(("head", h)) }
        return out
    }

    private func assertEqual(_ a: ModelWeights, _ b: ModelWeights, rounding: (Float) -> Float = { $0 },
                             file: StaticString = #filePath, line: UInt = #line) {
        let ta = tensors(a), tb = tensors(b)
        XCTAssertEqual(ta.map(\.0), tb.map(\.0), file: file, line: line)
        for ((name, x), (_, y)) in zip(ta, tb) {
            XCTAssertEqual(x.count, y.count, name, file: file, line: line)
            if let i = x.indices.first(where: { rounding(x[$0]).bitPattern != y[$0].bitPattern }) {
                XCTFail("\(name)[\(i)]: \(rounding(x[i])) != \(y[i])", file: file, line: line)
            }
        }
    }

    /// Tolerance: exact. Both files hold the same float32 numbers; only the q/k row order differs, so a wrong RoPE
    /// permutation (or any offset slip in the llama2.c layout) shows up as a mismatch.
    func testLlama2cBinMatchesHuggingFaceF32BitForBit() throws {
        let bin = try LLoad.llama2c()
        let hf = try CheckpointLoader.load(path: Shared.url("fixtures/models/stories260K-hf").path)
        XCTAssertEqual(bin.format, .llama2c)
        XCTAssertEqual(hf.format, .huggingFace)
        let spec = LayerSpec(queryHeads: 8, kvHeads: 4, headDim: 8, ffnDim: 172)
        XCTAssertEqual(bin.config, ModelConfig(architecture: "llama", hiddenSize: 64, vocabSize: 512,
                                               layers: Array(repeating: spec, count: 5), normEpsilon: 1e-5,
                                               ropeTheta: 10000, tiedEmbeddings: true, contextLength: 512))
        XCTAssertEqual(hf.config, bin.config)
        XCTAssertNil(bin.weights.head)
        assertEqual(bin.weights, hf.weights)
        // The permutation is not the identity on this model: the raw llama2.c wq differs from the canonical one.
        let raw = try Llama2cCheckpoint(path: Shared.url("models/stories260K/stories260K.bin").path)
        XCTAssertNotEqual(try raw.floats(named: "wq.0"), bin.weights.layers[0].wq)
        XCTAssertEqual(try raw.floats(named: "wv.0"), bin.weights.layers[0].wv)
    }

    /// Tolerance: exact. torch cast the F32 weights with round-to-nearest-even; widening back is exact, so each
    /// value must equal the F32 value rounded the same way.
    func testHuggingFaceBF16AndF16AreTheRoundedF32Values() throws {
        let f32 = try CheckpointLoader.load(path: Shared.url("fixtures/models/stories260K-hf").path)
        let bf16 = try CheckpointLoader.load(path: Shared.url("fixtures/models/stories260K-hf-bf16").path)
        let f16 = try CheckpointLoader.load(path: Shared.url("fixtures/models/stories260K-hf-f16").path)
        XCTAssertEqual(bf16.config, f32.config)
        XCTAssertEqual(f16.config, f32.config)
        assertEqual(f32.weights, bf16.weights, rounding: { Precision.float(fromBFloat16: Precision.bfloat16(from: $0)) })
        assertEqual(f32.weights, f16.weights, rounding: { Float(Float16($0)) })
    }

    func testTokenizerSources() throws {
        let bin = try LLoad.llama2c()
        guard case .llama2c(let tok) = bin.tokenizer else { return XCTFail("expected a llama2.c tokenizer, got \(bin.tokenizer)") }
        XCTAssertEqual((tok as NSString).lastPathComponent, "tok512.bin")
        let hf = try CheckpointLoader.load(path: Shared.url("fixtures/models/stories260K-hf").path)
        guard case .llama2c(let hfTok) = hf.tokenizer else { return XCTFail("expected tok512.bin in the HF dir, got \(hf.tokenizer)") }
        XCTAssertEqual((hfTok as NSString).lastPathComponent, "tok512.bin")
    }

    func testHFConfigParsesV5RopeParametersAndDefaults() throws {
        let cfg = try HFConfig.load(path: Shared.url("fixtures/models/stories260K-hf/config.json").path)
        XCTAssertEqual(cfg.modelType, "llama")
        XCTAssertEqual(cfg.ropeTheta, 10000)
        XCTAssertEqual(cfg.headDim, 8)
        XCTAssertTrue(cfg.tieWordEmbeddings)

        let dir = try makeTemporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let minimal = """
        {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "vocab_size": 100, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
         "num_key_value_heads_per_layer": [2, 0], "num_attention_heads_per_layer": [4, 0], "intermediate_size_per_layer": [128, 0]}
        """
        let path = dir.appendingPathComponent("config.json")
        try Data(minimal.utf8).write(to: path)
        let q = try HFConfig.load(path: path.path)
        XCTAssertEqual(q.kvHeads, 4)            // default = heads
        XCTAssertEqual(q.headDim, 16)           // default = hidden / heads
        XCTAssertEqual(q.ropeTheta, 500000)     // from rope_parameters
        XCTAssertFalse(q.tieWordEmbeddings)     // default false
        XCTAssertTrue(q.attentionBias)          // qwen2 always has q/k/v biases
        let layers = q.modelConfig.layers
        XCTAssertEqual(layers[0], LayerSpec(queryHeads: 4, kvHeads: 2, headDim: 16, ffnDim: 128))
        XCTAssertEqual(layers[1], LayerSpec(queryHeads: 0, kvHeads: 0, headDim: 16, ffnDim: 0, hasAttention: false, hasMLP: false))
    }

    /// The RoPE row permutation on a hand-made example: head width 4, rows (0,1,2,3) -> (0,2,1,3).
    func testPermuteToRotateHalf() {
        let w: [Float] = [0, 0, 1, 1, 2, 2, 3, 3, 10, 10, 11, 11, 12, 12, 13, 13]  // [2 heads * 4, 2]
        XCTAssertEqual(WeightAssembly.permuteToRotateHalf(w, heads: 2, headDim: 4),
                       [0, 0, 2, 2, 1, 1, 3, 3, 10, 10, 12, 12, 11, 11, 13, 13])
    }
}

enum LLoad {
    static func llama2c() throws -> LoadedCheckpoint {
        try CheckpointLoader.load(path: Shared.url("models/stories260K/stories260K.bin").path)
    }
}
