import Essentials
import XCTest
import Checkpoints
import Kernels
import Transformer
@testable import Pruning

/// The score layouts of the policy-gradient granularities (spec §1.1, §2.7): what the vectors hold, how a sample
/// and a hard mask become a `StructureMask`, and that the budget counts the right units.
final class GranularityTests: XCTestCase {
    let config = tinyConfig(layers: 5, kvHeads: 3, groupSize: 2, ffn: 6)

    func testScoreCountsPerGranularity() throws {
        XCTAssertEqual(PruningGranularity.channels.scoreCount(.attention, config: config), 15)
        XCTAssertEqual(PruningGranularity.channels.scoreCount(.mlp, config: config), 30)
        XCTAssertEqual(PruningGranularity.heads.scoreCount(.attention, config: config), 15)
        XCTAssertEqual(PruningGranularity.heads.scoreCount(.mlp, config: config), 0)
        XCTAssertEqual(PruningGranularity.sublayers.scoreCount(.attention, config: config), 5)
        XCTAssertEqual(PruningGranularity.sublayers.scoreCount(.mlp, config: config), 5)
        XCTAssertEqual(PruningGranularity.layers.scoreCount(.attention, config: config), 5)
        XCTAssertEqual(PruningGranularity.layers.scoreCount(.mlp, config: config), 0)
        // Costs: a block is both sublayers; a sublayer is all its groups or channels.
        let group = config.unitParameterCost(.attention, layer: 0), channel = config.unitParameterCost(.mlp, layer: 0)
        XCTAssertEqual(PruningGranularity.sublayers.unitParameterCost(.attention, layer: 1, config: config), 3 * group)
        XCTAssertEqual(PruningGranularity.sublayers.unitParameterCost(.mlp, layer: 1, config: config), 6 * channel)
        XCTAssertEqual(PruningGranularity.layers.unitParameterCost(.attention, layer: 1, config: config), 3 * group + 6 * channel)
        // A scores file of another granularity does not validate.
        let layerScores = KeepProbabilities.uniform(config, value: 0.5, granularity: .layers)
        XCTAssertNoThrow(try layerScores.validate(against: config, granularity: .layers))
        XCTAssertThrowsError(try layerScores.validate(against: config, granularity: .channels))
    }

    /// Heads: the MLP is never touched, by samples or by the hard mask; the KV-group budget is the rate.
    func testHeadsKeepTheWholeMLP() throws {
        var rng = Xoshiro256(seed: 3)
        let s = KeepProbabilities(attention: (0..<5).map { l in (0..<3).map { Double(l * 3 + $0) / 15 } },
                                  mlp: (0..<5).map { _ in [] })
        for _ in 0..<20 {
            let mask = s.sampleMask(using: &rng).structureMask(config: config, granularity: .heads)
            for layer in mask.layers { XCTAssertEqual(layer.keptChannels, Array(0..<6)); XCTAssertTrue(layer.mlp) }
        }
        let hard = s.hardMask(keepRatio: 0.6, scope: .global, config: config, granularity: .heads)
        XCTAssertEqual(hard.keptCount(.attention), 15 - 6)   // floor(15 · 0.4) = 6 lowest removed
        XCTAssertEqual(hard.layers[0].keptKVGroups, [])         // layer 0 holds the lowest scores
        XCTAssertEqual(hard.layers[4].keptKVGroups, [0, 1, 2])
        XCTAssertEqual(hard.keptCount(.mlp), 30)
    }

    /// Layers: one score per block; a removed block runs neither sublayer; the hard mask keeps ⌈ρ·L⌉ blocks.
    func testLayersRemoveWholeBlocks() throws {
        let s = KeepProbabilities(attention: [[0.9], [0.1], [0.5], [0.3], [0.8]], mlp: Array(repeating: [], count: 5))
        let hard = s.hardMask(keepRatio: 0.6, scope: .global, config: config, granularity: .layers)
        XCTAssertEqual(hard.layers.map { $0.attention }, [true, false, true, false, true])
        XCTAssertEqual(hard.layers.map { $0.mlp }, [true, false, true, false, true])
        XCTAssertEqual(hard.layers[1].keptKVGroups, [])
        XCTAssertEqual(hard.layers[1].keptChannels, [])
        XCTAssertEqual(hard.layers[2].keptKVGroups, [0, 1, 2])
        XCTAssertEqual(hard.layers[2].keptChannels, Array(0..<6))
        XCTAssertNoThrow(try hard.validate(against: config))
        // Sampling draws one Bernoulli per block.
        var rng = Xoshiro256(seed: 1)
        let sample = s.sampleMask(using: &rng)
        XCTAssertEqual(sample.attention.map(\.count), [1, 1, 1, 1, 1])
        XCTAssertEqual(sample.mlp.map(\.count), [0, 0, 0, 0, 0])
    }

    /// Sublayers: attention and MLP blocks have separate budgets; the joint budget weighs them by parameters.
    func testSublayersAndJointBudget() throws {
        let s = KeepProbabilities(attention: [[0.9], [0.1], [0.5], [0.3], [0.8]], mlp: [[0.2], [0.7], [0.6], [0.95], [0.4]])
        let hard = s.hardMask(keepRatio: 0.6, scope: .global, config: config, granularity: .sublayers)
        XCTAssertEqual(hard.layers.map { $0.attention }, [true, false, true, false, true])
        XCTAssertEqual(hard.layers.map { $0.mlp }, [false, true, true, true, false])
        XCTAssertEqual(hard.layers[0].keptChannels, [])
        XCTAssertEqual(hard.layers[1].keptKVGroups, [])
        var projected = KeepProbabilities.uniform(config, value: 1, granularity: .sublayers)
        projected.projectOntoBudget(keepRatio: 0.5, scope: .joint, config: config, granularity: .sublayers)
        var weighted = 0.0, total = 0.0
        for l in 0..<5 {
            let a = Double(PruningGranularity.sublayers.unitParameterCost(.attention, layer: l, config: config))
            let m = Double(PruningGranularity.sublayers.unitParameterCost(.mlp, layer: l, config: config))
            weighted += a * projected.attention[l][0] + m * projected.mlp[l][0]
            total += a + m
        }
        XCTAssertEqual(weighted / total, 0.5, accuracy: 1e-3, "joint budget in parameters")
    }

    /// Sigmap over one value per layer would be undefined (n = 1); layer scores are mapped across layers.
    func testLayerInitMapsAcrossLayers() throws {
        let s = PruningGranularity.layers.initialScores(attention: [[1], [5], [2], [4], [3]], mlp: Array(repeating: [], count: 5),
                                                        mapping: .sigmap, keepRatio: 0.6)
        let values = s.attention.map { $0[0] }
        XCTAssertEqual(values.reduce(0, +) / 5, 0.6, accuracy: 1e-12)
        XCTAssertEqual(values.indices.sorted { values[$0] < values[$1] }, [0, 2, 4, 3, 1], "order follows the metric")
        let random = InitialScores.random(config: config, mapping: .sigmap, keepRatio: 0.7, seed: 4, granularity: .sublayers)
        XCTAssertNoThrow(try random.validate(against: config, granularity: .sublayers))
        XCTAssertEqual(Set(random.attention.map { $0[0] }).count, 5, "distinct per layer, not all μ")
    }

    /// Query heads: one score per query head, the channels as `channels`; a KV group stays while any of its heads
    /// does and goes with its last. Groups of unequal size run masked, but cannot be compacted (a compacted layer
    /// maps head h to group h / (heads / groups)): a typed error names the layer.
    func testQueryHeadsKeepAGroupUntilItsLastHead() throws {
        let g = PruningGranularity.queryHeads
        XCTAssertEqual(g.scoreCount(.attention, config: config), 30)
        XCTAssertEqual(g.scoreCount(.mlp, config: config), 30)
        // Each head carries its q/o share plus half its group's k/v: all six heads are the sublayer.
        XCTAssertEqual(6 * g.unitParameterCost(.attention, layer: 0, config: config),
                       config.parameterCost(of: .attentionSublayer(layer: 0)))
        let kept: [[Int]] = [[0, 1, 2, 3, 4, 5], [1, 2, 3], [5], [], [0, 2, 4]]
        let mask = g.structureMask(keptAttention: kept, keptMLP: (0..<5).map { _ in Array(0..<6) }, config: config)
        XCTAssertEqual(mask.layers.map(\.keptKVGroups), [[0, 1, 2], [0, 1], [2], [], [0, 1, 2]])
        XCTAssertEqual(mask.layers.map { $0.keptQueryHeads ?? [] }, kept)
        XCTAssertFalse(mask.layers[3].attentionActive, "no head left: the sublayer goes")
        XCTAssertNoThrow(try mask.validate(against: config))
        var wrong = mask
        wrong.layers[2].keptKVGroups = [1, 2]
        XCTAssertThrowsError(try wrong.validate(against: config)) {
            XCTAssertEqual($0 as? MaskError, .groupsWithoutHeads(layer: 2, groups: [1, 2], fromHeads: [2]))
        }
        // Parameters count per head: layer 1 keeps 3 query heads and 2 KV heads.
        let specs = mask.layerSpecs(for: config)
        XCTAssertEqual(specs[1].queryHeads, 3)
        XCTAssertEqual(specs[1].attentionParameters(hiddenSize: config.hiddenSize, attentionBias: false),
                       (2 * 3 + 2 * 2) * specs[1].headDim * config.hiddenSize)
        let weights = tinyWeights(config)
        XCTAssertThrowsError(try Compaction.compact(config: config, weights: weights, mask: mask)) {
            guard case PruningError.invalidValue(let key, _, _)? = $0 as? PruningError else { return XCTFail("\($0)") }
            XCTAssertEqual(key, "layers[1].kept_query_heads")
        }
        // The masked forward pass attends each kept head to its own group: it equals the dense pass of the same
        // model with the dropped heads' o_proj columns zeroed (a head adds nothing through zero columns).
        var zeroed = weights
        for (l, heads) in kept.enumerated() {
            let spec = config.layers[l], width = spec.queryDim, hd = spec.headDim
            for h in 0..<spec.queryHeads where !heads.contains(h) {
                for r in 0..<config.hiddenSize { for c in (h * hd)..<((h + 1) * hd) { zeroed.layers[l].wo[r * width + c] = 0 } }
            }
        }
        let ids = [1, 5, 9, 2, 14, 7, 3]
        let masked = try LanguageModel(config: config, weights: weights).prepared(mask: mask).logits([ids])[0]
        let reference = try LanguageModel(config: config, weights: zeroed).dense.logits([ids])[0]
        for (a, b) in zip(masked, reference) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // Equal heads per group compact: layer 0 keeps heads 1, 3, 5 (one per group).
        var even = StructureMask.dense(config)
        even.layers[0].keptQueryHeads = [1, 3, 5]
        XCTAssertEqual(try Compaction.compact(config: config, weights: weights, mask: even).config.layers[0].queryHeads, 3)
    }
}

/// Seeded weights of `config`'s shapes (norms 1, projections in [-0.5, 0.5)).
func tinyWeights(_ config: ModelConfig, seed: UInt64 = 11) -> ModelWeights {
    var rng = Xoshiro256(seed: seed)
    func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnitDouble() - 0.5) } }
    let d = config.hiddenSize
    let layers = config.layers.map { s in
        LayerWeights(attentionNorm: Array(repeating: 1, count: d), wq: values(s.queryDim * d), wk: values(s.kvDim * d),
                     wv: values(s.kvDim * d), wo: values(d * s.queryDim), mlpNorm: Array(repeating: 1, count: d),
                     gate: values(s.ffnDim * d), up: values(s.ffnDim * d), down: values(d * s.ffnDim))
    }
    return ModelWeights(tokenEmbedding: values(config.vocabSize * d), layers: layers, finalNorm: Array(repeating: 1, count: d),
                        head: values(config.vocabSize * d))
}
