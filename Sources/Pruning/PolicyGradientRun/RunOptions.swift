import Essentials
import Foundation
import Transformer

/// Everything that defines a policy-gradient run (design.md decision 6: `options.json`): with these, the same model
/// file, the same data files and the same thread count, a run is reproduced bit for bit.
public struct PolicyGradientRunOptions: Codable, Sendable, Equatable {
    /// The format version this tool writes and reads.
    public static let currentFormatVersion = 1

    /// Where the model came from and what it is.
    public struct ModelRecord: Codable, Sendable, Equatable {
        /// Path as given on the command line.
        public var path: String
        /// sha256 (hex) of the model file (see `ModelFingerprint`).
        public var sha256: String
        /// Decoder layers.
        public var layers: Int
        /// Parameters of the dense model (all of them).
        public var parameters: Int

        /// A model record.
        public init(path: String, sha256: String, layers: Int, parameters: Int) {
            self.path = path
            self.sha256 = sha256
            self.layers = layers
            self.parameters = parameters
        }
    }

    /// How the initial keep probabilities were made (spec §3).
    public struct Initialization: Codable, Sendable, Equatable {
        /// `random`, `uniform`, a metric name (`wanda-sp`, `magnitude`, `flap`, ...) or `scores-file`.
        public var method: String
        /// `sigmap`, `norm`, `hybrid` or `const` (unused by `uniform` and `scores-file`).
        public var mapping: String
        /// c of the `const` mapping.
        public var constant: Double
        /// μ: mean of the mapped scores and keep ratio of the per-layer init mask (default: the start keep ratio).
        public var keepRatio: Double
        /// The scores file (for `scores-file`), with its sha256.
        public var scoresFile: String?
        /// sha256 of the scores file.
        public var scoresFileSHA256: String?
        /// Free-form details of the metric (calibration recipe, variant, ...).
        public var details: [String: String]

        /// An initialisation record.
        public init(method: String, mapping: String, constant: Double, keepRatio: Double, scoresFile: String? = nil,
                    scoresFileSHA256: String? = nil, details: [String: String] = [:]) {
            self.method = method
            self.mapping = mapping
            self.constant = constant
            self.keepRatio = keepRatio
            self.scoresFile = scoresFile
            self.scoresFileSHA256 = scoresFileSHA256
            self.details = details
        }
    }

    /// A data set used by the run: file, how it was cut, and the sha256 of the token ids.
    public struct DataRecord: Codable, Sendable, Equatable {
        /// File (relative to the data root when under it).
        public var file: String
        /// How the blocks were made.
        public var recipe: String
        /// Number of blocks (windows).
        public var blocks: Int
        /// sha256 of the ids (decimal, comma-joined, block order).
        public var idsSHA256: String

        /// A data record.
        public init(file: String, recipe: String, blocks: Int, idsSHA256: String) {
            self.file = file
            self.recipe = recipe
            self.blocks = blocks
            self.idsSHA256 = idsSHA256
        }
    }

    /// Format version of `options.json`.
    public var formatVersion: Int
    /// Version of the tool that started the run.
    public var toolVersion: String
    /// The model.
    public var model: ModelRecord
    /// Seed of mask sampling, data order and random initialisation.
    public var seed: UInt64
    /// Target pruning rate (1 − ρ_target) of the MLP structures, and of the attention structures unless
    /// `attentionRate` is set.
    public var rate: Double
    /// Target pruning rate of the attention structures when it differs from `rate` (`--attention-rate`; 0 keeps
    /// attention whole and out of the sampling). nil: `rate`.
    public var attentionRate: Double?
    /// Masks sampled at each held-out evaluation to measure the sampled-mask loss beside the hard mask's (nil: 2;
    /// 0: not measured). They come from a generator of their own, so they never change the training stream.
    public var heldoutSampledMasks: Int?
    /// Arithmetic of the K sampled forwards of every step (nil: f32). Held-out evaluations and every plan stay f32.
    public var compute: ComputePrecision?
    /// Structures scored: `channels` (KV groups + MLP channels), `heads` (KV groups only), `sublayers` (whole
    /// attention and MLP sublayers) or `layers` (whole decoder layers); see `PruningGranularity.scoreCount`.
    public var granularity: String

    /// Target keep ratios per kind.
    public var targetKeepRatios: KeepRatios { KeepRatios(attention: 1 - (attentionRate ?? rate), mlp: 1 - rate) }

    /// `granularity` as the enum (channels when the string is unknown; `validate` rejects unknown strings).
    public var scoreGranularity: PruningGranularity { PruningGranularity(rawValue: granularity) ?? .channels }
    /// Iterations (mini-batches); the schedules span this many valid steps.
    public var steps: Int
    /// Windows per mini-batch (B).
    public var batchSize: Int
    /// Tokens per window (T).
    public var sequenceLength: Int
    /// The optimizer (estimator, K, baseline, learning rates, penalty, keep-ratio schedule, budget scope).
    public var optimizer: PolicyGradientOptions
    /// The initial keep probabilities.
    public var initialization: Initialization
    /// Write a checkpoint after every this many iterations (and at the end).
    public var checkpointEvery: Int
    /// Evaluate the hard mask on the held-out windows every this many iterations, from iteration 0 (0 = only at the
    /// start and the end).
    public var evalEvery: Int
    /// Calibration stream (C4 train subset).
    public var calibration: DataRecord
    /// Held-out monitoring windows (C4 validation subset; never WikiText-2 test).
    public var heldout: DataRecord
    /// Worker threads of PolicyPrune's kernels and of OpenBLAS; bit-identity needs the same counts.
    public var threads: Int
    /// OpenBLAS threads.
    public var blasThreads: Int
    /// The allocation policy (`--policy allocation`: a Gaussian policy over each layer's kept fraction, the order
    /// within a layer fixed by the initial scores); nil: the paper's Bernoulli policy over every structure.
    public var allocation: AllocationPolicyOptions?

    /// Every plan (and every held-out hard mask) keeps a multiple of this many MLP channels per layer
    /// (`StructureMask.aligningMLPChannels`); nil or 1: off.
    public var channelMultiple: Int?

    /// The policy's name: `structures` (the paper's) or `allocation`.
    public var policyName: String { policy.rawValue }
    /// The policy the run learns.
    public var policy: RunPolicy { allocation == nil ? .structures : .allocation }

    /// Options of a new run (current format version).
    public init(toolVersion: String, model: ModelRecord, seed: UInt64, rate: Double, granularity: String = "channels",
                steps: Int, batchSize: Int, sequenceLength: Int, optimizer: PolicyGradientOptions,
                initialization: Initialization, checkpointEvery: Int, evalEvery: Int, calibration: DataRecord,
                heldout: DataRecord, threads: Int, blasThreads: Int, attentionRate: Double? = nil,
                heldoutSampledMasks: Int? = nil, compute: ComputePrecision? = nil, allocation: AllocationPolicyOptions? = nil,
                channelMultiple: Int? = nil) {
        formatVersion = Self.currentFormatVersion
        self.channelMultiple = channelMultiple
        self.allocation = allocation
        self.compute = compute
        self.attentionRate = attentionRate
        self.heldoutSampledMasks = heldoutSampledMasks
        self.toolVersion = toolVersion
        self.model = model
        self.seed = seed
        self.rate = rate
        self.granularity = granularity
        self.steps = steps
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.optimizer = optimizer
        self.initialization = initialization
        self.checkpointEvery = checkpointEvery
        self.evalEvery = evalEvery
        self.calibration = calibration
        self.heldout = heldout
        self.threads = threads
        self.blasThreads = blasThreads
    }

    /// The largest K (masks per step) a run accepts; each is a forward pass per step, and real runs use a handful.
    public static let maximumSamplesPerStep = 1024

    /// Rejects values outside their domain, naming the option.
    public func validate() throws {
        func fail(_ key: String, _ value: Any, _ reason: String) -> PruningError {
            PruningError.invalidValue(key: key, value: "\(value)", reason: reason)
        }
        guard formatVersion == Self.currentFormatVersion else {
            throw fail("format_version", formatVersion, "this tool reads version \(Self.currentFormatVersion)")
        }
        guard rate >= 0, rate < 1 else { throw fail("rate", rate, "the pruning rate must be in [0, 1)") }
        if let a = attentionRate, !(a >= 0 && a < 1) { throw fail("attention_rate", a, "the pruning rate must be in [0, 1)") }
        guard rate > 0 || (attentionRate ?? 0) > 0 else {
            throw fail("rate", rate, "nothing to prune: the MLP and the attention rate are both 0")
        }
        if let n = heldoutSampledMasks, n < 0 { throw fail("heldout_sampled_masks", n, "must be ≥ 0") }
        guard let g = PruningGranularity(rawValue: granularity) else {
            throw fail("granularity", granularity, "must be one of \(PruningGranularity.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard g.allowsPerLayerScope || optimizer.budgetScope != .perLayer else {
            throw fail("scope", optimizer.budgetScope.rawValue, "granularity \(granularity) has one score per layer and kind; use global or joint")
        }
        guard steps >= 1 else { throw fail("steps", steps, "must be at least 1") }
        guard batchSize >= 1 else { throw fail("batch", batchSize, "must be at least 1") }
        guard sequenceLength >= 2 else { throw fail("seq", sequenceLength, "must be at least 2 (nothing to predict)") }
        guard optimizer.samplesPerStep >= 2 else {
            throw fail("k", optimizer.samplesPerStep, "at least 2 masks per step are needed (the estimator divides by K − 1)")
        }
        // K forward passes per step: a hostile options.json with k = 2^31-1 made a resumed run spin for days.
        guard optimizer.samplesPerStep <= Self.maximumSamplesPerStep else {
            throw fail("k", optimizer.samplesPerStep, "at most \(Self.maximumSamplesPerStep) masks per step")
        }
        guard checkpointEvery >= 1 else { throw fail("checkpoint-every", checkpointEvery, "must be at least 1") }
        guard evalEvery >= 0 else { throw fail("eval-every", evalEvery, "must be ≥ 0") }
        guard initialization.keepRatio > 0, initialization.keepRatio <= 1 else {
            throw fail("init-rate", initialization.keepRatio, "the init keep ratio must be in (0, 1]")
        }
        guard abs(optimizer.keepRatio.target - (1 - rate)) < 1e-12 else {
            throw fail("keep_ratio.target", optimizer.keepRatio.target, "must equal 1 − rate")
        }
        guard abs(optimizer.targetKeepRatios.attention - targetKeepRatios.attention) < 1e-12 else {
            throw fail("attention_keep_ratio.target", optimizer.targetKeepRatios.attention, "must equal 1 − attention rate")
        }
        try optimizer.validate()
        if let m = channelMultiple, !(m >= 1 && m <= 1 << 20) { throw fail("channel_multiple", m, "must be in 1...\(1 << 20)") }
        if let allocation {
            try allocation.validate(samplesPerStep: optimizer.samplesPerStep)
            guard g == .channels else { throw fail("policy", "allocation", "the allocation policy needs --granularity channels, not \(granularity)") }
            guard optimizer.budgetScope == .global else {
                throw fail("policy", "allocation", "the allocation policy keeps a global budget per kind; --scope \(optimizer.budgetScope.rawValue) does not apply")
            }
        }
    }

    /// JSON as written to `options.json` (sorted keys, pretty).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The options as a plan's free-form record.
    public var planRecord: [String: PlanValue] {
        let o = optimizer
        return [
            "steps": .integer(steps), "batch_size": .integer(batchSize), "sequence_length": .integer(sequenceLength),
            "samples_per_step": .integer(o.samplesPerStep), "estimator": .string(o.estimator.rawValue),
            "baseline": .string(o.baselineKind.rawValue), "baseline_window": .integer(o.baselineWindow),
            "attention_learning_rate": .number(o.attentionLearningRate.initial),
            "mlp_learning_rate": .number(o.mlpLearningRate.initial),
            "warmup_steps": .integer(o.attentionLearningRate.warmupSteps),
            "penalty_initial": .number(o.penalty.initial), "penalty_final": .number(o.penalty.final),
            "scope": .string(o.budgetScope.rawValue), "keep_ratio_start": .number(o.keepRatio.start),
            "keep_ratio_target": .number(o.keepRatio.target), "granularity": .string(granularity),
            "attention_keep_ratio_target": .number(o.targetKeepRatios.attention), "mlp_keep_ratio_target": .number(o.targetKeepRatios.mlp),
            "init": .string(initialization.method), "init_mapping": .string(initialization.mapping),
            "init_keep_ratio": .number(initialization.keepRatio),
            "calibration": .string(calibration.recipe), "threads": .integer(threads),
            "compute": .string((compute ?? .f32).rawValue), "policy": .string(policyName),
            "channel_multiple": .integer(channelMultiple ?? 1),
        ].merging(allocation.map { a in
            ["allocation_sigma": .number(a.sigma), "allocation_learning_rate": .number(a.learningRate.initial)]
        } ?? [:]) { a, _ in a }
    }
}

/// The policy a run learns (`prune --policy`): the paper's Bernoulli keep probability per KV group and channel, or
/// PolicyPrune's Gaussian policy over each layer's kept fraction per kind (`LayerAllocation`).
public enum RunPolicy: String, CaseIterable, Sendable {
    case structures, allocation
}
