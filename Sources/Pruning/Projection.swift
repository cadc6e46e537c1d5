/// Outcome of one projection onto the budget set (spec §1.3).
public struct ProjectionResult: Codable, Sendable, Equatable {
    /// The shift v* subtracted before clipping (0 when the clipped scores were already within budget).
    public var shift: Double
    /// Number of bisection midpoints evaluated (0 when `excessAtZero < 0`; the `f(0)` test is not counted).
    public var evaluations: Int
    /// `f(0) = Σ clip(z, 0, 1) − k`: how far the clipped, unshifted scores exceed the budget.
    public var excessAtZero: Double
    /// The budget k.
    public var budget: Double

    public init(shift: Double, evaluations: Int, excessAtZero: Double, budget: Double) {
        self.shift = shift
        self.evaluations = evaluations
        self.excessAtZero = excessAtZero
        self.budget = budget
    }
}

/// Constants of the official code's bisection (spec §1.3), kept so results match it to the last midpoint.
public enum BudgetProjection {
    /// Stop as soon as `|f(v)| < tolerance`.
    public static let tolerance = 1e-3
    /// Stop after this many midpoint evaluations (the code's "counter > 20" test).
    public static let maximumEvaluations = 21
}

/// Projects `z` onto `{s ∈ [0,1]^n : Σ s ≤ budget}` exactly as the official code does (spec §1.3): if
/// `f(0) = Σ clip(z, 0, 1) − budget < 0` the shift is 0; otherwise bisect `f(v) = Σ clip(z − v, 0, 1) − budget`
/// on `[0, max z]` for at most 21 midpoints, stopping early when `|f(v)| < 1e-3`, and use the **last midpoint**
/// (floored at 0). Then `s = clip(z − v*, 0, 1)`. Sums are in Double.
@discardableResult
public func projectOntoBudget(_ z: inout [Double], budget: Double) -> ProjectionResult {
    var segments = [z]
    z = []
    defer { z = segments[0] }
    return projectOntoBudget(&segments, budget: budget)
}

/// Projects several vectors as one group (e.g. the KV-group scores of every layer under one global budget). With
/// `weights` (one per segment, the parameter cost of each of its structures) the set is
/// `{s ∈ [0,1]^n : Σ w_i s_i ≤ budget}` and the Euclidean projection shifts each score by `v · w_i`:
/// `s_i = clip(z_i − v w_i, 0, 1)`, so a structure that costs more is pushed down more for the same multiplier v.
/// Without weights this is the unweighted rule of `projectOntoBudget(_:budget:)`, element for element.
@discardableResult
public func projectOntoBudget(_ segments: inout [[Double]], budget: Double, weights: [Double]? = nil) -> ProjectionResult {
    precondition(weights == nil || weights!.count == segments.count, "one weight per segment")
    let w = weights ?? Array(repeating: 1.0, count: segments.count)

    /// f(v) = Σ_seg w_seg Σ_i clip(z_i − v w_seg, 0, 1) − budget
    func excess(_ v: Double) -> Double {
        var total = 0.0
        for (segment, weight) in zip(segments, w) {
            var sum = 0.0
            let shift = v * weight
            for x in segment { sum += min(max(x - shift, 0), 1) }
            total += weight * sum
        }
        return total - budget
    }

    let f0 = excess(0)
    var shift = 0.0
    var evaluations = 0
    if !(f0 < 0) {
        // Upper end: the smallest v that shifts every score to ≤ 0, max_i z_i / w_i (max z for unit weights, as in
        // the code).
        var upper = -Double.infinity
        for (segment, weight) in zip(segments, w) {
            if let m = segment.max() { upper = max(upper, m / weight) }
        }
        if upper == -.infinity { upper = 0 }
        var a = 0.0, b = upper, v = 0.0
        while true {
            v = (a + b) / 2
            let fv = excess(v)
            evaluations += 1
            if abs(fv) < BudgetProjection.tolerance || evaluations >= BudgetProjection.maximumEvaluations { break }
            if fv < 0 { b = v } else { a = v }
        }
        shift = max(0, v)
    }
    for i in segments.indices {
        let s = shift * w[i]
        segments[i] = segments[i].map { min(max($0 - s, 0), 1) }
    }
    return ProjectionResult(shift: shift, evaluations: evaluations, excessAtZero: f0, budget: budget)
}
