import Essentials
import XCTest
import Checkpoints
import Kernels
@testable import Pruning

/// The allocation policy's pieces without a model: the start reproduces the per-layer plan, pairs keep each kind's
/// total, the projection meets the budget, and the update moves structures toward the layer whose loss says so.
final class LayerAllocationTests: XCTestCase {
    /// 4 layers × 3 KV groups, 4 layers × 40 channels, keep probabilities from the plan mapping of a metric.
    func setUp(mlpKeep: Double = 0.7) -> (KeepProbabilities, KeepRatios) {
        var rng = Xoshiro256(seed: 5)
        let metric = (0..<4).map { _ in (0..<40).map { _ in rng.nextUnitDouble() } }
        let mlp = metric.map { m in planCentred(m, initMask: initMask(metric: m, keepRatio: mlpKeep), temperature: 0.03) }
        let attention = (0..<4).map { _ in [Double](repeating: 1, count: 3) }
        return (KeepProbabilities(attention: attention, mlp: mlp), KeepRatios(attention: 1, mlp: mlpKeep))
    }

    func config() -> ModelConfig {
        ModelConfig(architecture: "llama", hiddenSize: 12, vocabSize: 10,
                    layers: (0..<4).map { _ in LayerSpec(queryHeads: 3, kvHeads: 3, headDim: 4, ffnDim: 40) },
                    normEpsilon: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, contextLength: 16)
    }

    func testStartIsThePerLayerPlan() throws {
        let (initial, rho) = setUp()
        let allocation = LayerAllocation(initial: initial, keepRatios: rho, config: config())
        XCTAssertEqual(allocation.mlp, [Double](repeating: 28.0 / 40, count: 4))
        XCTAssertEqual(allocation.attention, [1, 1, 1, 1])
        XCTAssertFalse(allocation.learnsAttention)
        let start = allocation.keepProbabilities.hardMask(keepRatios: rho, scope: .global, config: config(), exactBudget: true)
        let plan = initial.hardMask(keepRatios: rho, scope: .perLayer, config: config(), exactBudget: true)
        XCTAssertEqual(start, plan, "the displayed probabilities' hard mask is the per-layer plan")
        let mask = allocation.mask(attention: allocation.attention, mlp: allocation.mlp).structureMask(config: config())
        XCTAssertEqual(mask, plan, "the allocation's own mask is the per-layer plan")
    }

    func testPairsAreAntitheticAndKeepTheKindTotal() throws {
        let (initial, rho) = setUp()
        let allocation = LayerAllocation(initial: initial, keepRatios: rho, config: config())
        let options = AllocationPolicyOptions(sigma: 0.1, learningRate: LearningRateSchedule(initial: 0.01, totalSteps: 10))
        var rng = Xoshiro256(seed: 9)
        for _ in 0..<20 {
            let pair = allocation.samplePair(options: options, using: &rng)
            XCTAssertEqual(pair.noise.mlp.reduce(0, +), 0, accuracy: 1e-12, "centred: equal layers, so the plain mean is 0")
            XCTAssertEqual(pair.noise.attention, [0, 0, 0, 0], "attention is kept whole and never perturbed")
            for l in 0..<4 {
                let plus = pair.plus.mlp[l].filter { $0 }.count, minus = pair.minus.mlp[l].filter { $0 }.count
                XCTAssertEqual(plus, Int(((28.0 / 40 + 0.1 * pair.noise.mlp[l]) * 40).rounded()))
                XCTAssertEqual(minus, Int(((28.0 / 40 - 0.1 * pair.noise.mlp[l]) * 40).rounded()))
                // Kept structures are the layer's highest quantiles.
                let q = allocation.mlpQuantiles[l]
                let keptMin = q.indices.filter { pair.plus.mlp[l][$0] }.map { q[$0] }.min() ?? 1
                let prunedMax = q.indices.filter { !pair.plus.mlp[l][$0] }.map { q[$0] }.max() ?? 0
                XCTAssertLessThan(prunedMax, keptMin)
            }
            XCTAssertEqual(pair.plus.attention.joined().filter { $0 }.count, 12)
        }
    }

    func testProjectionMeetsTheBudgetAndClips() {
        let f = LayerAllocation.project([1.3, 0.2, 0.9, -0.4], sizes: [10, 10, 10, 10], keepRatio: 0.5)
        XCTAssertEqual(zip(f, [10, 10, 10, 10]).reduce(0) { $0 + $1.0 * Double($1.1) }, 20, accuracy: 1e-9)
        XCTAssertTrue(f.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(f[0], 1)
        XCTAssertEqual(f[3], 0)
        // Unequal layer sizes weigh by structures.
        let g = LayerAllocation.project([0.5, 0.5], sizes: [30, 10], keepRatio: 0.6)
        XCTAssertEqual(g[0] * 30 + g[1] * 10, 24, accuracy: 1e-9)
    }

    /// A synthetic loss that charges layer 0's pruned channels 4× the others': the update must move kept channels
    /// into layer 0 while the total stays at the budget.
    func testUpdateFollowsTheLoss() {
        let (initial, rho) = setUp()
        var allocation = LayerAllocation(initial: initial, keepRatios: rho, config: config())
        let options = AllocationPolicyOptions(sigma: 0.05, learningRate: LearningRateSchedule(initial: 0.01, totalSteps: 100))
        func loss(_ m: MaskSample) -> Double {
            m.mlp.enumerated().reduce(0) { $0 + Double($1.element.filter { !$0 }.count) * ($1.offset == 0 ? 4 : 1) } / 100
        }
        var rng = Xoshiro256(seed: 1)
        for t in 0..<100 {
            let pair = allocation.samplePair(options: options, using: &rng)
            let eta = options.learningRate.rate(atStep: t)
            XCTAssertNotNil(allocation.update(pairs: [(pair.noise, loss(pair.plus), loss(pair.minus))], keepRatios: rho, eta: eta,
                                              options: options))
        }
        XCTAssertGreaterThan(allocation.mlp[0], 0.95, "layer 0 keeps (almost) everything: \(allocation.mlp)")
        XCTAssertEqual(allocation.mlp.reduce(0, +) / 4, 0.7, accuracy: 1e-9, "budget")
        // A NaN pair changes nothing.
        let before = allocation
        let pair = allocation.samplePair(options: options, using: &rng)
        XCTAssertNil(allocation.update(pairs: [(pair.noise, .nan, 1)], keepRatios: rho, eta: 0.01, options: options))
        XCTAssertEqual(allocation, before)
    }

    func testOptionsAreValidated() {
        let lr = LearningRateSchedule(initial: 0.01, totalSteps: 10)
        XCTAssertThrowsError(try AllocationPolicyOptions(sigma: 0, learningRate: lr).validate(samplesPerStep: 2))
        XCTAssertThrowsError(try AllocationPolicyOptions(sigma: 0.02, learningRate: lr).validate(samplesPerStep: 3)) { error in
            XCTAssertTrue("\(error)".contains("even"), "\(error)")
        }
        XCTAssertNoThrow(try AllocationPolicyOptions(sigma: 0.02, learningRate: lr).validate(samplesPerStep: 4))
    }
}
