import Essentials
import Checkpoints
import FixtureSupport
import Foundation
import Kernels
import Transformer
import XCTest

/// The model holds one copy of the weights (q/k/v and gate/up stacked); the canonical layout is re-derived from it.
/// These checks are exact (`==` on every Float): re-deriving only slices and copies, it never computes.
final class WeightStorageTests: XCTestCase {
    /// A three-layer model with q/k/v biases, a layer whose attention is absent but whose tensors are still sized
    /// by its spec, and a layer of another width: every case `FusedLayerWeights` has to store and give back.
    static func synthetic() -> (ModelConfig, ModelWeights) {
        let d = 16, vocab = 11
        let layers = [LayerSpec(queryHeads: 4, kvHeads: 2, headDim: 4, ffnDim: 12),
                      LayerSpec(queryHeads: 4, kvHeads: 2, headDim: 4, ffnDim: 8, hasAttention: false),
                      LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 4, ffnDim: 5)]
        let config = ModelConfig(architecture: "qwen2", hiddenSize: d, vocabSize: vocab, layers: layers, normEpsilon: 1e-5,
                                 ropeTheta: 10_000, tiedEmbeddings: false, attentionBias: true, contextLength: 64)
        var rng = Xoshiro256(seed: 7)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextUnitFloat() - 0.5 } }
        let weights = ModelWeights(
            tokenEmbedding: values(vocab * d),
            layers: layers.map { s in
                LayerWeights(attentionNorm: values(d), wq: values(s.queryDim * d), wk: values(s.kvDim * d), wv: values(s.kvDim * d),
                             wo: values(d * s.queryDim), bq: values(s.queryDim), bk: values(s.kvDim), bv: values(s.kvDim),
                             mlpNorm: values(d), gate: values(s.ffnDim * d), up: values(s.ffnDim * d), down: values(d * s.ffnDim))
            },
            finalNorm: values(d), head: values(vocab * d))
        return (config, weights)
    }

    func assertIdentical(_ a: LayerWeights, _ b: LayerWeights, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.attentionNorm, b.attentionNorm, "\(what) attention_norm", file: file, line: line)
        XCTAssertEqual(a.wq, b.wq, "\(what) wq", file: file, line: line)
        XCTAssertEqual(a.wk, b.wk, "\(what) wk", file: file, line: line)
        XCTAssertEqual(a.wv, b.wv, "\(what) wv", file: file, line: line)
        XCTAssertEqual(a.wo, b.wo, "\(what) wo", file: file, line: line)
        XCTAssertEqual(a.bq, b.bq, "\(what) bq", file: file, line: line)
        XCTAssertEqual(a.bk, b.bk, "\(what) bk", file: file, line: line)
        XCTAssertEqual(a.bv, b.bv, "\(what) bv", file: file, line: line)
        XCTAssertEqual(a.mlpNorm, b.mlpNorm, "\(what) mlp_norm", file: file, line: line)
        XCTAssertEqual(a.gate, b.gate, "\(what) gate", file: file, line: line)
        XCTAssertEqual(a.up, b.up, "\(what) up", file: file, line: line)
        XCTAssertEqual(a.down, b.down, "\(what) down", file: file, line: line)
    }

    func assertIdentical(_ a: ModelWeights, _ b: ModelWeights, _ what: String) {
        XCTAssertEqual(a.tokenEmbedding, b.tokenEmbedding, "\(what) embedding")
        XCTAssertEqual(a.finalNorm, b.finalNorm, "\(what) final norm")
        XCTAssertEqual(a.head, b.head, "\(what) head")
        XCTAssertEqual(a.layers.count, b.layers.count)
        for (i, (x, y)) in zip(a.layers, b.layers).enumerated() { assertIdentical(x, y, "\(what) layer \(i)") }
    }

    func testCanonicalWeightsComeBackExactly() throws {
        let (config, original) = Self.synthetic()
        let model = try LanguageModel(config: config, weights: original)
        assertIdentical(model.weights, original, "synthetic")
        for i in config.layers.indices { assertIdentical(model.layerWeights(i), original.layers[i], "synthetic layerWeights(\(i))") }

        let loaded = try CheckpointLoader.load(path: try Shared.url("models/stories260K/stories260K.bin").path)
        let stories = try LanguageModel(config: loaded.config, weights: loaded.weights)
        assertIdentical(stories.weights, loaded.weights, "stories260K")
        XCTAssertNil(stories.weights.head, "a tied head stays tied")
    }

    /// A masked model gathers from the stored copy exactly what compacting the canonical weights keeps, so the two
    /// forwards are the same arithmetic on the same bytes: equal logits, not merely close ones.
    func testMaskedGatherEqualsModelOfGatheredWeights() throws {
        let (config, original) = Self.synthetic()
        let model = try LanguageModel(config: config, weights: original)
        let mask = StructureMask(layers: [StructureMask.Layer(keptKVGroups: [1], keptChannels: [0, 3, 11]),
                                          StructureMask.Layer(keptKVGroups: [0, 1], keptChannels: [2, 5]),
                                          StructureMask.Layer(keptKVGroups: [0], keptChannels: [0, 1, 2, 3, 4])])
        var gathered = original
        var specs = config.layers
        for (i, keep) in mask.layers.enumerated() {
            let s = config.layers[i], w = original.layers[i], d = config.hiddenSize, hd = s.headDim, g = s.groupSize
            let heads = keep.keptKVGroups.flatMap { k in (0..<g).map { k * g + $0 } }
            func rows(_ m: [Float], _ ids: [Int], _ size: Int, width: Int) -> [Float] {
                var out: [Float] = []
                for id in ids { out += m[(id * size * width)..<((id + 1) * size * width)] }
                return out
            }
            func columns(_ m: [Float], _ ids: [Int], _ size: Int, width: Int) -> [Float] {
                var out: [Float] = []
                for r in 0..<d { for id in ids { out += m[(r * width + id * size)..<(r * width + (id + 1) * size)] } }
                return out
            }
            specs[i].queryHeads = heads.count
            specs[i].kvHeads = keep.keptKVGroups.count
            specs[i].ffnDim = keep.keptChannels.count
            gathered.layers[i] = LayerWeights(
                attentionNorm: w.attentionNorm, wq: rows(w.wq, heads, hd, width: d), wk: rows(w.wk, keep.keptKVGroups, hd, width: d),
                wv: rows(w.wv, keep.keptKVGroups, hd, width: d), wo: columns(w.wo, heads, hd, width: s.queryDim),
                bq: rows(w.bq!, heads, hd, width: 1), bk: rows(w.bk!, keep.keptKVGroups, hd, width: 1), bv: rows(w.bv!, keep.keptKVGroups, hd, width: 1),
                mlpNorm: w.mlpNorm, gate: rows(w.gate, keep.keptChannels, 1, width: d), up: rows(w.up, keep.keptChannels, 1, width: d),
                down: columns(w.down, keep.keptChannels, 1, width: s.ffnDim))
        }
        var smaller = config
        smaller.layers = specs
        let direct = try LanguageModel(config: smaller, weights: gathered).dense.logits([[1, 4, 9, 2, 7]])
        let masked = try model.prepared(mask: mask).logits([[1, 4, 9, 2, 7]])
        XCTAssertEqual(direct, masked)
        // Keeping everything shares the stored matrices: the dense model's numbers again.
        XCTAssertEqual(try model.prepared(mask: .dense(config)).logits([[3, 1, 4, 1, 5]]), try model.dense.logits([[3, 1, 4, 1, 5]]))
    }
}
