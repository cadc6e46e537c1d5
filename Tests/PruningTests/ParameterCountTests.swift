import XCTest
import Checkpoints
import Transformer
@testable import Pruning

final class ParameterCountTests: XCTestCase {
    /// Hand-counted toy: d = 8, head dim 4, 2 KV groups of G = 2 query heads, 6 channels, 2 layers, vocab 16.
    func testToyCountsByHand() {
        let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 6)
        XCTAssertEqual(config.unitParameterCost(.attention, layer: 0), (2 * 2 + 2) * 4 * 8)     // 192
        XCTAssertEqual(config.unitParameterCost(.mlp, layer: 1), 3 * 8)                         // 24
        XCTAssertEqual(config.parameterCost(of: .kvGroup(layer: 1, group: 0)), 192)
        XCTAssertEqual(config.parameterCost(of: .mlpChannel(layer: 0, channel: 5)), 24)
        XCTAssertEqual(config.parameterCost(of: .attentionSublayer(layer: 0)), 384)
        XCTAssertEqual(config.parameterCost(of: .mlpSublayer(layer: 0)), 144)
        XCTAssertEqual(config.parameterCost(of: .layer(1)), 528)
        XCTAssertEqual(config.parameterCount, ParameterCount(attention: 768, mlp: 288, embeddings: 128, head: 128,
                                                             norms: 2 * 2 * 8 + 8))
        XCTAssertEqual(config.structureCount(.attention), 4)
        XCTAssertEqual(config.structureCount(.mlp), 12)
        // q/k/v biases (Qwen2 layout) belong to the group: G·hd query entries + hd key + hd value = (G + 2)·hd.
        let biased = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 6, bias: true)
        XCTAssertEqual(biased.unitParameterCost(.attention, layer: 0), 192 + (2 + 2) * 4)
        XCTAssertEqual(biased.parameterCount.attention, 2 * 2 * 208)
        // Tied embeddings: no separate head.
        var tied = config
        tied.tiedEmbeddings = true
        XCTAssertEqual(tied.parameterCount.head, 0)
    }

    /// A mask with an empty attention in one layer and an empty MLP in the other: derived specs drop the
    /// sublayers, kept parameters follow, and the pruned config counts the same.
    func testMaskLayerSpecsAndKeptParameters() throws {
        let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 6)
        let mask = StructureMask(layers: [
            .init(keptKVGroups: [1], keptChannels: []),
            .init(keptKVGroups: [], keptChannels: [0, 2]),
        ])
        try mask.validate(against: config)
        XCTAssertEqual(mask.layerSpecs(for: config), [
            LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 4, ffnDim: 0, hasAttention: true, hasMLP: false),
            LayerSpec(queryHeads: 0, kvHeads: 0, headDim: 4, ffnDim: 2, hasAttention: false, hasMLP: true),
        ])
        XCTAssertEqual(mask.keptParameters(in: config),
                       ParameterCount(attention: 192, mlp: 48, embeddings: 128, head: 128, norms: 8 + 8 + 8))
        XCTAssertEqual(mask.keptCount(.attention), 1)
        XCTAssertEqual(mask.keptCount(.mlp), 2)
        XCTAssertEqual(StructureMask.dense(config).keptParameters(in: config), config.parameterCount)
        // A switched-off sublayer counts nothing even if ids are listed.
        let off = StructureMask(layers: [.init(keptKVGroups: [0, 1], keptChannels: [0], attention: false, mlp: true),
                                         .init(keptKVGroups: [0], keptChannels: [1])])
        XCTAssertEqual(off.keptParameters(in: config).attention, 192)
        let rate = AchievedRate(kept: mask.keptParameters(in: config), dense: config.parameterCount)
        XCTAssertEqual(rate.attentionMLP, 1 - 240.0 / 1056, accuracy: 1e-15)
        XCTAssertEqual(rate.wholeModel, 1 - 520.0 / 1352, accuracy: 1e-15)
    }

    /// Ids out of range or not ascending are typed errors (the mask type's validation).
    func testMaskValidationErrors() {
        let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 6)
        let bad = [
            StructureMask(layers: [.init(keptKVGroups: [2], keptChannels: []), .init(keptKVGroups: [], keptChannels: [])]),
            StructureMask(layers: [.init(keptKVGroups: [1, 0], keptChannels: []), .init(keptKVGroups: [], keptChannels: [])]),
            StructureMask(layers: [.init(keptKVGroups: [], keptChannels: [3, 3]), .init(keptKVGroups: [], keptChannels: [])]),
            StructureMask(layers: [.init(keptKVGroups: [], keptChannels: [])]),
        ]
        for mask in bad {
            XCTAssertThrowsError(try mask.validate(against: config)) { XCTAssertTrue($0 is MaskError, "\($0)") }
        }
    }

    /// spec §2.5 tables, reproduced to the printed digits from configs built by hand (public HF configs). The kept
    /// counts come from a real global hard mask on distinct random scores.
    func testSpecSection25Table() {
        struct Model {
            let name: String; let d: Int; let layers: Int; let heads: Int; let kv: Int; let ffn: Int; let vocab: Int
            let prunableB: Double; let totalB: Double; let groups: Int; let channels: Int
            let groupCostM: Double; let channelCostK: Double
        }
        func config(_ m: Model) -> ModelConfig {
            ModelConfig(architecture: "llama", hiddenSize: m.d, vocabSize: m.vocab,
                        layers: Array(repeating: LayerSpec(queryHeads: m.heads, kvHeads: m.kv, headDim: 128, ffnDim: m.ffn), count: m.layers),
                        normEpsilon: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, contextLength: 4096)
        }
        let llama2_7b = Model(name: "LLaMA-2-7B", d: 4096, layers: 32, heads: 32, kv: 32, ffn: 11008, vocab: 32000,
                              prunableB: 6.476, totalB: 6.738, groups: 1024, channels: 352_256, groupCostM: 2.097, channelCostK: 12.3)
        let llama2_13b = Model(name: "LLaMA-2-13B", d: 5120, layers: 40, heads: 40, kv: 40, ffn: 13824, vocab: 32000,
                               prunableB: 12.688, totalB: 13.016, groups: 1600, channels: 552_960, groupCostM: 2.621, channelCostK: 15.4)
        let llama3_8b = Model(name: "LLaMA-3-8B", d: 4096, layers: 32, heads: 32, kv: 8, ffn: 14336, vocab: 128_256,
                              prunableB: 6.979, totalB: 8.030, groups: 256, channels: 458_752, groupCostM: 5.243, channelCostK: 12.3)
        let mistral = Model(name: "Mistral-7B", d: 4096, layers: 32, heads: 32, kv: 8, ffn: 14336, vocab: 32000,
                            prunableB: 6.979, totalB: 7.242, groups: 256, channels: 458_752, groupCostM: 5.243, channelCostK: 12.3)
        func printed(_ x: Double, _ digits: Int) -> Double {
            let p = pow(10.0, Double(digits)); return (x * p).rounded() / p
        }
        for m in [llama2_7b, llama2_13b, llama3_8b, mistral] {
            let c = config(m)
            let count = c.parameterCount
            XCTAssertEqual(printed(Double(count.prunable) / 1e9, 3), m.prunableB, m.name)
            XCTAssertEqual(printed(Double(count.total) / 1e9, 3), m.totalB, m.name)
            XCTAssertEqual(c.structureCount(.attention), m.groups, m.name)
            XCTAssertEqual(c.structureCount(.mlp), m.channels, m.name)
            XCTAssertEqual(printed(Double(c.unitParameterCost(.attention, layer: 0)) / 1e6, 3), m.groupCostM, m.name)
            XCTAssertEqual(printed(Double(c.unitParameterCost(.mlp, layer: 0)) / 1e3, 1), m.channelCostK, m.name)
        }
        // (model, keep ratio, groups kept, channels kept, kept share of attn+MLP (5 digits), of all params (4 digits))
        let rows: [(Model, Double, Int, Int, Double, Double)] = [
            (llama2_7b, 0.7, 717, 246_580, 0.70007, 0.7117),
            (llama2_7b, 0.6, 615, 211_354, 0.60020, 0.6158),
            (llama2_7b, 0.5, 512, 176_128, 0.50000, 0.5195),
            (llama2_13b, 0.7, 1120, 387_072, 0.70000, 0.7076),
            (llama3_8b, 0.7, 180, 321_127, 0.70060, 0.7398),
            (llama3_8b, 0.5, 128, 229_376, 0.50000, 0.5654),
        ]
        var rng = SplitRandom(seed: 2024)
        for (m, rho, groups, channels, share, shareAll) in rows {
            let c = config(m)
            XCTAssertEqual(hardMaskKeptCount(count: m.groups, keepRatio: rho), groups)
            XCTAssertEqual(hardMaskKeptCount(count: m.channels, keepRatio: rho), channels)
            let scores = KeepProbabilities(attention: (0..<m.layers).map { _ in (0..<m.kv).map { _ in rng.next() } },
                                           mlp: (0..<m.layers).map { _ in (0..<m.ffn).map { _ in rng.next() } })
            let mask = scores.hardMask(keepRatio: rho, scope: .global, config: c)
            XCTAssertEqual(mask.keptCount(.attention), groups, "\(m.name) ρ=\(rho)")
            XCTAssertEqual(mask.keptCount(.mlp), channels, "\(m.name) ρ=\(rho)")
            let kept = mask.keptParameters(in: c), dense = c.parameterCount
            XCTAssertEqual(printed(Double(kept.prunable) / Double(dense.prunable), 5), share, "\(m.name) ρ=\(rho)")
            XCTAssertEqual(printed(Double(kept.total) / Double(dense.total), 4), shareAll, "\(m.name) ρ=\(rho)")
        }
    }
}
