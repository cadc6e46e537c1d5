import ArgumentParser
import Pruning
import Transformer

extension GradientEstimator: ExpressibleByArgument {}
extension InitMethod: ExpressibleByArgument {}
extension InitMapping: ExpressibleByArgument {}
extension RunPolicy: ExpressibleByArgument {}
/// `--scope global|per-layer|joint` (`prune`; `score` takes the first two). Plans record `per_layer`, which is read too.
extension BudgetScope: ExpressibleByArgument {
    /// The command line's spelling.
    var argument: String { self == .perLayer ? "per-layer" : rawValue }

    public init?(argument: String) {
        switch argument.lowercased() {
        case "global": self = .global
        case "per-layer", "per_layer", "layer": self = .perLayer
        case "joint": self = .joint
        default: return nil
        }
    }
    public static var allValueStrings: [String] { allCases.map(\.argument) }
}
/// `--baseline ema|window|none|step`: the command line's short names of the kinds.
extension MovingAverageBaseline.Kind: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "ema": self = .exponential
        case "window": self = .slidingWindow
        case "none": self = .none
        case "step": self = .stepMean
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["ema", "window", "none", "step"] }
}

/// `prune`'s model: required for a new run, the recorded path by default on `--resume`.
struct PruneModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: llama2.c .bin, .gguf, or a Hugging Face directory (with --resume: defaults to the recorded path).")
    var model: String?
}

/// `prune`'s data: the training batches, the held-out windows and where the data lives.
struct PruneDataOptions: ParsableArguments {
    @Option(help: "Windows per mini-batch.") var batch = 8
    @Option(help: "Tokens per window.") var seq = 128
    @Option(help: "Held-out windows (C4 validation subset).") var evalWindows = 32
    @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
}

/// `prune`'s start: where the keep probabilities begin (`RunInitialization`).
struct PruneInitOptions: ParsableArguments {
    @Option(help: "Initial scores: random, uniform, wanda-sp, magnitude, flap (channels, heads), block-influence, ppl-drop (layers). Default: wanda-sp; block-influence for layers; random for sublayers.")
    var `init`: InitMethod?
    @Option(help: "Start from a previous run's scores.json / initial-scores.json instead of --init.") var initScores: String?
    @Option(name: .customLong("mapping"), help: "Metric-to-score mapping: plan (the default: centred on each layer's metric plan, so the step-0 hard mask is the per-layer metric plan; see --init-temperature), sigmap (the paper's, with --paper), norm, hybrid, const. With --init-scores: re-map the saved scores (their order within each layer) instead of using them as they are.")
    var mappingOption: InitMapping?
    @Option(help: "Temperature of the plan mapping, as a fraction of a layer's structures (about ±2.2 τ of each layer is sampled with probability between 0.1 and 0.9).") var initTemperature: Double = 0.03
    @Option(help: "c of the const mapping (kept: c, others: 1 - c).") var initConstant: Double = 0.9
    @Option(help: "Mean of the initial scores / keep ratio of the init mask (default: the start keep ratio).") var initRate: Double?
    @Option(help: "Calibration windows for a metric init (spec: 128).") var initWindows = 128
    @Option(help: "Tokens per calibration window for a metric init (spec: 1024).") var initSeq = 1024
    @Option(help: "Seed of the metric init's calibration sample.") var initCalibrationSeed: UInt64 = 42
    @Option(help: "Wanda-sp statistics: init-mask (official order) or dense.") var wandaVariant: WandaSP.Variant = .initMask
}

/// `prune`'s optimiser: the budget, the policy and its updates.
struct PruneOptimiserOptions: ParsableArguments {
    @Option(help: "Pruning rate in (0, 1) of both kinds (keep ratio = 1 - rate); with equal rates, the share of attention+MLP parameters removed.") var rate: Double = 0.3
    @Option(help: "Pruning rate of the attention structures in [0, 1) (default --rate; 0 keeps attention whole and out of the sampling).") var attentionRate: Double?
    @Option(help: "Pruning rate of the MLP structures in [0, 1) (default --rate).") var mlpRate: Double?
    @Option(help: ArgumentHelp("Granularity: channels (KV groups + MLP channels), heads (KV groups only; --rate is their rate), query-heads (query heads + MLP channels; a KV group goes with its last query head), sublayers (whole attention / MLP sublayers), layers (whole decoder layers).", valueName: "channels|heads|query-heads|sublayers|layers"))
    var granularity: PruningGranularity = .channels
    @Option(help: "Budget scope: global, per-layer, joint (parameter-weighted, attention and MLP together).") var scope: BudgetScope = .global
    @Option(help: "Every plan keeps a multiple of this many MLP channels per layer, the budget still met (quantized exports store 32-wide blocks; layers whose dense width is not a multiple are left as they are; 1: off).") var channelMultiple = 32
    @Option(help: ArgumentHelp("Policy: structures (the paper's: one Bernoulli keep probability per KV group and channel) or allocation (PolicyPrune's: a Gaussian policy over each layer's kept fraction per kind, structures within a layer in the init's order, antithetic pairs on one batch, Adam; RESULTS.md says when it wins).", valueName: "structures|allocation"))
    var policy: RunPolicy = .structures
    @Option(help: "Masks sampled per step (K >= 2; even with --policy allocation, which samples antithetic pairs).") var k = 2
    @Option(help: "Arithmetic of the sampled forwards of every step: f32, or int8 (u8 x s8 GEMMs through oneDNN; held-out evaluations and plans stay f32).") var compute: ComputePrecision = .f32
    @Option(name: .customLong("lr"), help: "Learning rate of all scores (default 0.5; the paper's 2e-3 with --paper or a non-plan mapping).") var lrOption: Double?
    @Option(help: "Learning rate of the KV-group scores (default --lr).") var attnLr: Double?
    @Option(help: "Learning rate of the channel scores (default --lr).") var mlpLr: Double?
    @Option(help: "Linear warm-up steps before the cosine decay.") var warmup = 0
    @Option(help: "Estimator: code ((m-s)/sqrt(s(1-s)), summed / (K-1)) or paper ((m-s)/(s(1-s)), mean).") var estimator: GradientEstimator = .code
    @Option(name: .customLong("baseline"), help: "Baseline: ema (weight 1/T, the paper's), window (mean of the last T steps), step (mean of this step's K losses on this batch: leave-one-out; the default), none.")
    var baselineOption: MovingAverageBaseline.Kind?
    @Option(help: "Baseline window T.") var window = 5
    @Option(help: "Entropy penalty weight at step 0 (negative: off).") var penaltyInit: Double = -1
    @Option(help: "Entropy penalty weight at the last step.") var penaltyFinal: Double = 0
    @Option(help: "Progressive keep ratio: start at this keep ratio and reach 1 - rate by --progressive-end (cubic).") var progressiveStart: Double?
    @Option(help: "Step at which the progressive schedule reaches the target (default: --steps).") var progressiveEnd: Int?
    @Option(help: "Allocation policy: σ of each layer's kept-fraction perturbation (at least one structure of the layer).") var allocationSigma = 0.02
    @Option(help: "Allocation policy: Adam step size (kept fraction per step), cosine over the steps.") var allocationLr = 0.005

    /// Pruning rates per kind (MLP: --mlp-rate or --rate; attention: --attention-rate or --rate).
    var rates: (attention: Double, mlp: Double) { (attentionRate ?? rate, mlpRate ?? rate) }
}

/// `prune`'s run control: the folder, length, seed, checkpoints and held-out evaluations.
struct PruneRunOptions: ParsableArguments {
    @Option(name: .customLong("run"), help: "New run directory.") var runDirectory: String?
    @Option(help: "Continue the run in this directory.") var resume: String?
    @Option(help: "Iterations (mini-batches); the learning-rate schedule spans them.") var steps = 1000
    @Option(help: ArgumentHelp("Derive --steps from a wall-clock budget (e.g. 45m, 1h, 900s): a one-step probe times a step and a held-out evaluation first.", valueName: "duration"),
            transform: TimeBudget.init(parsing:))
    var timeBudget: TimeBudget?
    @Option(help: "Seed of mask sampling, data order and the random init.") var seed: UInt64 = 42
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery = 100
    @Option(help: "Held-out evaluation every N iterations (0: start and end only).") var evalEvery = 100
    @Option(help: "Masks sampled at each held-out evaluation to log the sampled-mask loss beside the hard mask's (0: off).") var heldoutSamples = 2
    @Flag(help: "Print a progress line for every step (default: at most one per second).") var verbose = false
}

/// `--time-budget 45m` (`prune`, `plan`): a wall-clock duration, read once by the argument parser.
struct TimeBudget {
    /// As given on the command line (printed back).
    let text: String
    /// The duration, > 0.
    let seconds: Double

    /// Reads `45m`, `1h30m`, `900s` or `900` (seconds); the error says what is expected.
    init(parsing text: String) throws {
        guard let seconds = Self.seconds(text) else {
            throw ValidationError("cannot read it as a duration (e.g. 45m, 1h, 1h30m, 900s)")
        }
        self.text = text
        self.seconds = seconds
    }

    /// Seconds in a duration such as `45m`, `1h30m`, `900s` or `900` (seconds); nil when it is not one or not > 0.
    static func seconds(_ text: String) -> Double? {
        var total = 0.0, number = ""
        var sawUnit = false
        for c in text.lowercased() where c != " " {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let v = Double(number), let unit = ["h": 3600.0, "m": 60, "s": 1][String(c)] else { return nil }
            total += v * unit
            number = ""
            sawUnit = true
        }
        if !number.isEmpty {
            guard let v = Double(number) else { return nil }
            total += v
        } else if !sawUnit { return nil }
        guard total > 0, total.isFinite else { return nil }
        return total
    }
}
