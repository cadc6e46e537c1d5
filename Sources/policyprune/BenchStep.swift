import Checkpoints
import Essentials
import Foundation
import Kernels
import Pruning
import Transformer

/// `bench --pg-step`: one policy-gradient step timed part by part, the way `PolicyGradientRun.run()` does it, so the
/// step's cost beyond its K forwards (the target: under 5 %) is measured rather than inferred.
extension Bench {
    /// One step's parts in one precision (seconds).
    struct StepRow: Codable {
        /// The arithmetic of the K sampled forwards (`f32` or `int8`).
        var precision: String
        /// Drawing K masks from the keep probabilities and turning them into structure masks.
        var sampleSeconds: Double
        /// Gathering the kept weights of the K masked models (`LanguageModel.prepared(mask:precision:)`).
        var gatherSeconds: Double
        /// The K masked forwards (`tokenNLL`) and their mean NLLs.
        var forwardSeconds: Double
        /// Baseline, estimator, score update and projection (`policyGradientStep`).
        var updateSeconds: Double
        /// The hard mask the run computes for its step log.
        var hardMaskSeconds: Double
        /// The whole step, measured around all of the above.
        var stepSeconds: Double
        /// (step − K forwards) / step: what the step costs beyond its forwards.
        var beyondForwardsFraction: Double
        /// The K sample losses (mean token NLL on random token ids), to show both precisions ran the same masks.
        var sampleLosses: [Double]
    }

    /// The step in every precision measured.
    struct StepReport: Codable {
        /// Masks (forwards) per step.
        var k: Int
        /// Uniform keep probability of every KV group and channel, and the projection's keep ratio.
        var keepProbability: Double
        /// Timed steps per precision after one warm-up step; the step with the lowest total is reported.
        var repeats: Int
        var rows: [StepRow]
        /// f32 step seconds / int8 step seconds, measured in this run (nil without `--compute int8`).
        var f32OverInt8: Double?
    }

    /// Times `repeats` steps per precision after one warm-up, f32 and int8 alternately (so a change in the machine's
    /// load hits both); each precision has its own state and mask generator with the same seed, so both sample
    /// the same masks.
    func measureStep(_ lm: LanguageModel, windows: [[Int]]) throws -> StepReport {
        let cfg = lm.config
        let precisions: [ComputePrecision] = compute == .int8 ? [.f32, .int8] : [.f32]
        // PolicyPrune's prune defaults (code estimator, leave-one-out step baseline, lr 0.5 cosine, global budget);
        // the update's cost does not depend on these values.
        let options = PolicyGradientOptions(
            estimator: .code, samplesPerStep: k, baselineKind: .stepMean, baselineWindow: 5,
            attentionLearningRate: LearningRateSchedule(initial: 0.5, totalSteps: 1000),
            mlpLearningRate: LearningRateSchedule(initial: 0.5, totalSteps: 1000), keepRatio: .constant(keep))
        try options.validate()
        let initial = KeepProbabilities.uniform(cfg, value: keep)
        var states = precisions.map { _ in PolicyGradientState(initial: initial, options: options) }
        var generators = precisions.map { _ in Xoshiro256(seed: 42) }
        var best = [StepRow?](repeating: nil, count: precisions.count)
        for repetition in 0...repeats {   // repetition 0 warms up (int8: quantizes the dense weights once)
            for (i, precision) in precisions.enumerated() {
                let row = try Self.step(lm, precision: precision, state: &states[i], generator: &generators[i],
                                        options: options, windows: windows)
                if repetition > 0, best[i].map({ row.stepSeconds < $0.stepSeconds }) ?? true { best[i] = row }
            }
        }
        let rows = best.compactMap { $0 }
        let ratio = rows.count == 2 ? rows[0].stepSeconds / rows[1].stepSeconds : nil
        return StepReport(k: k, keepProbability: keep, repeats: repeats, rows: rows, f32OverInt8: ratio)
    }

    /// One step of `PolicyGradientRun.run()` (steps 2–7 of ARCHITECTURE §3, without the log write), timed by part.
    private static func step(_ lm: LanguageModel, precision: ComputePrecision, state: inout PolicyGradientState,
                             generator: inout Xoshiro256, options: PolicyGradientOptions, windows: [[Int]]) throws -> StepRow {
        let cfg = lm.config
        let start = Date()
        var samples: [MaskSample] = [], masks: [StructureMask] = []
        for _ in 0..<options.samplesPerStep {
            let sample = state.keepProbabilities.sampleMask(using: &generator)
            samples.append(sample)
            masks.append(sample.structureMask(config: cfg))
        }
        let sampled = Date()
        var gatherSeconds = 0.0, forwardSeconds = 0.0, losses: [Double] = []
        for mask in masks {   // one masked model alive at a time, as in the run
            let t0 = Date()
            let model = try lm.prepared(mask: mask, precision: precision)
            let t1 = Date()
            losses.append(PolicyGradientRun.meanNLL(try model.tokenNLL(windows)))
            forwardSeconds += Date().timeIntervalSince(t1)
            gatherSeconds += t1.timeIntervalSince(t0)
        }
        let forwarded = Date()
        let report = policyGradientStep(state: &state, samples: samples, losses: losses, options: options, config: cfg)
        let updated = Date()
        _ = state.keepProbabilities.hardMask(keepRatios: KeepRatios(attention: report.attentionKeepRatio, mlp: report.keepRatio),
                                             scope: options.budgetScope, config: cfg)
        let end = Date()
        let stepSeconds = end.timeIntervalSince(start)
        return StepRow(precision: precision.rawValue, sampleSeconds: sampled.timeIntervalSince(start), gatherSeconds: gatherSeconds,
                       forwardSeconds: forwardSeconds, updateSeconds: updated.timeIntervalSince(forwarded),
                       hardMaskSeconds: end.timeIntervalSince(updated), stepSeconds: stepSeconds,
                       beyondForwardsFraction: (stepSeconds - forwardSeconds) / stepSeconds, sampleLosses: losses)
    }

    /// The step table: one column per precision.
    func printStep(_ step: StepReport) {
        print("")
        print(String(format: "policy-gradient step: K = %d masks from uniform keep probabilities %.2f, %d x %d tokens each; "
                     + "the fastest of %d steps after a warm-up", step.k, step.keepProbability, batch, seq, step.repeats))
        let header = step.rows.map { pad("\($0.precision) s", 12) }.joined()
        print(pad("part", 44) + header)
        let parts: [(String, (StepRow) -> Double)] = [
            ("sample K masks", \.sampleSeconds),
            ("gather kept weights (K models)", \.gatherSeconds),
            ("K forwards (tokenNLL)", \.forwardSeconds),
            ("estimator + update + projection", \.updateSeconds),
            ("hard mask (step log)", \.hardMaskSeconds),
            ("step", \.stepSeconds),
        ]
        for (name, value) in parts {
            print(pad(name, 44) + step.rows.map { pad(String(format: "%.4f", value($0)), 12) }.joined())
        }
        print(pad("beyond the K forwards (share of the step)", 44)
              + step.rows.map { pad(String(format: "%.2f%%", 100 * $0.beyondForwardsFraction), 12) }.joined())
        if let ratio = step.f32OverInt8 { print(String(format: "f32 step / int8 step: %.2fx", ratio)) }
    }
}
