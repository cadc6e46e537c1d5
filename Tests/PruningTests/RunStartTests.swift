import XCTest
import Checkpoints
import Transformer
@testable import Pruning

/// What moved from the CLI into Pruning (issue 14): the probe's arithmetic, the uniform plan at a budget, the names of
/// the start's choices, and the scores file of `score --save-scores`. Hand-computed values.
final class RunStartTests: XCTestCase {
    func config(widths: [Int], kvHeads: Int = 2) -> ModelConfig {
        ModelConfig(architecture: "llama", hiddenSize: 8, vocabSize: 16,
                    layers: widths.map { LayerSpec(queryHeads: kvHeads, kvHeads: kvHeads, headDim: 4, ffnDim: $0) },
                    normEpsilon: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, contextLength: 16)
    }

    /// steps = max(1, floor((budget − 2 · evaluation) / (step + evaluation / evalEvery))).
    func testProbeStepsForABudget() {
        let probe = RunProbe(stepSeconds: 2, evaluationSeconds: 10, peakMemoryBytes: 0)
        XCTAssertEqual(probe.steps(forBudget: 100, evalEvery: 5), 20)    // (100 − 20) / (2 + 2)
        XCTAssertEqual(probe.steps(forBudget: 100, evalEvery: 0), 40)    // (100 − 20) / 2
        XCTAssertEqual(probe.steps(forBudget: 15, evalEvery: 5), 1)      // the budget is below two evaluations
        XCTAssertEqual(probe.runSeconds(steps: 20, evalEvery: 5, setupSeconds: 3), 3 + 20 * 4 + 20)
    }

    /// Each kind keeps N − floor(N · (1 − ρ)) over the layers, spread by size, the remainder to the first layers.
    func testUniformMaskAtTheBudget() {
        let cfg = config(widths: [10, 10, 6])
        let mask = StructureMask.uniform(config: cfg, keepRatios: KeepRatios(attention: 0.5, mlp: 0.7), channelMultiple: 1)
        // MLP: N = 26, keep 26 − floor(26 · 0.3) = 19: 10·19/26 = 7, 7, 6·19/26 = 4 → 18, one more to layer 0.
        XCTAssertEqual(mask.layers.map(\.keptChannels.count), [8, 7, 4])
        // Attention: 6 groups, keep 3: 2·3/6 = 1 per layer.
        XCTAssertEqual(mask.layers.map(\.keptKVGroups.count), [1, 1, 1])
    }

    func testNamesOfTheStart() {
        XCTAssertEqual(InitMethod.defaultInit(for: .channels), .wandaSP)
        XCTAssertEqual(InitMethod.defaultInit(for: .layers), .blockInfluence)
        XCTAssertEqual(InitMethod.defaultInit(for: .sublayers), .random)
        XCTAssertFalse(InitMethod.wandaSP.supports(.sublayers))
        XCTAssertTrue(InitMethod.random.supports(.sublayers))
        XCTAssertEqual(InitMethod(rawValue: "ppl-drop"), .perplexityDrop)
        XCTAssertEqual(InitMapping.const.scoreMapping(temperature: 0.03, constant: 0.8), .constant(0.8))
        XCTAssertEqual(InitMapping.plan.scoreMapping(temperature: 0.05, constant: 0.9), .planCentred(temperature: 0.05))
        XCTAssertEqual(RunPolicy(rawValue: "allocation"), .allocation)
    }

    /// `score --save-scores`: each layer's scores as rank quantiles, order kept, values in (0, 1).
    func testScoresFileFromMetricScores() {
        let scores = StructureScores(attention: [[3, 1, 2]], mlp: [[0.5, -1]], layers: [])
        let file = ScoresFile(rankingsOf: scores, modelSHA256: "abc")
        XCTAssertEqual(file.modelSHA256, "abc")
        XCTAssertEqual(file.step, 0)
        XCTAssertEqual(file.keepProbabilities.attention, [rankQuantiles([3, 1, 2])])
        XCTAssertEqual(file.keepProbabilities.mlp, [rankQuantiles([0.5, -1])])
        let a = file.keepProbabilities.attention[0]
        XCTAssertTrue(a[0] > a[2] && a[2] > a[1] && a.allSatisfy { $0 > 0 && $0 < 1 })
    }
}
