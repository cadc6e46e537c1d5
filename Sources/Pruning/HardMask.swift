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
/// per-layer mode): the element at `hardMaskIndex` of the scores sorted ascending, found by selection
/// (`kthSmallest`) rather than a sort, since every PG step computes it for its log (SmolLM2: 46,080 channels).
/// With a NaN score the threshold is unspecified, as it was with a sort (keep probabilities are checked finite).
public func hardMaskThreshold<S: Sequence>(_ scores: S, keepRatio: Double) -> HardMaskThreshold where S.Element == Double {
    var values = Array(scores)
    let index = hardMaskIndex(count: values.count, keepRatio: keepRatio)
    return HardMaskThreshold(index: index, threshold: index < values.count ? kthSmallest(&values, index) : .infinity)
}

/// `values.sorted()[k]` (`k` in `values.indices`; no NaN), in linear expected time: quickselect with a
/// median-of-three pivot and a three-way partition, so runs of equal scores (a uniform start) end in one pass; a
/// range still large after `maximumPartitions` partitions is sorted instead. Reorders `values`.
func kthSmallest(_ values: inout [Double], _ k: Int, maximumPartitions: Int = 64) -> Double {
    precondition(values.indices.contains(k), "kthSmallest: k outside the values")
    return values.withUnsafeMutableBufferPointer { v in
        var lo = 0, hi = v.count   // position k lies in [lo, hi)
        var partitions = 0
        while hi - lo > 16 && partitions < maximumPartitions {
            partitions += 1
            let a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1]
            let pivot = max(min(a, b), min(max(a, b), c))
            // [lo, less) < pivot, [less, i) == pivot, [greater, hi) > pivot
            var less = lo, i = lo, greater = hi
            while i < greater {
                let x = v[i]
                if x < pivot {
                    v.swapAt(less, i); less += 1; i += 1
                } else if x > pivot {
                    greater -= 1; v.swapAt(i, greater)
                } else {
                    i += 1
                }
            }
            if k < less { hi = less } else if k >= greater { lo = greater } else { return pivot }
        }
        var rest = UnsafeMutableBufferPointer(rebasing: v[lo..<hi])
        rest.sort()
        return v[k]
    }
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
