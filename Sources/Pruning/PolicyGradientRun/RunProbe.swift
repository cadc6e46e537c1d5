import Essentials
import Foundation
import Transformer

/// What one step and one held-out evaluation of a run cost on this machine, measured by doing each once: the one
/// probe behind `prune --time-budget` (steps that fit) and `plan` (step time, evaluation time, peak memory).
public struct RunProbe: Sendable, Equatable {
    /// Seconds of one step on one rank: K masks sampled from the keep probabilities, each gathered and run on one
    /// calibration batch; over `ranks` ranks a rank computes ⌈K / ranks⌉ of them.
    public var stepSeconds: Double
    /// Seconds of one held-out evaluation on one rank: 1 + `heldoutSampledMasks` masks over every held-out window
    /// (f32, as a run evaluates), a rank computing ⌈(1 + m) / ranks⌉ of them.
    public var evaluationSeconds: Double
    /// The process's peak resident memory once the probe has run, bytes.
    public var peakMemoryBytes: Int

    /// A probe result (for tests and callers that measured elsewhere).
    public init(stepSeconds: Double, evaluationSeconds: Double, peakMemoryBytes: Int) {
        self.stepSeconds = stepSeconds
        self.evaluationSeconds = evaluationSeconds
        self.peakMemoryBytes = peakMemoryBytes
    }

    /// Runs one step's forwards and one held-out evaluation's. Masks come from `keepProbabilities` (a fixed seed of
    /// the probe's own, so the run's generators are untouched); `compute` is the arithmetic of the step's forwards
    /// (int8 weights are quantized once before the clock starts, as a run does before its first step).
    public static func measure(model: LanguageModel, data: RunData, keepProbabilities: KeepProbabilities,
                               granularity: PruningGranularity = .channels, samplesPerStep k: Int, batch: Int,
                               compute: ComputePrecision = .f32, heldoutSampledMasks: Int, ranks: Int = 1) throws -> RunProbe {
        var rng = Xoshiro256(seed: 0x7072_6F62_6521)
        let config = model.config
        func sampled() -> StructureMask {
            keepProbabilities.sampleMask(using: &rng).structureMask(config: config, granularity: granularity)
        }
        func share(_ count: Int) -> Double { Double((count + ranks - 1) / ranks) }
        let blocks = Array(data.calibration.prefix(batch))
        if compute != .f32 { _ = try model.prepared(mask: nil, precision: compute) }
        let t0 = Date()
        for _ in 0..<k { _ = try model.prepared(mask: sampled(), precision: compute).tokenNLL(blocks) }
        let step = Date().timeIntervalSince(t0) * share(k) / Double(k)
        let t1 = Date()
        let prepared = try model.prepared(mask: sampled())
        var start = 0
        while start < data.heldout.count {
            _ = try prepared.tokenNLL(Array(data.heldout[start..<min(start + batch, data.heldout.count)]))
            start += batch
        }
        let evaluation = Date().timeIntervalSince(t1) * share(1 + heldoutSampledMasks)
        return RunProbe(stepSeconds: step, evaluationSeconds: evaluation, peakMemoryBytes: PeakMemory.bytes)
    }

    /// Seconds of evaluation per step with one evaluation every `evalEvery` steps (0: start and end only).
    public func evaluationSecondsPerStep(evalEvery: Int) -> Double {
        evalEvery > 0 ? evaluationSeconds / Double(evalEvery) : 0
    }

    /// Steps that fit in `budget` seconds: every run makes two evaluations (start and end) besides the periodic ones.
    public func steps(forBudget budget: Double, evalEvery: Int) -> Int {
        max(1, Int(((budget - 2 * evaluationSeconds) / (stepSeconds + evaluationSecondsPerStep(evalEvery: evalEvery))).rounded(.down)))
    }

    /// Seconds of a run of `steps` steps (plus `setupSeconds`, e.g. a metric init).
    public func runSeconds(steps: Int, evalEvery: Int, setupSeconds: Double = 0) -> Double {
        setupSeconds + Double(steps) * (stepSeconds + evaluationSecondsPerStep(evalEvery: evalEvery)) + 2 * evaluationSeconds
    }
}
