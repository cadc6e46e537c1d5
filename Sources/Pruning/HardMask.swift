/// The threshold of the deterministic (hard) mask of spec §2.4.
public struct HardMaskThreshold: Codable, Sendable, Equatable {
    /// `floor(n · (1 − keepRatio))`, computed in Double; may equal n (nothing kept) for keep ratio 0.
    public var index: Int
    /// `sorted_ascending(s)[index]`; `+∞` when `index == n` (keep ratio 0 keeps nothing).
    public var threshold: Double

    public init(index: Int, threshold: Double) {
        self.index = index
        self.threshold = threshold
    }

    /// Whether a structure with keep probability `s` is kept (`s ≥ θ`; ties at θ are all kept).
    public func keeps(_ s: Double) -> Bool { s >= threshold }
}

/// `floor(count · (1 − keepRatio))` in Double, clamped to `0...count` (spec §2.4). The Double matters:
/// `1 − 0.9 = 0.09999999999999998`, so `n = 10, ρ = 0.9` gives index 0.
public func hardMaskIndex(count: Int, keepRatio: Double) -> Int {
    let raw = (Double(count) * (1.0 - keepRatio)).rounded(.down)
    return Int(min(max(raw, 0), Double(count)))
}

/// The hard-mask threshold of one group of scores (all layers concatenated in global mode, one layer's vector in
/// per-layer mode): sort ascending and take the element at `hardMaskIndex`.
public func hardMaskThreshold<S: Sequence>(_ scores: S, keepRatio: Double) -> HardMaskThreshold where S.Element == Double {
    let sorted = scores.sorted()
    let index = hardMaskIndex(count: sorted.count, keepRatio: keepRatio)
    return HardMaskThreshold(index: index, threshold: index < sorted.count ? sorted[index] : .infinity)
}

/// The ids (ascending) of the scores at or above `threshold`.
public func keptIds(_ scores: [Double], threshold: HardMaskThreshold) -> [Int] {
    scores.indices.filter { threshold.keeps(scores[$0]) }
}

/// The hard-mask threshold under a parameter budget (joint mode): walk the structures in ascending score order and
/// remove each while the removed cost stays within `(1 − keepRatio) · total cost`; the score of the first structure
/// that no longer fits is θ, and every structure with `s ≥ θ` is kept (ties kept). With unit costs this removes
/// `floor(n · (1 − keepRatio))` structures, i.e. the count rule of `hardMaskThreshold`.
/// `index` is the number of structures removed before θ.
public func hardMaskThreshold(_ scores: [Double], costs: [Double], keepRatio: Double) -> HardMaskThreshold {
    precondition(scores.count == costs.count, "one cost per score")
    let order = scores.indices.sorted { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
    let totalCost = costs.reduce(0, +)
    let removable = totalCost * (1.0 - keepRatio)
    var removed = 0.0
    for (position, i) in order.enumerated() {
        if removed + costs[i] > removable { return HardMaskThreshold(index: position, threshold: scores[i]) }
        removed += costs[i]
    }
    return HardMaskThreshold(index: order.count, threshold: .infinity)
}
