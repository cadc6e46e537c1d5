import Checkpoints
import Transformer

/// How the budget `Σ s ≤ ρ · n` is split (spec §1.3, §2.4, §2.7).
public enum BudgetScope: String, Codable, Sendable, CaseIterable {
    /// Two budgets over all layers: one for every KV-group score, one for every channel score (code default for
    /// the wanda-sp and random inits).
    case global
    /// One budget per layer and kind (code default for the llm-pruner inits).
    case perLayer = "per_layer"
    /// One budget over every structure weighted by its parameter cost, `Σ cost_i s_i ≤ ρ · Σ cost_i`, so attention
    /// and MLP trade against each other (not in the code; spec §2.7).
    case joint
}

/// A keep ratio per structure kind (1 − that kind's pruning rate): attention (KV groups, or attention sublayers /
/// decoder layers at those granularities) and MLP (channels or MLP sublayers). Budgets per kind are independent
/// (spec §1.3), so e.g. `attention: 1, mlp: 0.6` prunes 40 % of the MLP channels and no attention.
public typealias KeepRatios = PerKind

/// A pair of values, one per structure kind (keep ratios, learning rates, gradient norms, ... in the run log).
public struct PerKind: Codable, Sendable, Equatable {
    /// The attention structures' value.
    public var attention: Double
    /// The MLP structures' value.
    public var mlp: Double

    /// A pair.
    public init(attention: Double, mlp: Double) {
        self.attention = attention
        self.mlp = mlp
    }

    /// The same value for both kinds (for keep ratios: the official code's two budgets at one ratio).
    public init(both keepRatio: Double) { self.init(attention: keepRatio, mlp: keepRatio) }

    /// The value of one kind.
    public subscript(kind: StructureKind) -> Double { kind == .attention ? attention : mlp }

    /// For keep ratios: the one keep ratio of the parameter-weighted (joint) budget that removes the same parameters as these
    /// per-kind ratios would at equal unit costs: `(ρ_A · P_A + ρ_M · P_M) / (P_A + P_M)`, with P the dense
    /// attention and MLP parameters of `config`.
    public func joint(config: ModelConfig) -> Double {
        if attention == mlp { return mlp }
        let p = config.parameterCount
        let total = Double(p.attention + p.mlp)
        return total == 0 ? mlp : (attention * Double(p.attention) + mlp * Double(p.mlp)) / total
    }
}

/// The Bernoulli keep probabilities `s` of every prunable structure (the code's "scores", spec §1.1): `s_i` is the
/// probability that structure i is kept. Held in Double (the code uses float32; Double only removes rounding).
public struct KeepProbabilities: Codable, Sendable, Equatable {
    /// [layer][kvGroup]
    public var attention: [[Double]]
    /// [layer][channel]
    public var mlp: [[Double]]

    public init(attention: [[Double]], mlp: [[Double]]) {
        self.attention = attention
        self.mlp = mlp
    }

    /// Every score of `config` under `granularity` at the same probability (an absent sublayer gets an empty
    /// vector).
    public static func uniform(_ config: ModelConfig, value: Double, granularity: PruningGranularity = .channels) -> KeepProbabilities {
        KeepProbabilities(
            attention: config.layers.indices.map {
                Array(repeating: value, count: granularity.scoreCount(.attention, layer: $0, config: config))
            },
            mlp: config.layers.indices.map { Array(repeating: value, count: granularity.scoreCount(.mlp, layer: $0, config: config)) })
    }

    /// These scores with every structure of a kind whose target keep ratio is 1 set to exactly 1: that kind is
    /// not pruned, so its masks are never sampled away (s = 1 draws m = 1 always and has zero gradient).
    public func keepingUnprunedKinds(_ targets: KeepRatios) -> KeepProbabilities {
        var copy = self
        for kind in StructureKind.allCases where targets[kind] >= 1 {
            copy[kind] = copy[kind].map { Array(repeating: 1, count: $0.count) }
        }
        return copy
    }

    /// Whether the hard mask at these keep ratios keeps more structures than the budget allows because of ties at
    /// the threshold (spec §2.4 keeps every tie): e.g. when a too-large learning rate drives a whole kind to one
    /// value, the hard mask keeps everything. Global and per-layer scopes count structures; joint is not checked.
    public func hardMaskExceedsBudget(keepRatios: KeepRatios, scope: BudgetScope) -> Bool {
        func exceeds(_ v: [Double], _ rho: Double) -> Bool {
            let t = hardMaskThreshold(v, keepRatio: rho)
            return v.filter { t.keeps($0) }.count > v.count - t.index
        }
        for kind in StructureKind.allCases {
            switch scope {
            case .global: if exceeds(Array(self[kind].joined()), keepRatios[kind]) { return true }
            case .perLayer: if self[kind].contains(where: { exceeds($0, keepRatios[kind]) }) { return true }
            case .joint: return false
            }
        }
        return false
    }

    /// The per-layer vectors of one kind.
    public subscript(kind: StructureKind) -> [[Double]] {
        get { kind == .attention ? attention : mlp }
        set { if kind == .attention { attention = newValue } else { mlp = newValue } }
    }

    /// Checks layer count and per-layer lengths against `config` under `granularity`, and that every value is
    /// finite.
    public func validate(against config: ModelConfig, granularity: PruningGranularity = .channels) throws {
        for kind in StructureKind.allCases {
            let vectors = self[kind]
            let what = "\(kind.rawValue) keep probabilities"
            guard vectors.count == config.layers.count else {
                throw PruningError.layerCount(what: what, expected: config.layers.count, found: vectors.count)
            }
            for (l, v) in vectors.enumerated() {
                let expected = granularity.scoreCount(kind, layer: l, config: config)
                guard v.count == expected else {
                    throw PruningError.lengthMismatch(what: what, layer: l, expected: expected, found: v.count)
                }
                if let bad = v.first(where: { !$0.isFinite }) {
                    throw PruningError.invalidValue(key: "\(what)[\(l)]", value: "\(bad)", reason: "must be finite")
                }
            }
        }
    }

    /// Projects onto the budget set at keep ratio `keepRatio` (spec §1.3), after an update step. Global: one
    /// projection per kind over all layers (budget `ρ · N`); per-layer: one per layer and kind (budget `ρ · n`);
    /// joint: one projection over everything weighted by parameter cost (costs from `config`, normalised by the
    /// mean structure cost so the 1e-3 tolerance is in units of one average structure). Returns the results in the
    /// order performed: global [attention, mlp]; per-layer [layer 0 attention, layer 0 mlp, layer 1 ...]; joint [one].
    @discardableResult
    public mutating func projectOntoBudget(keepRatio: Double, scope: BudgetScope, config: ModelConfig,
                                           granularity: PruningGranularity = .channels) -> [ProjectionResult] {
        projectOntoBudget(keepRatios: KeepRatios(both: keepRatio), scope: scope, config: config, granularity: granularity)
    }

    /// `projectOntoBudget(keepRatio:...)` with one keep ratio per kind (global and per-layer budgets are per kind
    /// anyway; the joint budget uses `KeepRatios.joint(config:)`).
    @discardableResult
    public mutating func projectOntoBudget(keepRatios: KeepRatios, scope: BudgetScope, config: ModelConfig,
                                           granularity: PruningGranularity = .channels) -> [ProjectionResult] {
        switch scope {
        case .global:
            return StructureKind.allCases.map { kind in
                var vectors = self[kind]
                let n = vectors.reduce(0) { $0 + $1.count }
                if keepRatios[kind] >= 1 {
                    // The budget is the whole box: the projection is the clip alone (the bisection would shift by
                    // its last midpoint, max z / 2^21, and let a kept-whole kind be sampled away).
                    let excess = vectors.joined().reduce(0.0) { $0 + min(max($1, 0), 1) } - Double(n)
                    vectors = vectors.map { $0.map { min(max($0, 0), 1) } }
                    self[kind] = vectors
                    return ProjectionResult(shift: 0, evaluations: 0, excessAtZero: excess, budget: Double(n))
                }
                let result = Pruning.projectOntoBudget(&vectors, budget: keepRatios[kind] * Double(n))
                self[kind] = vectors
                return result
            }
        case .perLayer:
            var results: [ProjectionResult] = []
            for l in attention.indices {
                results.append(Pruning.projectOntoBudget(&attention[l], budget: keepRatios.attention * Double(attention[l].count)))
                results.append(Pruning.projectOntoBudget(&mlp[l], budget: keepRatios.mlp * Double(mlp[l].count)))
            }
            return results
        case .joint:
            var segments = attention + mlp
            let costs = Self.jointWeights(config: config, layers: attention.count, granularity: granularity)
            let weightedCount = zip(segments, costs).reduce(0.0) { $0 + Double($1.0.count) * $1.1 }
            let keepRatio = keepRatios.joint(config: config)
            let result = Pruning.projectOntoBudget(&segments, budget: keepRatio * weightedCount, weights: costs)
            attention = Array(segments[..<attention.count])
            mlp = Array(segments[attention.count...])
            return [result]
        }
    }

    /// One weight per segment of `attention + mlp`: the unit parameter cost divided by the mean cost of all the
    /// model's structures.
    static func jointWeights(config: ModelConfig, layers: Int, granularity: PruningGranularity) -> [Double] {
        var costs: [Double] = []
        var totalCost = 0.0
        var totalCount = 0
        for kind in StructureKind.allCases {
            for l in 0..<layers {
                let c = Double(granularity.unitParameterCost(kind, layer: l, config: config))
                let n = granularity.scoreCount(kind, layer: l, config: config)
                costs.append(c)
                totalCost += c * Double(n)
                totalCount += n
            }
        }
        let mean = totalCount == 0 ? 1 : totalCost / Double(totalCount)
        return costs.map { $0 / mean }
    }

    /// The deterministic mask of spec §2.4: keep every structure whose probability is at or above the threshold
    /// (ties kept). Global: one threshold per kind over all layers; per-layer: one per layer and kind; joint: one
    /// threshold over everything by parameter cost (`hardMaskThreshold(_:costs:keepRatio:)`). Sublayer flags follow
    /// `config`; a layer left with no groups or channels simply has empty id lists. `granularity` says what the
    /// vectors hold (`PruningGranularity.structureMask`).
    public func hardMask(keepRatio: Double, scope: BudgetScope, config: ModelConfig,
                         granularity: PruningGranularity = .channels) -> StructureMask {
        hardMask(keepRatios: KeepRatios(both: keepRatio), scope: scope, config: config, granularity: granularity)
    }

    /// `hardMask(keepRatio:...)` with one keep ratio per kind (joint: `KeepRatios.joint(config:)`).
    /// - Parameter exactBudget: keep ties at the threshold only while the count allows (in layer order, then index
    ///   order), so the mask never keeps more than the budget; false (the default) keeps every tie, as the
    ///   official code does (spec §2.4). Joint scope always keeps ties.
    public func hardMask(keepRatios: KeepRatios, scope: BudgetScope, config: ModelConfig,
                         granularity: PruningGranularity = .channels, exactBudget: Bool = false) -> StructureMask {
        var keptGroups = attention.map { _ in [Int]() }
        var keptChannels = mlp.map { _ in [Int]() }
        /// Kept ids per vector of `group` (vectors sharing one threshold): every s ≥ θ, or with `exactBudget` every
        /// s > θ plus the first ties up to the count `total − index`.
        func kept(_ group: [[Double]], _ rho: Double) -> [[Int]] {
            let t = hardMaskThreshold(group.joined(), keepRatio: rho)
            guard exactBudget else { return group.map { keptIds($0, threshold: t) } }
            let total = group.reduce(0) { $0 + $1.count }
            var ties = (total - t.index) - group.joined().filter { $0 > t.threshold }.count
            return group.map { v in
                v.indices.filter { i in
                    if v[i] > t.threshold { return true }
                    if v[i] == t.threshold && ties > 0 { ties -= 1; return true }
                    return false
                }
            }
        }
        switch scope {
        case .global:
            keptGroups = kept(attention, keepRatios.attention)
            keptChannels = kept(mlp, keepRatios.mlp)
        case .perLayer:
            keptGroups = attention.map { kept([$0], keepRatios.attention)[0] }
            keptChannels = mlp.map { kept([$0], keepRatios.mlp)[0] }
        case .joint:
            let keepRatio = keepRatios.joint(config: config)
            let weights = Self.jointWeights(config: config, layers: attention.count, granularity: granularity)
            let segments = attention + mlp
            var scores: [Double] = [], costs: [Double] = []
            for (segment, w) in zip(segments, weights) {
                scores += segment
                costs += Array(repeating: w, count: segment.count)
            }
            let t = hardMaskThreshold(scores, costs: costs, keepRatio: keepRatio)
            keptGroups = attention.map { keptIds($0, threshold: t) }
            keptChannels = mlp.map { keptIds($0, threshold: t) }
        }
        return granularity.structureMask(keptAttention: keptGroups, keptMLP: keptChannels, config: config)
    }
}
