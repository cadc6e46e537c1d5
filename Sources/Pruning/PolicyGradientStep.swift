import Checkpoints

/// Everything the score update of spec §1.10 needs besides the forward passes. Defaults are the official
/// scripts' (K = 2, T = 5, code estimator, cosine without warm-up, global budgets, penalty off).
public struct PolicyGradientOptions: Codable, Sendable, Equatable {
    /// Which estimator forms g.
    public var estimator: GradientEstimator
    /// K: masks sampled (forward passes) per step.
    public var samplesPerStep: Int
    /// Baseline rule.
    public var baselineKind: MovingAverageBaseline.Kind
    /// Baseline window T (EMA weight 1/T, or T step means).
    public var baselineWindow: Int
    /// Learning rate of the KV-group scores.
    public var attentionLearningRate: LearningRateSchedule
    /// Learning rate of the channel scores.
    public var mlpLearningRate: LearningRateSchedule
    /// Entropy penalty (off by default).
    public var penalty: EntropyPenalty
    /// Keep ratio per step (constant by default): of the MLP structures, and of the attention structures too
    /// unless `attentionKeepRatio` is set.
    public var keepRatio: KeepRatioSchedule
    /// Keep ratio of the attention structures when it differs from the MLP's (`--attention-rate`); nil: the same
    /// schedule as `keepRatio` (the official code's single ratio).
    public var attentionKeepRatio: KeepRatioSchedule?
    /// How the budget is split.
    public var budgetScope: BudgetScope

    public init(estimator: GradientEstimator = .code, samplesPerStep: Int = 2,
                baselineKind: MovingAverageBaseline.Kind = .exponential, baselineWindow: Int = 5,
                attentionLearningRate: LearningRateSchedule, mlpLearningRate: LearningRateSchedule,
                penalty: EntropyPenalty = .off, keepRatio: KeepRatioSchedule, attentionKeepRatio: KeepRatioSchedule? = nil,
                budgetScope: BudgetScope = .global) {
        self.estimator = estimator
        self.samplesPerStep = samplesPerStep
        self.baselineKind = baselineKind
        self.baselineWindow = baselineWindow
        self.attentionLearningRate = attentionLearningRate
        self.mlpLearningRate = mlpLearningRate
        self.penalty = penalty
        self.keepRatio = keepRatio
        self.attentionKeepRatio = attentionKeepRatio
        self.budgetScope = budgetScope
    }

    /// ρ_t per kind.
    public func keepRatios(atStep t: Int) -> KeepRatios {
        KeepRatios(attention: (attentionKeepRatio ?? keepRatio).keepRatio(atStep: t), mlp: keepRatio.keepRatio(atStep: t))
    }

    /// ρ_target per kind.
    public var targetKeepRatios: KeepRatios {
        KeepRatios(attention: (attentionKeepRatio ?? keepRatio).target, mlp: keepRatio.target)
    }

    /// Rejects values outside their domain, naming the option.
    public func validate() throws {
        func fail(_ key: String, _ value: Any, _ reason: String) -> PruningError {
            PruningError.invalidValue(key: key, value: "\(value)", reason: reason)
        }
        let minimumSamples = estimator == .code ? 2 : 1
        if samplesPerStep < minimumSamples {
            throw fail("samples_per_step", samplesPerStep, "the \(estimator.rawValue) estimator needs at least \(minimumSamples)")
        }
        if baselineWindow < 1 { throw fail("baseline_window", baselineWindow, "must be at least 1") }
        for (key, schedule) in [("attention_learning_rate", attentionLearningRate), ("mlp_learning_rate", mlpLearningRate)] {
            if !(schedule.initial >= 0) || !schedule.initial.isFinite { throw fail(key, schedule.initial, "must be a finite value ≥ 0") }
            if schedule.totalSteps < 1 { throw fail("\(key).total_steps", schedule.totalSteps, "must be at least 1") }
            if schedule.warmupSteps < 0 { throw fail("\(key).warmup_steps", schedule.warmupSteps, "must be ≥ 0") }
        }
        for (name, schedule) in [("keep_ratio", keepRatio), ("attention_keep_ratio", attentionKeepRatio)] {
            guard let schedule else { continue }
            for (key, value) in [("\(name).start", schedule.start), ("\(name).target", schedule.target)] {
                if !(value >= 0 && value <= 1) { throw fail(key, value, "must be in [0, 1]") }
            }
            if schedule.endStep < schedule.startStep {
                throw fail("\(name).end_step", schedule.endStep, "must not precede start_step \(schedule.startStep)")
            }
        }
    }
}

/// The optimizer state that changes every step (all of it, so a resumed run continues exactly).
public struct PolicyGradientState: Codable, Sendable, Equatable {
    /// Current keep probabilities s.
    public var keepProbabilities: KeepProbabilities
    /// δ.
    public var baseline: MovingAverageBaseline
    /// Number of valid (non-skipped) steps done: the schedules' position.
    public var step: Int
    /// The allocation policy's state (`prune --policy allocation`); nil for the paper's per-structure policy. When
    /// set, `keepProbabilities` is its display (`LayerAllocation.keepProbabilities`).
    public var allocation: LayerAllocation?

    public init(keepProbabilities: KeepProbabilities, baseline: MovingAverageBaseline, step: Int = 0,
                allocation: LayerAllocation? = nil) {
        self.keepProbabilities = keepProbabilities
        self.baseline = baseline
        self.step = step
        self.allocation = allocation
    }

    /// The state before step 0: the initial keep probabilities and a fresh baseline of the options' kind.
    public init(initial: KeepProbabilities, options: PolicyGradientOptions) {
        self.init(keepProbabilities: initial,
                  baseline: MovingAverageBaseline(kind: options.baselineKind, window: options.baselineWindow))
    }
}

/// What one call of `policyGradientStep` did, for the log.
public struct PolicyGradientStepReport: Codable, Sendable, Equatable {
    /// True when every sample loss was NaN: nothing changed (spec §1.6).
    public var skipped: Bool
    /// Number of samples used.
    public var validSamples: Int
    /// L̄_t over valid samples (NaN when skipped).
    public var meanLoss: Double
    /// δ used for the gradient.
    public var baseline: Double
    /// Learning rate used for the KV-group scores.
    public var attentionLearningRate: Double
    /// Learning rate used for the channel scores.
    public var mlpLearningRate: Double
    /// Keep ratio of the projection (MLP; see `attentionKeepRatio`).
    public var keepRatio: Double
    /// Keep ratio of the attention projection.
    public var attentionKeepRatio: Double
    /// Euclidean norm of the KV-group gradient over all layers (penalty included).
    public var attentionGradientNorm: Double
    /// Euclidean norm of the channel gradient over all layers (penalty included).
    public var mlpGradientNorm: Double
    /// Projection results (see `KeepProbabilities.projectOntoBudget`).
    public var projections: [ProjectionResult]
}

/// Steps 3–7 of spec §1.10 for one training step, given the K sampled masks and their losses: drop NaN samples
/// (all NaN → skip, nothing changes), update δ (before the gradient), form g per layer and kind (plus the penalty),
/// `s ← s − η_t g` with each kind's learning rate, project at `ρ_t`, advance the step counter.
/// Precondition: `samples.count == losses.count == options.samplesPerStep` and the shapes match the state.
public func policyGradientStep(state: inout PolicyGradientState, samples: [MaskSample], losses: [Double],
                               options: PolicyGradientOptions, config: ModelConfig,
                               granularity: PruningGranularity = .channels) -> PolicyGradientStepReport {
    precondition(samples.count == losses.count, "one loss per sample")
    let t = state.step
    let valid = validSampleIndices(losses: losses)
    let etaA = options.attentionLearningRate.rate(atStep: t)
    let etaM = options.mlpLearningRate.rate(atStep: t)
    let rho = options.keepRatios(atStep: t)
    guard !valid.isEmpty else {
        return PolicyGradientStepReport(skipped: true, validSamples: 0, meanLoss: .nan, baseline: state.baseline.value ?? .nan,
                                        attentionLearningRate: etaA, mlpLearningRate: etaM, keepRatio: rho.mlp,
                                        attentionKeepRatio: rho.attention, attentionGradientNorm: 0, mlpGradientNorm: 0, projections: [])
    }
    let validLosses = valid.map { losses[$0] }
    let meanLoss = validLosses.reduce(0, +) / Double(validLosses.count)
    let delta = state.baseline.update(meanLoss: meanLoss)
    let lambda = options.penalty.weight(atStep: t)

    var norms: [StructureKind: Double] = [:]
    for kind in StructureKind.allCases {
        let eta = kind == .attention ? etaA : etaM
        var vectors = state.keepProbabilities[kind]
        var squared = 0.0
        for l in vectors.indices {
            let s = vectors[l]
            var g = options.estimator.gradient(keepProbability: s, masks: valid.map { samples[$0][kind][l] },
                                               losses: validLosses, baseline: delta, drawnSamples: samples.count,
                                               withinStepBaseline: options.baselineKind == .stepMean)
            if let lambda {
                for i in g.indices { g[i] += EntropyPenalty.gradient(keepProbability: s[i], weight: lambda) }
            }
            for i in g.indices {
                squared += g[i] * g[i]
                vectors[l][i] = s[i] - eta * g[i]
            }
        }
        state.keepProbabilities[kind] = vectors
        norms[kind] = squared.squareRoot()
    }
    let projections = state.keepProbabilities.projectOntoBudget(keepRatios: rho, scope: options.budgetScope, config: config,
                                                                        granularity: granularity)
    state.step += 1
    return PolicyGradientStepReport(skipped: false, validSamples: valid.count, meanLoss: meanLoss, baseline: delta,
                                    attentionLearningRate: etaA, mlpLearningRate: etaM, keepRatio: rho.mlp,
                                    attentionKeepRatio: rho.attention, attentionGradientNorm: norms[.attention] ?? 0, mlpGradientNorm: norms[.mlp] ?? 0,
                                    projections: projections)
}
