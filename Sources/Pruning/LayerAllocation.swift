import Checkpoints
import Essentials
import Foundation
import Kernels

/// Options of the allocation policy (`prune --policy allocation`; not in the paper).
///
/// The paper's policy is one Bernoulli keep probability per structure. On a model such as SmolLM2 (46,080 MLP
/// channels) the per-structure signal is too weak for the steps a CPU can afford (RESULTS.md, issue 11): a boundary
/// channel moves the loss by ~2e-5 nats against ~1e-3 of sampling noise. The allocation policy keeps what the
/// metric knows (the order of structures within each layer) and learns what it does not (how many structures each
/// layer keeps): a Gaussian policy over each layer's kept fraction per kind, sampled in antithetic pairs that share
/// the batch, updated by the score-function (policy-gradient) estimate with Adam, and projected onto the budget after
/// every step. Forward passes only, as in the paper.
public struct AllocationPolicyOptions: Codable, Sendable, Equatable {
    /// σ: standard deviation of each layer's kept-fraction perturbation (a fraction of the layer; at least one
    /// structure of the layer, so a 3-group attention layer is perturbed by about one group).
    public var sigma: Double
    /// Adam step size (a fraction of a layer per step at full signal) and its schedule.
    public var learningRate: LearningRateSchedule
    /// Adam β1.
    public var beta1: Double
    /// Adam β2.
    public var beta2: Double

    /// Options with Adam's usual moments.
    public init(sigma: Double = 0.02, learningRate: LearningRateSchedule, beta1: Double = 0.9, beta2: Double = 0.99) {
        self.sigma = sigma
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
    }

    /// Rejects values outside their domain, naming the option.
    public func validate(samplesPerStep: Int) throws {
        func fail(_ key: String, _ value: Any, _ reason: String) -> PruningError {
            PruningError.invalidValue(key: key, value: "\(value)", reason: reason)
        }
        guard sigma > 0, sigma < 1 else { throw fail("allocation.sigma", sigma, "must be in (0, 1)") }
        guard learningRate.initial >= 0, learningRate.initial.isFinite else {
            throw fail("allocation.learning_rate", learningRate.initial, "must be a finite value ≥ 0")
        }
        guard learningRate.totalSteps >= 1 else { throw fail("allocation.learning_rate.total_steps", learningRate.totalSteps, "must be at least 1") }
        for (key, b) in [("allocation.beta1", beta1), ("allocation.beta2", beta2)] where !(b >= 0 && b < 1) {
            throw fail(key, b, "must be in [0, 1)")
        }
        guard samplesPerStep % 2 == 0 else {
            throw fail("k", samplesPerStep, "the allocation policy samples antithetic pairs: K must be even")
        }
    }
}

/// The state of the allocation policy: each layer's kept fraction per kind (the policy's mean), the order of the
/// structures within each layer (fixed at the start, from the initial keep probabilities), and Adam's moments.
public struct LayerAllocation: Codable, Sendable, Equatable {
    /// [layer][structure] rank quantile within the layer, `(rank + 0.5) / n` by ascending initial keep probability
    /// (ties by index): the higher, the earlier a structure is kept.
    public var attentionQuantiles: [[Double]]
    /// The same for the MLP channels.
    public var mlpQuantiles: [[Double]]
    /// [layer] kept fraction of the KV groups.
    public var attention: [Double]
    /// [layer] kept fraction of the MLP channels.
    public var mlp: [Double]
    /// Which kinds are learned (a kind at keep ratio 1 is held whole and never perturbed).
    public var learnsAttention: Bool
    /// Whether the MLP fractions are learned.
    public var learnsMLP: Bool
    /// Adam's first moment, attention layers then MLP layers.
    public var firstMoment: [Double]
    /// Adam's second moment.
    public var secondMoment: [Double]
    /// Adam updates done.
    public var updates: Int

    /// Width of the keep probabilities this state is shown as (`keepProbabilities`): `sigmoid((q − (1 − f)) / w)`.
    public static let displayTemperature = 0.05

    /// The allocation of `initial`'s hard mask at `keepRatios` (global per kind, exact budget): each layer's kept
    /// fraction is what that mask keeps there, and the order within a layer is `initial`'s.
    public init(initial: KeepProbabilities, keepRatios: KeepRatios, config: ModelConfig) {
        let mask = initial.hardMask(keepRatios: keepRatios, scope: .global, config: config, exactBudget: true)
        attentionQuantiles = initial.attention.map(rankQuantiles)
        mlpQuantiles = initial.mlp.map(rankQuantiles)
        attention = initial.attention.indices.map { l in
            let n = initial.attention[l].count
            return n == 0 ? 1 : Double(mask.layers[l].keptKVGroups.count) / Double(n)
        }
        mlp = initial.mlp.indices.map { l in
            let n = initial.mlp[l].count
            return n == 0 ? 1 : Double(mask.layers[l].keptChannels.count) / Double(n)
        }
        learnsAttention = keepRatios.attention < 1
        learnsMLP = keepRatios.mlp < 1
        firstMoment = Array(repeating: 0, count: attention.count + mlp.count)
        secondMoment = firstMoment
        updates = 0
    }

    /// The kept fractions of one kind.
    public subscript(kind: StructureKind) -> [Double] {
        get { kind == .attention ? attention : mlp }
        set { if kind == .attention { attention = newValue } else { mlp = newValue } }
    }

    func quantiles(_ kind: StructureKind) -> [[Double]] { kind == .attention ? attentionQuantiles : mlpQuantiles }

    func learns(_ kind: StructureKind) -> Bool { kind == .attention ? learnsAttention : learnsMLP }

    /// The state as keep probabilities (what checkpoints' readers, `scores.json`, the hard mask and the report
    /// see): `sigmoid((q − (1 − f_l)) / w)`, so within a layer the order is the fixed one and the global hard mask at
    /// the budget keeps about `f_l · n_l` structures of layer l (the last few by closeness to their boundary).
    public var keepProbabilities: KeepProbabilities {
        func probabilities(_ kind: StructureKind) -> [[Double]] {
            let f = self[kind]
            return quantiles(kind).enumerated().map { l, q in
                q.map { 1 / (1 + exp(-($0 - (1 - f[l])) / Self.displayTemperature)) }
            }
        }
        return KeepProbabilities(attention: probabilities(.attention), mlp: probabilities(.mlp))
    }

    /// The mask keeping `round(f_l · n_l)` structures of each layer, by quantile.
    public func mask(attention fa: [Double], mlp fm: [Double]) -> MaskSample {
        func kept(_ q: [[Double]], _ f: [Double]) -> [[Bool]] {
            q.enumerated().map { l, v in
                let n = v.count
                let count = Int((min(max(f[l], 0), 1) * Double(n)).rounded())
                // Keep the `count` highest quantiles: q = (rank + 0.5)/n, so rank ≥ n − count.
                return v.map { Int(($0 * Double(n)).rounded(.down)) >= n - count }
            }
        }
        return MaskSample(attention: kept(attentionQuantiles, fa), mlp: kept(mlpQuantiles, fm))
    }

    /// σ of layer l of a kind: at least one structure.
    func sigma(_ kind: StructureKind, layer l: Int, options: AllocationPolicyOptions) -> Double {
        let n = quantiles(kind)[l].count
        return n == 0 ? 0 : max(options.sigma, 1 / Double(n))
    }

    /// One antithetic pair: ε ~ N(0, 1) per learned layer and kind, centred per kind (weighted by the layers'
    /// structure counts, so a perturbation moves structures between layers without changing the kind's total), and
    /// the masks at `f + σε` and `f − σε`. Draws: attention layers then MLP layers, two uniforms each (Box–Muller).
    public func samplePair(options: AllocationPolicyOptions, using rng: inout Xoshiro256)
        -> (noise: PerKindVectors, plus: MaskSample, minus: MaskSample) {
        var noise = PerKindVectors(attention: Array(repeating: 0, count: attention.count), mlp: Array(repeating: 0, count: mlp.count))
        for kind in StructureKind.allCases {
            var e = [Double](repeating: 0, count: self[kind].count)
            for l in e.indices {
                let u1 = max(rng.nextUnitDouble(), 1e-300), u2 = rng.nextUnitDouble()
                e[l] = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            }
            guard learns(kind) else { continue }
            let sizes = quantiles(kind).map { Double($0.count) }
            let total = sizes.reduce(0, +)
            if total > 0 {
                let centre = zip(e, sizes).reduce(0) { $0 + $1.0 * $1.1 } / total
                for l in e.indices { e[l] = sizes[l] > 0 ? e[l] - centre : 0 }
            }
            noise[kind] = e
        }
        func shifted(_ sign: Double) -> MaskSample {
            func f(_ kind: StructureKind) -> [Double] {
                self[kind].indices.map { l in self[kind][l] + sign * sigma(kind, layer: l, options: options) * noise[kind][l] }
            }
            return mask(attention: f(.attention), mlp: f(.mlp))
        }
        return (noise, shifted(1), shifted(-1))
    }

    /// One update from `pairs` (noise, loss at +σε, loss at −σε; pairs with a NaN loss dropped): the antithetic
    /// score-function estimate `g_l = mean (L₊ − L₋) ε_l / (2σ_l)` of the gradient of the expected loss, an Adam
    /// step of size `eta`, then the projection of each learned kind onto `keepRatios`. Returns the gradient norm
    /// per kind, or nil when every pair was dropped (nothing changes).
    public mutating func update(pairs: [(noise: PerKindVectors, plus: Double, minus: Double)], keepRatios: KeepRatios,
                                eta: Double, options: AllocationPolicyOptions) -> PerKind? {
        let valid = pairs.filter { $0.plus.isFinite && $0.minus.isFinite }
        guard !valid.isEmpty else { return nil }
        updates += 1
        var norms = PerKind(attention: 0, mlp: 0)
        for kind in StructureKind.allCases where learns(kind) {
            let offset = kind == .attention ? 0 : attention.count
            var f = self[kind]
            var squared = 0.0
            for l in f.indices {
                let sigma = sigma(kind, layer: l, options: options)
                guard sigma > 0 else { continue }
                var g = 0.0
                for p in valid { g += (p.plus - p.minus) * p.noise[kind][l] / (2 * sigma) }
                g /= Double(valid.count)
                squared += g * g
                let j = offset + l
                firstMoment[j] = options.beta1 * firstMoment[j] + (1 - options.beta1) * g
                secondMoment[j] = options.beta2 * secondMoment[j] + (1 - options.beta2) * g * g
                let mHat = firstMoment[j] / (1 - pow(options.beta1, Double(updates)))
                let vHat = secondMoment[j] / (1 - pow(options.beta2, Double(updates)))
                f[l] -= eta * mHat / (vHat.squareRoot() + 1e-12)
            }
            if kind == .attention { norms.attention = squared.squareRoot() } else { norms.mlp = squared.squareRoot() }
            self[kind] = Self.project(f, sizes: quantiles(kind).map(\.count), keepRatio: keepRatios[kind])
        }
        return norms
    }

    /// `clip(f_l + c, 0, 1)` with the one shift c (bisection) that makes `Σ f_l n_l = ρ Σ n_l`.
    static func project(_ f: [Double], sizes: [Int], keepRatio rho: Double) -> [Double] {
        let total = Double(sizes.reduce(0, +))
        guard total > 0 else { return f }
        let target = rho * total
        func kept(_ c: Double) -> Double {
            zip(f, sizes).reduce(0) { $0 + min(max($1.0 + c, 0), 1) * Double($1.1) }
        }
        var lo = -1 - (f.max() ?? 0), hi = 1 - (f.min() ?? 0)
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if kept(mid) < target { lo = mid } else { hi = mid }
        }
        let c = (lo + hi) / 2
        return zip(f, sizes).map { $1 == 0 ? 1 : min(max($0 + c, 0), 1) }
    }
}

/// One vector per kind (per-layer values), e.g. the noise of an allocation sample.
public struct PerKindVectors: Codable, Sendable, Equatable {
    /// Attention values per layer.
    public var attention: [Double]
    /// MLP values per layer.
    public var mlp: [Double]

    /// A pair of vectors.
    public init(attention: [Double], mlp: [Double]) {
        self.attention = attention
        self.mlp = mlp
    }

    /// The vector of one kind.
    public subscript(kind: StructureKind) -> [Double] {
        get { kind == .attention ? attention : mlp }
        set { if kind == .attention { attention = newValue } else { mlp = newValue } }
    }
}

/// One step of the allocation policy on a run's state: updates `allocation` from the antithetic `pairs`, shows it
/// as `state.keepProbabilities`, and advances the step counter unless every pair had a NaN loss (then nothing
/// changes, as for the per-structure policy). The baseline of the per-structure policy is not used (each pair is
/// its own baseline); δ is reported as the step's mean loss.
func allocationStep(state: inout PolicyGradientState, allocation: inout LayerAllocation,
                    pairs: [(noise: PerKindVectors, plus: Double, minus: Double)], allocationOptions ao: AllocationPolicyOptions,
                    options o: PolicyGradientOptions) -> PolicyGradientStepReport {
    let t = state.step
    let eta = ao.learningRate.rate(atStep: t)
    let rho = o.keepRatios(atStep: t)
    let losses = pairs.flatMap { [$0.plus, $0.minus] }.filter { $0.isFinite }
    let meanLoss = losses.isEmpty ? Double.nan : losses.reduce(0, +) / Double(losses.count)
    guard let norms = allocation.update(pairs: pairs, keepRatios: rho, eta: eta, options: ao) else {
        return PolicyGradientStepReport(skipped: true, validSamples: 0, meanLoss: .nan, baseline: .nan,
                                        attentionLearningRate: eta, mlpLearningRate: eta, keepRatio: rho.mlp,
                                        attentionKeepRatio: rho.attention, attentionGradientNorm: 0, mlpGradientNorm: 0, projections: [])
    }
    state.allocation = allocation
    state.keepProbabilities = allocation.keepProbabilities
    state.step += 1
    return PolicyGradientStepReport(skipped: false, validSamples: losses.count, meanLoss: meanLoss, baseline: meanLoss,
                                    attentionLearningRate: allocation.learnsAttention ? eta : 0,
                                    mlpLearningRate: allocation.learnsMLP ? eta : 0, keepRatio: rho.mlp,
                                    attentionKeepRatio: rho.attention, attentionGradientNorm: norms.attention,
                                    mlpGradientNorm: norms.mlp, projections: [])
}
