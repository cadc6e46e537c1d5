import Foundation

/// How a metric vector (e.g. Wanda-sp importances of one layer's KV groups or channels) becomes initial keep
/// probabilities with mean μ = init keep ratio (spec §3.2). Applied per layer and per kind.
public enum ScoreMapping: Codable, Sendable, Equatable {
    /// Standardise (unbiased std + 1e-8), sigmoid, shift to mean μ, clip to [0,1] (both official scripts).
    case sigmap
    /// Min-max normalise (+1e-8), shift to mean μ, clip.
    case norm
    /// `sigmap` for attention, `norm` for MLP.
    case hybrid
    /// `c` for structures in the init mask, `1 − c` for the rest (c = 1 freezes the scores at 0/1, spec §3.2).
    case constant(Double)
    /// Not in the paper: centred on the layer's own metric plan. Each structure's position is its rank quantile
    /// in the layer, `q = (rank + 0.5) / n` (ascending metric, ties sharing their mean rank), and its keep
    /// probability `sigmoid((q − b) / τ)` with b halfway between the highest pruned and the lowest kept q of the
    /// per-layer init mask. Every kept structure starts above 0.5 and every pruned one below, so any threshold
    /// between them (the global hard mask included) reproduces the per-layer metric plan at step 0; τ, a fraction
    /// of the layer's structures, sets the band around the boundary that sampling explores (about ±2.2 τ of the
    /// layer lies in (0.1, 0.9)). Ranks, not standardised values: metrics such as Wanda-sp are heavy-tailed, so a
    /// std-based scale would put most structures of a layer within a fraction of a std of the boundary.
    case planCentred(temperature: Double)

    /// Initial keep probabilities for one layer's vector of a kind. `initMask` (one entry per structure) is used
    /// only by `constant`; the other mappings ignore it.
    public func keepProbabilities(metric: [Double], kind: StructureKind, mean mu: Double, initMask: [Bool]) -> [Double] {
        switch self {
        case .sigmap: return Pruning.sigmap(metric, mean: mu)
        case .norm: return Pruning.minMaxNorm(metric, mean: mu)
        case .hybrid: return kind == .attention ? Pruning.sigmap(metric, mean: mu) : Pruning.minMaxNorm(metric, mean: mu)
        case .constant(let c): return initMask.map { $0 ? c : 1 - c }
        case .planCentred(let tau): return Pruning.planCentred(metric, initMask: initMask, temperature: tau)
        }
    }
}

/// `sigmap` of spec §3.2: `z = (x − mean) / (std_unbiased + 1e-8)`, `y = sigmoid(z)`, `y ← y + (μ − mean(y))`,
/// clip to [0,1]. Sums in Double.
///
/// n = 1 is defined as `[clip(μ)]`: the unbiased std of one value is undefined (PyTorch gives NaN, which would make
/// the score NaN); a lone structure carries no ranking information, so it starts at the target mean, as a
/// constant vector of any length does. n = 0 gives `[]`.
public func sigmap(_ x: [Double], mean mu: Double) -> [Double] {
    let n = x.count
    if n == 0 { return [] }
    if n == 1 { return [min(max(mu, 0), 1)] }
    let m = mean(x)
    var squares = 0.0
    for v in x { squares += (v - m) * (v - m) }
    let std = (squares / Double(n - 1)).squareRoot()
    let y = x.map { 1 / (1 + exp(-(($0 - m) / (std + 1e-8)))) }
    return shiftToMeanAndClip(y, mean: mu)
}

/// The `planCentred` mapping of one layer's vector: `sigmoid((q − b) / τ)` with q the rank quantile
/// `(rank + 0.5) / n` (ascending metric, tied values share their mean rank) and b the midpoint between the highest
/// pruned and the lowest kept q of `initMask`. All kept gives 1s, none kept gives 0s; n = 0 gives `[]`.
public func planCentred(_ x: [Double], initMask: [Bool], temperature tau: Double) -> [Double] {
    precondition(x.count == initMask.count, "one init-mask entry per structure")
    let n = x.count
    if n == 0 { return [] }
    if initMask.allSatisfy({ $0 }) { return Array(repeating: 1, count: n) }
    if !initMask.contains(true) { return Array(repeating: 0, count: n) }
    let order = x.indices.sorted { x[$0] < x[$1] || (x[$0] == x[$1] && $0 < $1) }
    var q = [Double](repeating: 0, count: n)
    var i = 0
    while i < n {
        var j = i
        while j + 1 < n && x[order[j + 1]] == x[order[i]] { j += 1 }
        let meanRank = Double(i + j) / 2
        for k in i...j { q[order[k]] = (meanRank + 0.5) / Double(n) }
        i = j + 1
    }
    var lowestKept = Double.infinity, highestPruned = -Double.infinity
    for (v, kept) in zip(q, initMask) {
        if kept { lowestKept = min(lowestKept, v) } else { highestPruned = max(highestPruned, v) }
    }
    let boundary = (lowestKept + highestPruned) / 2
    let t = max(tau, 1e-9)
    return q.map { 1 / (1 + exp(-($0 - boundary) / t)) }
}

/// Rank quantiles `(rank + 0.5) / n` by ascending value, ties by index: values in (0, 1) that keep the order of
/// `x` and nothing else (the fixed within-layer order of the allocation policy, and `score --save-scores`).
public func rankQuantiles(_ x: [Double]) -> [Double] {
    var q = [Double](repeating: 0, count: x.count)
    for (rank, i) in x.indices.sorted(by: { x[$0] < x[$1] || (x[$0] == x[$1] && $0 < $1) }).enumerated() {
        q[i] = (Double(rank) + 0.5) / Double(x.count)
    }
    return q
}

/// `norm` of spec §3.2: `(x − min) / (max − min + 1e-8)`, shift to mean μ, clip to [0,1]. n = 0 gives `[]`;
/// n = 1 gives `[clip(μ)]` (falls out of the formula: the single value maps to 0, then shifts to μ).
public func minMaxNorm(_ x: [Double], mean mu: Double) -> [Double] {
    guard let lo = x.min(), let hi = x.max() else { return [] }
    return shiftToMeanAndClip(x.map { ($0 - lo) / (hi - lo + 1e-8) }, mean: mu)
}

/// `y + (μ − mean(y))`, clipped to [0,1]; the mean is exactly μ unless the clip bites.
func shiftToMeanAndClip(_ y: [Double], mean mu: Double) -> [Double] {
    let shift = mu - mean(y)
    return y.map { min(max($0 + shift, 0), 1) }
}

/// Arithmetic mean in Double (0 for an empty vector).
func mean(_ x: [Double]) -> Double {
    x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count)
}

/// The per-layer init mask of spec §3.1 step 7: keep every structure whose metric is at or above
/// `sorted_ascending(metric)[floor(n · (1 − initKeepRatio))]` (ties kept).
public func initMask(metric: [Double], keepRatio: Double) -> [Bool] {
    let threshold = hardMaskThreshold(metric, keepRatio: keepRatio)
    return metric.map { threshold.keeps($0) }
}

/// Wanda-sp attention reduction (spec §3.1 step 5): the KV-group score is the mean of its G consecutive query-head
/// scores (`head h` belongs to group `h / G`).
/// - Precondition: `headScores.count` is a multiple of `groupSize`.
public func kvGroupScores(headScores: [Double], groupSize: Int) -> [Double] {
    precondition(groupSize > 0 && headScores.count % groupSize == 0, "head count must be a multiple of the group size")
    return stride(from: 0, to: headScores.count, by: groupSize).map { start in
        headScores[start..<start + groupSize].reduce(0, +) / Double(groupSize)
    }
}
