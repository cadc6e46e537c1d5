import Checkpoints
import Essentials
import Foundation
import Kernels
import Transformer

/// Draws `m_i = (u_i < s_i)` with `u_i ~ U[0,1)` from `rng`, one draw per structure in order (spec §1.1).
public func sampleBernoulliMask(keepProbability s: [Double], using rng: inout Xoshiro256) -> [Bool] {
    s.map { rng.nextUnitDouble() < $0 }
}

/// One sampled mask for every structure (one Monte Carlo sample k of a step, spec §1.10 step 2).
public struct MaskSample: Codable, Sendable, Equatable {
    /// [layer][kvGroup], true = kept.
    public var attention: [[Bool]]
    /// [layer][channel], true = kept.
    public var mlp: [[Bool]]

    public init(attention: [[Bool]], mlp: [[Bool]]) {
        self.attention = attention
        self.mlp = mlp
    }

    /// The per-layer vectors of one kind.
    public subscript(kind: StructureKind) -> [[Bool]] { kind == .attention ? attention : mlp }

    /// The mask as kept structures, for the forward pass: `granularity` says what the vectors hold
    /// (`PruningGranularity.structureMask`). Sublayer flags follow `config`.
    public func structureMask(config: ModelConfig, granularity: PruningGranularity = .channels) -> StructureMask {
        granularity.structureMask(keptAttention: attention.map { v in v.indices.filter { v[$0] } },
                                  keptMLP: mlp.map { v in v.indices.filter { v[$0] } }, config: config)
    }
}

extension KeepProbabilities {
    /// Draws one mask for every structure. Order of draws (fixed, so a seed reproduces a run): layer 0 attention,
    /// layer 0 MLP, layer 1 attention, ... one `nextUnitDouble()` per structure.
    public func sampleMask(using rng: inout Xoshiro256) -> MaskSample {
        var a: [[Bool]] = [], m: [[Bool]] = []
        a.reserveCapacity(attention.count)
        m.reserveCapacity(mlp.count)
        for l in attention.indices {
            a.append(sampleBernoulliMask(keepProbability: attention[l], using: &rng))
            m.append(sampleBernoulliMask(keepProbability: mlp[l], using: &rng))
        }
        return MaskSample(attention: a, mlp: m)
    }
}

/// The policy-gradient estimator of `∇_s E[L(m)]` (spec §1.4). Both forms are selectable; `code` is the reproduction
/// default.
public enum GradientEstimator: String, Codable, Sendable, CaseIterable {
    /// Official code: `u = (m − s) / sqrt((s + 1e-7)(1 − s + 1e-7))`, `g = Σ_valid (L_k − δ) u_k / (K − 1)` with K the
    /// number of samples drawn (NaN samples dropped from the sum, not from K). In expectation
    /// `K/(K−1) · sqrt(s(1−s)) · ∇Φ`: a per-coordinate rescaled descent direction, not unbiased.
    case code
    /// Paper (Eq. 5): `u = (m − s) / (s(1 − s))`, `g = mean over valid samples of (L_k − δ) u_k`; unbiased for ∇Φ
    /// when δ does not depend on the current samples. At s ∈ {0, 1} the mask is deterministic, m − s = 0 and the
    /// term is defined as 0 (the formula is 0/0 there).
    case paper

    /// The per-structure score-function factor `u` for mask bit `m` at probability `s`.
    @inlinable
    public func scoreFunction(kept m: Bool, keepProbability s: Double) -> Double {
        let centred = (m ? 1.0 : 0.0) - s
        switch self {
        case .code:
            return centred / ((s + 1e-7) * (1 - s + 1e-7)).squareRoot()
        case .paper:
            let variance = s * (1 - s)
            return variance == 0 ? 0 : centred / variance
        }
    }

    /// The gradient estimate for one vector of keep probabilities. `masks` and `losses` are the valid samples
    /// only (same order); `drawnSamples` is K including dropped samples (the code form divides by K − 1 and needs
    /// K ≥ 2). Returns zeros when there are no valid samples.
    public func gradient(keepProbability s: [Double], masks: [[Bool]], losses: [Double], baseline: Double,
                         drawnSamples: Int, withinStepBaseline: Bool = false) -> [Double] {
        precondition(masks.count == losses.count, "one loss per mask")
        var g = Array(repeating: 0.0, count: s.count)
        guard !masks.isEmpty else { return g }
        for (mask, loss) in zip(masks, losses) {
            precondition(mask.count == s.count, "mask length must match the keep probabilities")
            let advantage = loss - baseline
            for i in s.indices { g[i] += advantage * scoreFunction(kept: mask[i], keepProbability: s[i]) }
        }
        let divisor: Double
        if withinStepBaseline {
            // δ is the mean of these very losses: Σ_k (L_k − L̄) u_k / (n − 1) equals the leave-one-out estimator
            // (each L_k against the mean of the other n − 1), which is unbiased (VR-PGE); this is where the code's
            // 1/(K − 1) belongs.
            divisor = Double(max(masks.count - 1, 1))
        } else {
            switch self {
            case .code: divisor = Double(max(drawnSamples - 1, 1))
            case .paper: divisor = Double(masks.count)
            }
        }
        return g.map { $0 / divisor }
    }
}

/// Indices of the samples whose loss is not NaN (spec §1.6). Empty means the whole step is skipped.
public func validSampleIndices(losses: [Double]) -> [Int] {
    losses.indices.filter { !losses[$0].isNaN }
}

/// The baseline δ subtracted from each sample loss (spec §1.5).
public struct MovingAverageBaseline: Codable, Sendable, Equatable {
    /// How δ follows the step mean losses.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Official code: δ starts at the step-0 mean, then `δ ← (1 − 1/T) δ + (1/T) L̄_t` every step, before the
        /// gradient (so it already contains the current step).
        case exponential
        /// Mean of the last T step means, the current one included (the paper's "window", form unverified).
        case slidingWindow = "sliding_window"
        /// δ = 0 (plain REINFORCE, the code's `--cancel-ma-baseline`).
        case none
        /// δ = the mean of this step's valid sample losses on this batch (not in the code): with the estimator
        /// divided by n − 1 this is the leave-one-out baseline, which removes the batch-to-batch loss variation
        /// that an EMA across batches leaves in every advantage.
        case stepMean = "step_mean"
    }

    /// The rule.
    public var kind: Kind
    /// T: the EMA weight is 1/T; the sliding window holds T step means.
    public var window: Int
    /// Current δ; nil before the first valid step.
    public private(set) var value: Double?
    /// The last ≤ T step means (sliding window only; empty otherwise).
    public private(set) var recentMeans: [Double]

    /// A baseline before its first update. `window` must be ≥ 1 (checked by `PolicyGradientOptions.validate()`).
    public init(kind: Kind = .exponential, window: Int = 5) {
        self.kind = kind
        self.window = window
        self.value = nil
        self.recentMeans = []
    }

    /// Folds in this step's mean valid loss and returns the δ to use for this step's gradient.
    @discardableResult
    public mutating func update(meanLoss: Double) -> Double {
        switch kind {
        case .exponential:
            let previous = value ?? meanLoss
            let lambda = 1 / Double(max(window, 1))
            value = (1 - lambda) * previous + lambda * meanLoss
        case .slidingWindow:
            recentMeans.append(meanLoss)
            if recentMeans.count > max(window, 1) { recentMeans.removeFirst(recentMeans.count - max(window, 1)) }
            value = recentMeans.reduce(0, +) / Double(recentMeans.count)
        case .none:
            value = 0
        case .stepMean:
            value = meanLoss
        }
        return value!
    }
}

/// The optional entropy penalty of the code (spec §1.7): `λ_p(t) · (log(1 − s + 1e-7) − log(s + 1e-7))` added to the
/// gradient, the derivative of the binary entropy, pushing scores toward 0 or 1. Off when `initial < 0` (both
/// official scripts).
public struct EntropyPenalty: Codable, Sendable, Equatable {
    /// λ_init; negative disables the penalty.
    public var initial: Double
    /// λ_final.
    public var final: Double
    /// Steps over which λ moves linearly from `initial` to `final`.
    public var totalSteps: Int

    public init(initial: Double = -1, final: Double = 0, totalSteps: Int = 1) {
        self.initial = initial
        self.final = final
        self.totalSteps = totalSteps
    }

    /// The penalty of the official scripts: off.
    public static let off = EntropyPenalty()

    /// Whether the penalty is applied at all.
    public var isEnabled: Bool { initial >= 0 }

    /// `λ_init + (λ_final − λ_init) · t / totalSteps`, or nil when disabled.
    public func weight(atStep t: Int) -> Double? {
        guard isEnabled else { return nil }
        return initial + (final - initial) * Double(t) / Double(max(totalSteps, 1))
    }

    /// The penalty's gradient term for one keep probability at weight `lambda`.
    @inlinable
    public static func gradient(keepProbability s: Double, weight lambda: Double) -> Double {
        lambda * (log(1 - s + 1e-7) - log(s + 1e-7))
    }
}
