import Foundation

/// Learning rate of the score updates per valid step (spec §1.8). The n-th valid update (0-based) uses
/// `rate(atStep: n)`.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    /// Shape of the schedule after warm-up.
    public enum Policy: String, Codable, Sendable, CaseIterable {
        /// `η_min + (η_0 − η_min)(1 + cos(π e / E)) / 2` with e the steps since warm-up and E = total − warm-up
        /// (PyTorch `CosineAnnealingLR(T_max = total)` when there is no warm-up); `η_min` from step `total` on.
        case cosine
        /// `η_0` after warm-up.
        case constant
    }

    /// η_0.
    public var initial: Double
    /// The policy.
    public var policy: Policy
    /// total_iters: steps over which the cosine decays.
    public var totalSteps: Int
    /// W: for `t < W`, `η = η_0 · t / W` (so step 0 uses 0). The code's default and only reachable value is 0.
    public var warmupSteps: Int
    /// η_min (the code: 0).
    public var minimum: Double

    public init(initial: Double, policy: Policy = .cosine, totalSteps: Int, warmupSteps: Int = 0, minimum: Double = 0) {
        self.initial = initial
        self.policy = policy
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
        self.minimum = minimum
    }

    /// The learning rate of valid step `t` (0-based).
    public func rate(atStep t: Int) -> Double {
        if t < warmupSteps { return initial * Double(t) / Double(warmupSteps) }
        switch policy {
        case .constant:
            return initial
        case .cosine:
            let elapsed = t - warmupSteps
            let span = totalSteps - warmupSteps
            if span <= 0 || elapsed >= span { return minimum }
            return minimum + (initial - minimum) * (1 + cos(Double.pi * Double(elapsed) / Double(span))) / 2
        }
    }
}

/// The keep ratio used by the projection and the hard mask at each step (spec §1.11): constant, or the cubic
/// progressive schedule `ρ_t = ρ_target + (ρ_start − ρ_target) · (1 − (t − t_s)/(t_e − t_s))³` between `t_s` and
/// `t_e`, `ρ_start` before and `ρ_target` after.
public struct KeepRatioSchedule: Codable, Sendable, Equatable {
    /// ρ_start.
    public var start: Double
    /// ρ_target.
    public var target: Double
    /// t_s.
    public var startStep: Int
    /// t_e.
    public var endStep: Int

    public init(start: Double, target: Double, startStep: Int, endStep: Int) {
        self.start = start
        self.target = target
        self.startStep = startStep
        self.endStep = endStep
    }

    /// The same keep ratio at every step (what the official code runs).
    public static func constant(_ keepRatio: Double) -> KeepRatioSchedule {
        KeepRatioSchedule(start: keepRatio, target: keepRatio, startStep: 0, endStep: 0)
    }

    /// ρ_t.
    public func keepRatio(atStep t: Int) -> Double {
        if t < startStep { return start }
        if t >= endStep { return target }
        let remaining = 1 - Double(t - startStep) / Double(endStep - startStep)
        return target + (start - target) * remaining * remaining * remaining
    }
}
