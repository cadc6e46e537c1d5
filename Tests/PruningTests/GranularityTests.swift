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
}
