import Essentials
import XCTest
import Checkpoints
import Kernels
@testable import Pruning

final class PolicyGradientTests: XCTestCase {
    /// spec §8 toy objective L(m) = cᵀm with a baseline that does not depend on the samples. Over N = 100,000 steps
    /// of K = 2 masks (200k draws): the paper form's mean gradient → c; the code form's →
    /// K/(K−1) · c · s(1−s)/sqrt((s+1e-7)(1−s+1e-7)) (= 2 c sqrt(s(1−s)) up to 1e-7). Tolerance: 5 standard errors
    /// of the per-step estimates (measured), a false-alarm rate below 1e-6 per coordinate for an unlucky seed; the
    /// seed is fixed, so the test is deterministic. The standard errors are also checked to be small (< 0.03), so the
    /// test has power to detect a wrong factor (e.g. a missing K/(K−1) = 2).
    func testToyObjectiveMonteCarlo() {
        let s = [0.2, 0.5, 0.7, 0.9]
        let c = [1.0, -2.0, 0.5, 3.0]
        let delta = 2.0            // fixed baseline (E[L] = cᵀs = 2.25)
        let K = 2, steps = 100_000
        var rng = Xoshiro256(seed: 42)
        var sums: [GradientEstimator: [Double]] = [.code: [0, 0, 0, 0], .paper: [0, 0, 0, 0]]
        var squares = sums
        for _ in 0..<steps {
            let masks = (0..<K).map { _ in sampleBernoulliMask(keepProbability: s, using: &rng) }
            let losses = masks.map { m in zip(c, m).reduce(0.0) { $0 + ($1.1 ? $1.0 : 0) } }
            for form in GradientEstimator.allCases {
                let g = form.gradient(keepProbability: s, masks: masks, losses: losses, baseline: delta, drawnSamples: K)
                for i in 0..<4 { sums[form]![i] += g[i]; squares[form]![i] += g[i] * g[i] }
            }
        }
        let expected: [GradientEstimator: [Double]] = [
            .paper: c,
            .code: (0..<4).map { i in
                Double(K) / Double(K - 1) * c[i] * s[i] * (1 - s[i]) / ((s[i] + 1e-7) * (1 - s[i] + 1e-7)).squareRoot()
            },
        ]
        for form in GradientEstimator.allCases {
            for i in 0..<4 {
                let n = Double(steps)
                let mean = sums[form]![i] / n
                let variance = squares[form]![i] / n - mean * mean
                let standardError = (variance / n).squareRoot()
                XCTAssertLessThan(standardError, 0.03, "\(form) [\(i)]")
                XCTAssertLessThan(abs(mean - expected[form]![i]), 5 * standardError,
                                  "\(form) [\(i)]: mean \(mean), expected \(expected[form]![i]), SE \(standardError)")
            }
        }
        XCTAssertEqual(expected[.code]![1], 2 * -2.0 * 0.5, accuracy: 1e-6)   // 2 c sqrt(s(1−s)) at s = 0.5
    }

    /// Hand-computed single-sample values of both forms, and their edge behaviour at s ∈ {0, 1}.
    func testEstimatorByHand() {
        let a = 0.5 / (0.5000001 * 0.5000001).squareRoot()
        // One valid sample of K = 2 drawn (the other dropped): code divides by K − 1 = 1, paper by 1 valid sample.
        XCTAssertEqual(GradientEstimator.code.gradient(keepProbability: [0.5], masks: [[true]], losses: [3], baseline: 1,
                                                       drawnSamples: 2)[0], 2 * a, accuracy: 1e-15)
        XCTAssertEqual(GradientEstimator.paper.gradient(keepProbability: [0.5], masks: [[true]], losses: [3], baseline: 1,
                                                        drawnSamples: 2)[0], 4, accuracy: 1e-15)
        // K = 3 drawn: code divides by 2 whatever the number of valid samples.
        XCTAssertEqual(GradientEstimator.code.gradient(keepProbability: [0.5], masks: [[true], [false]], losses: [3, 0],
                                                       baseline: 1, drawnSamples: 3)[0], (2 * a + a) / 2, accuracy: 1e-15)
        // m = 1 at s = 0.2: code sqrt((1−s)/s) (up to eps), paper 1/s.
        XCTAssertEqual(GradientEstimator.code.scoreFunction(kept: true, keepProbability: 0.2), 2, accuracy: 1e-6)
        XCTAssertEqual(GradientEstimator.paper.scoreFunction(kept: true, keepProbability: 0.2), 5, accuracy: 1e-12)
        // Deterministic masks at the ends carry no gradient in either form (paper: defined 0 instead of 0/0).
        for form in GradientEstimator.allCases {
            XCTAssertEqual(form.scoreFunction(kept: false, keepProbability: 0), 0, "\(form)")
            XCTAssertEqual(form.scoreFunction(kept: true, keepProbability: 1), 0, "\(form)")
        }
        XCTAssertEqual(validSampleIndices(losses: [1, .nan, 2, .nan]), [0, 2])
    }

    /// m = (u < s) with one draw per structure, layer by layer, attention before MLP; same seed, same masks.
    func testSamplingOrderAndFrequency() {
        let p = KeepProbabilities(attention: [[0.3, 0.9], [0.5]], mlp: [[0.1, 0.6, 1.0], [0.0]])
        var r1 = Xoshiro256(seed: 7), r2 = Xoshiro256(seed: 7)
        let sample = p.sampleMask(using: &r1)
        let manual = [[0.3, 0.9], [0.1, 0.6, 1.0], [0.5], [0.0]].map { v in v.map { r2.nextUnitDouble() < $0 } }
        XCTAssertEqual([sample.attention[0], sample.mlp[0], sample.attention[1], sample.mlp[1]], manual)
        XCTAssertEqual(sample.mlp[1], [false])     // s = 0 never kept
        XCTAssertEqual(sample.mlp[0][2], true)     // s = 1 always kept

        var rng = Xoshiro256(seed: 11)
        let s = [0.05, 0.3, 0.7]
        var kept = [0, 0, 0]
        let n = 100_000
        for _ in 0..<n {
            for (i, m) in sampleBernoulliMask(keepProbability: s, using: &rng).enumerated() where m { kept[i] += 1 }
        }
        for i in 0..<3 {
            // Binomial: 5 standard deviations.
            let sd = (Double(n) * s[i] * (1 - s[i])).squareRoot()
            XCTAssertLessThan(abs(Double(kept[i]) - Double(n) * s[i]), 5 * sd, "s = \(s[i])")
        }
    }

    /// EMA: δ₀ = first mean, then (1 − 1/T) δ + (1/T) L̄ (the current step included). Sliding window: mean of the
    /// last T step means. None: 0.
    func testBaselines() {
        var ema = MovingAverageBaseline(kind: .exponential, window: 5)
        XCTAssertNil(ema.value)
        XCTAssertEqual(ema.update(meanLoss: 2), 2)
        XCTAssertEqual(ema.update(meanLoss: 4), 0.8 * 2 + 0.2 * 4, accuracy: 1e-15)
        XCTAssertEqual(ema.update(meanLoss: 1), 0.8 * 2.4 + 0.2 * 1, accuracy: 1e-15)
        var window = MovingAverageBaseline(kind: .slidingWindow, window: 2)
        XCTAssertEqual(window.update(meanLoss: 2), 2)
        XCTAssertEqual(window.update(meanLoss: 4), 3)
        XCTAssertEqual(window.update(meanLoss: 6), 5)
        XCTAssertEqual(window.recentMeans, [4, 6])
        var none = MovingAverageBaseline(kind: .none, window: 5)
        XCTAssertEqual(none.update(meanLoss: 7), 0)
    }

    /// Entropy penalty: off when λ_init < 0; linear in t; its gradient is log(1 − s) − log(s) (with 1e-7).
    func testEntropyPenalty() {
        XCTAssertNil(EntropyPenalty.off.weight(atStep: 10))
        XCTAssertFalse(EntropyPenalty(initial: -1, final: 0.5, totalSteps: 10).isEnabled)
        let p = EntropyPenalty(initial: 0.01, final: 0.03, totalSteps: 100)
        XCTAssertEqual(p.weight(atStep: 0)!, 0.01, accuracy: 1e-15)
        XCTAssertEqual(p.weight(atStep: 50)!, 0.02, accuracy: 1e-15)
        XCTAssertEqual(p.weight(atStep: 100)!, 0.03, accuracy: 1e-15)
        XCTAssertEqual(EntropyPenalty.gradient(keepProbability: 0.5, weight: 2), 0, accuracy: 1e-15)
        XCTAssertEqual(EntropyPenalty.gradient(keepProbability: 0.9, weight: 2),
                       2 * (log(0.1000001) - log(0.9000001)), accuracy: 1e-12)
    }

    /// One full step by hand (spec §1.10): 1 layer, 2 groups (G = 1), 3 channels, s = 0.5 everywhere, K = 2 masks
    /// with losses 3 and 1 → L̄ = δ = 2 (EMA at step 0), advantages ±1; code form u = ±a with
    /// a = 0.5/0.5000001; lr 0.1 constant; keep ratio 1 (budget not binding, clip only).
    func testOneStepByHand() {
        let config = ModelConfig(architecture: "llama", hiddenSize: 8, vocabSize: 16,
                                 layers: [LayerSpec(queryHeads: 2, kvHeads: 2, headDim: 4, ffnDim: 3)],
                                 normEpsilon: 1e-5, ropeTheta: 1e4, tiedEmbeddings: true, contextLength: 16)
        let lr = LearningRateSchedule(initial: 0.1, policy: .constant, totalSteps: 10)
        let options = PolicyGradientOptions(attentionLearningRate: lr, mlpLearningRate: lr, keepRatio: .constant(1.0))
        XCTAssertNoThrow(try options.validate())
        var state = PolicyGradientState(initial: .uniform(config, value: 0.5), options: options)
        let samples = [MaskSample(attention: [[true, false]], mlp: [[true, true, false]]),
                       MaskSample(attention: [[false, true]], mlp: [[true, false, false]])]
        let report = policyGradientStep(state: &state, samples: samples, losses: [3, 1], options: options, config: config)
        let a = 0.5 / 0.5000001
        XCTAssertFalse(report.skipped)
        XCTAssertEqual(report.meanLoss, 2)
        XCTAssertEqual(report.baseline, 2)
        XCTAssertEqual(state.step, 1)
        XCTAssertEqual(state.keepProbabilities.attention[0][0], 0.5 - 0.1 * 2 * a, accuracy: 1e-15)
        XCTAssertEqual(state.keepProbabilities.attention[0][1], 0.5 + 0.1 * 2 * a, accuracy: 1e-15)
        XCTAssertEqual(state.keepProbabilities.mlp[0][0], 0.5, accuracy: 1e-15)
        XCTAssertEqual(state.keepProbabilities.mlp[0][1], 0.5 - 0.1 * 2 * a, accuracy: 1e-15)
        XCTAssertEqual(state.keepProbabilities.mlp[0][2], 0.5, accuracy: 1e-15)
        XCTAssertEqual(report.projections.map(\.shift), [0, 0])

        // All samples NaN: the step is skipped and nothing changes (no δ update, no counter advance).
        let before = state
        let skipped = policyGradientStep(state: &state, samples: samples, losses: [.nan, .nan], options: options, config: config)
        XCTAssertTrue(skipped.skipped)
        XCTAssertEqual(state, before)

        // A binding budget at the scheduled keep ratio: ρ_1 = 0.5 of 2 groups → Σ s ≤ 1 (+ bisection tolerance).
        var tight = options
        tight.keepRatio = KeepRatioSchedule(start: 1.0, target: 0.5, startStep: 0, endStep: 1)
        let r = policyGradientStep(state: &state, samples: samples, losses: [3, 1], options: tight, config: config)
        XCTAssertEqual(r.keepRatio, 0.5)
        XCTAssertLessThanOrEqual(state.keepProbabilities.attention[0].reduce(0, +), 1 + 1e-3)
        XCTAssertEqual(state.baseline.value!, 2, accuracy: 1e-15)
    }

    /// Options outside their domain are typed errors naming the key.
    func testOptionValidation() {
        let lr = LearningRateSchedule(initial: 2e-3, totalSteps: 100)
        var o = PolicyGradientOptions(samplesPerStep: 1, attentionLearningRate: lr, mlpLearningRate: lr, keepRatio: .constant(0.7))
        XCTAssertThrowsError(try o.validate()) {
            guard case PruningError.invalidValue(let key, _, _) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(key, "samples_per_step")
        }
        o.estimator = .paper
        XCTAssertNoThrow(try o.validate())
        o.keepRatio = .constant(1.5)
        XCTAssertThrowsError(try o.validate())
    }
}
