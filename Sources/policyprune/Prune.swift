import ArgumentParser
import Corpora
import Foundation
import Kernels
import Pruning
import Tokenization
import Transformer

extension GradientEstimator: ExpressibleByArgument {}
extension BudgetScope: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument.lowercased() {
        case "global": self = .global
        case "per-layer", "per_layer", "layer": self = .perLayer
        case "joint": self = .joint
        default: return nil
        }
    }
    public static var allValueStrings: [String] { ["global", "per-layer", "joint"] }
}

/// `policyprune prune`: the paper's method (spec §1). Learns Bernoulli keep probabilities for every KV group and
/// MLP channel with forward passes only, in a resumable run directory.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Policy-gradient structural pruning (\"Bypass Back-propagation\"), resumable and reproducible.",
        discussion: """
            A run directory holds options.json, checkpoint/ (atomic, latest two), log.jsonl (one line per step and
            per held-out evaluation), initial-scores.json and initial-plan.json (the starting point), and at the end
            scores.json, plan.json and report.svg. Each step costs --k masked forward passes of --batch x --seq
            tokens. `policyprune prune --resume DIR` continues a killed run; with the same thread count it ends
            bit-identical to an uninterrupted run. `mpirun -np N policyprune prune ...` shares each step's K forwards
            among N ranks (Open MPI, loaded at run time); the result is byte-identical to one rank, rank 0 writes the
            run folder, and --resume works with any N (README).
            """)

    enum InitMethod: String, ExpressibleByArgument, CaseIterable {
        case random, uniform
        case wandaSP = "wanda-sp"
        case magnitude, flap
        case blockInfluence = "block-influence"
        case perplexityDrop = "ppl-drop"

        /// The metric behind a metric init.
        var metric: PruningMetric? {
            switch self {
            case .random, .uniform: return nil
            case .wandaSP: return .wandaSP
            case .magnitude: return .magnitude
            case .flap: return .flap
            case .blockInfluence: return .blockInfluence
            case .perplexityDrop: return .perplexityDrop
            }
        }

        /// Whether this init can start a run of `granularity`.
        func supports(_ granularity: PruningGranularity) -> Bool {
            guard let metric else { return true }
            switch granularity {
            case .channels, .heads, .layers, .queryHeads: return metric.granularities.contains(granularity)
            case .sublayers: return false
            }
        }

        /// The default per granularity: wanda-sp (the scripts' init) for channels and heads, ShortGPT block
        /// influence for layers, random (the paper's random init) for sublayers, which no metric scores.
        static func defaultInit(for granularity: PruningGranularity) -> InitMethod {
            switch granularity {
            case .channels, .heads, .queryHeads: return .wandaSP
            case .layers: return .blockInfluence
            case .sublayers: return .random
            }
        }
    }

    enum Mapping: String, ExpressibleByArgument, CaseIterable {
        case sigmap, norm, hybrid, const, plan
    }

    enum Baseline: String, ExpressibleByArgument, CaseIterable {
        case ema, window, none, step
        var kind: MovingAverageBaseline.Kind {
            switch self {
            case .ema: return .exponential
            case .window: return .slidingWindow
            case .none: return .none
            case .step: return .stepMean
            }
        }
    }

    @Option(name: .long, help: "Model: llama2.c .bin, .gguf, or a Hugging Face directory (with --resume: defaults to the recorded path).")
    var model: String?
    @Option(name: .customLong("run"), help: "New run directory.") var runDirectory: String?
    @Option(help: "Continue the run in this directory.") var resume: String?

    @Option(help: "Pruning rate in (0, 1) of both kinds (keep ratio = 1 - rate); with equal rates, the share of attention+MLP parameters removed.") var rate: Double = 0.3
    @Option(help: "Pruning rate of the attention structures in [0, 1) (default --rate; 0 keeps attention whole and out of the sampling).") var attentionRate: Double?
    @Option(help: "Pruning rate of the MLP structures in [0, 1) (default --rate).") var mlpRate: Double?
    @Option(help: ArgumentHelp("Granularity: channels (KV groups + MLP channels), heads (KV groups only; --rate is their rate), query-heads (query heads + MLP channels; a KV group goes with its last query head), sublayers (whole attention / MLP sublayers), layers (whole decoder layers).", valueName: "channels|heads|query-heads|sublayers|layers"))
    var granularity: PruningGranularity = .channels
    @Option(help: "Initial scores: random, uniform, wanda-sp, magnitude, flap (channels, heads), block-influence, ppl-drop (layers). Default: wanda-sp; block-influence for layers; random for sublayers.")
    var `init`: InitMethod?
    @Option(help: "Start from a previous run's scores.json / initial-scores.json instead of --init.") var initScores: String?
    @Option(name: .customLong("mapping"), help: "Metric-to-score mapping: plan (the default: centred on each layer's metric plan, so the step-0 hard mask is the per-layer metric plan; see --init-temperature), sigmap (the paper's, with --paper), norm, hybrid, const. With --init-scores: re-map the saved scores (their order within each layer) instead of using them as they are.") var mappingOption: Mapping?
    /// The mapping of a metric init.
    var mapping: Mapping { mappingOption ?? (paper ? .sigmap : .plan) }
    @Flag(help: "The paper's settings (official scripts): --mapping sigmap --baseline ema --lr 2e-3, instead of PolicyPrune's defaults (--mapping plan --baseline step --lr 0.5; RESULTS.md says why).")
    var paper = false
    @Option(help: "Temperature of the plan mapping, as a fraction of a layer's structures (about ±2.2 τ of each layer is sampled with probability between 0.1 and 0.9).") var initTemperature: Double = 0.03
    @Option(help: "c of the const mapping (kept: c, others: 1 - c).") var initConstant: Double = 0.9
    @Option(help: "Mean of the initial scores / keep ratio of the init mask (default: the start keep ratio).") var initRate: Double?
    @Option(help: "Calibration windows for a metric init (spec: 128).") var initWindows = 128
    @Option(help: "Tokens per calibration window for a metric init (spec: 1024).") var initSeq = 1024
    @Option(help: "Seed of the metric init's calibration sample.") var initCalibrationSeed: UInt64 = 42
    @Option(help: "Wanda-sp statistics: init-mask (official order) or dense.") var wandaVariant = "init-mask"

    @Option(help: "Iterations (mini-batches); the learning-rate schedule spans them.") var steps = 1000
    @Option(help: ArgumentHelp("Derive --steps from a wall-clock budget (e.g. 45m, 1h, 900s): a one-step probe times a step and a held-out evaluation first.", valueName: "duration"))
    var timeBudget: String?
    @Option(help: "Arithmetic of the sampled forwards of every step: f32, or int8 (u8 x s8 GEMMs through oneDNN; held-out evaluations and plans stay f32).") var compute: ComputePrecision = .f32
    @Option(help: "Masks sampled at each held-out evaluation to log the sampled-mask loss beside the hard mask's (0: off).") var heldoutSamples = 2
    @Option(help: "Windows per mini-batch.") var batch = 8
    @Option(help: "Tokens per window.") var seq = 128
    @Option(help: "Masks sampled per step (K >= 2; even with --policy allocation, which samples antithetic pairs).") var k = 2
    @Option(help: ArgumentHelp("Policy: structures (the paper's: one Bernoulli keep probability per KV group and channel) or allocation (PolicyPrune's: a Gaussian policy over each layer's kept fraction per kind, structures within a layer in the init's order, antithetic pairs on one batch, Adam; RESULTS.md says when it wins).", valueName: "structures|allocation")) var policy = "structures"
    @Option(help: "Every plan keeps a multiple of this many MLP channels per layer, the budget still met (quantized exports store 32-wide blocks; layers whose dense width is not a multiple are left as they are; 1: off).") var channelMultiple = 32
    @Option(help: "Allocation policy: σ of each layer's kept-fraction perturbation (at least one structure of the layer).") var allocationSigma = 0.02
    @Option(help: "Allocation policy: Adam step size (kept fraction per step), cosine over the steps.") var allocationLr = 0.005
    @Option(name: .customLong("lr"), help: "Learning rate of all scores (default 0.5; the paper's 2e-3 with --paper or a non-plan mapping).") var lrOption: Double?
    /// The learning rate: 0.5 for the plan mapping (scores start near 0 and 1 and need large moves), else 2e-3.
    var lr: Double { lrOption ?? (mapping == .plan ? 0.5 : 2e-3) }
    @Option(help: "Learning rate of the KV-group scores (default --lr).") var attnLr: Double?
    @Option(help: "Learning rate of the channel scores (default --lr).") var mlpLr: Double?
    @Option(help: "Linear warm-up steps before the cosine decay.") var warmup = 0
    @Option(help: "Estimator: code ((m-s)/sqrt(s(1-s)), summed / (K-1)) or paper ((m-s)/(s(1-s)), mean).") var estimator: GradientEstimator = .code
    @Option(name: .customLong("baseline"), help: "Baseline: ema (weight 1/T, the paper's), window (mean of the last T steps), step (mean of this step's K losses on this batch: leave-one-out; the default), none.") var baselineOption: Baseline?
    /// The baseline: step unless --paper.
    var baseline: Baseline { baselineOption ?? (paper ? .ema : .step) }
    @Option(help: "Baseline window T.") var window = 5
    @Option(help: "Budget scope: global, per-layer, joint (parameter-weighted, attention and MLP together).") var scope: BudgetScope = .global
    @Option(help: "Entropy penalty weight at step 0 (negative: off).") var penaltyInit: Double = -1
    @Option(help: "Entropy penalty weight at the last step.") var penaltyFinal: Double = 0
    @Option(help: "Progressive keep ratio: start at this keep ratio and reach 1 - rate by --progressive-end (cubic).") var progressiveStart: Double?
    @Option(help: "Step at which the progressive schedule reaches the target (default: --steps).") var progressiveEnd: Int?

    @Option(help: "Seed of mask sampling, data order and the random init.") var seed: UInt64 = 42
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery = 100
    @Option(help: "Held-out evaluation every N iterations (0: start and end only).") var evalEvery = 100
    @Option(help: "Held-out windows (C4 validation subset).") var evalWindows = 32
    @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
    @Flag(help: "Print a progress line for every step (default: at most one per second).") var verbose = false

    func validate() throws {
        if (runDirectory == nil) == (resume == nil) { throw ValidationError("give exactly one of --run DIR (new run) or --resume DIR") }
        if resume != nil { return }
        guard model != nil else { throw ValidationError("--model is required for a new run") }
        guard rate > 0, rate < 1 else { throw ValidationError("--rate must be in (0, 1), got \(rate)") }
        for (name, v) in [("--attention-rate", attentionRate), ("--mlp-rate", mlpRate)] {
            if let v, !(v >= 0 && v < 1) { throw ValidationError("\(name) must be in [0, 1), got \(v)") }
        }
        guard rates.attention > 0 || rates.mlp > 0 else { throw ValidationError("nothing to prune: --attention-rate and --mlp-rate are both 0") }
        if scope == .perLayer || scope == .global, granularity == .layers, attentionRate != nil || mlpRate != nil {
            throw ValidationError("--granularity layers has one rate (of whole layers); use --rate")
        }
        if let timeBudget, (try? Self.seconds(timeBudget)) == nil {
            throw ValidationError("--time-budget: cannot read '\(timeBudget)' as a duration (e.g. 45m, 1h, 1h30m, 900s)")
        }
        guard heldoutSamples >= 0 else { throw ValidationError("--heldout-samples must be >= 0, got \(heldoutSamples)") }
        guard initTemperature > 0, initTemperature.isFinite else { throw ValidationError("--init-temperature must be > 0, got \(initTemperature)") }
        let initMethod = self.`init` ?? InitMethod.defaultInit(for: granularity)
        guard initScores != nil || initMethod.supports(granularity) else {
            let usable = InitMethod.allCases.filter { $0.supports(granularity) }.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--init \(initMethod.rawValue) does not score --granularity \(granularity.rawValue); use one of: \(usable)")
        }
        guard granularity.allowsPerLayerScope || scope != .perLayer else {
            throw ValidationError("--scope per-layer: --granularity \(granularity.rawValue) has one score per layer and kind; use global or joint")
        }
        guard k >= 2 else { throw ValidationError("--k must be at least 2 (the estimator divides by K - 1), got \(k)") }
        guard channelMultiple >= 1 else { throw ValidationError("--channel-multiple must be at least 1, got \(channelMultiple)") }
        guard ["structures", "allocation"].contains(policy) else { throw ValidationError("--policy must be structures or allocation, got \(policy)") }
        if policy == "allocation" {
            guard !paper else { throw ValidationError("--paper runs the paper's per-structure policy; drop --policy allocation or --paper") }
            guard k % 2 == 0 else { throw ValidationError("--policy allocation samples antithetic pairs: --k must be even, got \(k)") }
            guard allocationSigma > 0, allocationSigma < 1 else { throw ValidationError("--allocation-sigma must be in (0, 1), got \(allocationSigma)") }
            guard allocationLr >= 0, allocationLr.isFinite else { throw ValidationError("--allocation-lr must be a finite value >= 0, got \(allocationLr)") }
            guard granularity == .channels else { throw ValidationError("--policy allocation needs --granularity channels") }
            guard scope == .global else { throw ValidationError("--policy allocation keeps a global budget per kind: --scope \(scope.rawValue) does not apply") }
        }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard seq >= 2 else { throw ValidationError("--seq must be at least 2, got \(seq)") }
        for (name, v) in [("--lr", lr), ("--attn-lr", attnLr ?? lr), ("--mlp-lr", mlpLr ?? lr)] {
            guard v >= 0, v.isFinite else { throw ValidationError("\(name) must be a finite value >= 0, got \(v)") }
        }
        guard warmup >= 0, warmup <= steps else { throw ValidationError("--warmup must be in 0...\(steps), got \(warmup)") }
        guard window >= 1 else { throw ValidationError("--window must be at least 1, got \(window)") }
        if let p = progressiveStart, !(p > 0 && p <= 1) { throw ValidationError("--progressive-start is a keep ratio in (0, 1], got \(p)") }
        if let e = progressiveEnd, e < 0 || e > steps { throw ValidationError("--progressive-end must be in 0...\(steps), got \(e)") }
        if let r = initRate, !(r > 0 && r <= 1) { throw ValidationError("--init-rate is a keep ratio in (0, 1], got \(r)") }
        guard initConstant >= 0, initConstant <= 1 else { throw ValidationError("--init-constant must be in [0, 1], got \(initConstant)") }
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        guard evalEvery >= 0 else { throw ValidationError("--eval-every must be >= 0, got \(evalEvery)") }
        guard evalWindows >= 1 else { throw ValidationError("--eval-windows must be at least 1, got \(evalWindows)") }
        guard initWindows >= 1, initSeq >= 2 else { throw ValidationError("--init-windows must be >= 1 and --init-seq >= 2") }
        guard ["init-mask", "dense"].contains(wandaVariant) else { throw ValidationError("--wanda-variant must be init-mask or dense, got \(wandaVariant)") }
    }

    /// Pruning rates per kind (MLP: --mlp-rate or --rate; attention: --attention-rate or --rate).
    var rates: (attention: Double, mlp: Double) { (attentionRate ?? rate, mlpRate ?? rate) }

    /// Seconds in a duration such as `45m`, `1h30m`, `900s` or `900` (seconds).
    static func seconds(_ text: String) throws -> Double {
        var total = 0.0, number = ""
        var sawUnit = false
        for c in text.lowercased() where c != " " {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let v = Double(number), let unit = ["h": 3600.0, "m": 60, "s": 1][String(c)] else { throw ValidationError("bad duration") }
            total += v * unit
            number = ""
            sawUnit = true
        }
        if !number.isEmpty {
            guard let v = Double(number) else { throw ValidationError("bad duration") }
            total += v
        } else if !sawUnit { throw ValidationError("bad duration") }
        guard total > 0, total.isFinite else { throw ValidationError("bad duration") }
        return total
    }

    func run() throws {
        // Under mpirun every rank runs this command; MPI is loaded only then (MPIWorld.start returns nil otherwise).
        let world = try MPIWorld.start()
        let communicator: Communicator = world ?? SingleProcess()
        isSecondaryRank = !communicator.isRoot
        do {
            let dataRoot = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            if let world { note("\(world.size) MPI ranks (\(world.libraryPath)); rank 0 writes the run folder") }
            if let resume {
                try resumeRun(URL(fileURLWithPath: resume), dataRoot: dataRoot, communicator: communicator)
            } else if let runDirectory, let model {
                try startRun(URL(fileURLWithPath: runDirectory), modelPath: model, dataRoot: dataRoot, communicator: communicator)
            }
        } catch {
            // A failing rank ends every rank through mpirun (the others may be waiting in a collective); the last
            // checkpoint resumes the run.
            if let world {
                FileHandle.standardError.write(Data("rank \(world.rank) of \(world.size): error: \(error)\n".utf8))
                world.abort(code: 1)
            }
            throw error
        }
        try world?.finalize()
    }

    // MARK: new run

    private func startRun(_ url: URL, modelPath: String, dataRoot: URL, communicator: Communicator) throws {
        // Refuse an occupied folder before the slow parts (rank 0 only: it alone writes the folder).
        let dir = RunDirectory(url)
        if communicator.isRoot, FileManager.default.fileExists(atPath: dir.options.path) {
            let existing = (try? dir.readOptions())?.model.path ?? "unknown model"
            throw RunError.runExists(directory: url.path, model: existing)
        }
        let loaded = try ModelOptions.parse(["--model", modelPath]).load()
        let lm = loaded.model
        let tokenizer = try ModelOptions.parse(["--model", modelPath]).loadTokenizer(loaded)
        let sha = try ModelFingerprint.sha256(path: modelPath)
        note("loaded \(modelPath) in \(String(format: "%.1f", loaded.seconds)) s (sha256 \(sha.prefix(16))…)")
        let (data, calibration, heldout) = try Self.buildData(dataRoot: dataRoot, tokenizer: tokenizer, sequenceLength: seq,
                                                              heldoutWindows: evalWindows)
        let targets = KeepRatios(attention: 1 - rates.attention, mlp: 1 - rates.mlp)
        func schedule(_ target: Double, steps: Int) -> KeepRatioSchedule {
            guard let p = progressiveStart else { return .constant(target) }
            return KeepRatioSchedule(start: max(p, target), target: target, startStep: 0, endStep: min(progressiveEnd ?? steps, steps))
        }
        let starts = KeepRatios(attention: schedule(targets.attention, steps: self.steps).start, mlp: schedule(targets.mlp, steps: self.steps).start)
        let mu = initRate.map { KeepRatios(both: $0) } ?? starts
        let (rawInitial, initRecord) = try initialScores(model: lm, tokenizer: tokenizer, sha: sha, mu: mu, dataRoot: dataRoot)
        let initial = rawInitial.keepingUnprunedKinds(targets)
        var steps = self.steps
        if let timeBudget {
            // Every rank probes (so ranks sharing a machine are timed as they will run); rank 0's count is used.
            let probed = try Self.stepsForBudget(try Self.seconds(timeBudget), model: lm, data: data, initial: initial, k: k, compute: compute,
                                                 evalEvery: evalEvery, heldoutSamples: heldoutSamples, granularity: granularity,
                                                 batch: batch, ranks: communicator.size)
            steps = Int(try communicator.broadcast([Double(probed)], from: 0)[0])
        }
        let optimizer = PolicyGradientOptions(
            estimator: estimator, samplesPerStep: k, baselineKind: baseline.kind, baselineWindow: window,
            attentionLearningRate: LearningRateSchedule(initial: attnLr ?? lr, totalSteps: steps, warmupSteps: warmup),
            mlpLearningRate: LearningRateSchedule(initial: mlpLr ?? lr, totalSteps: steps, warmupSteps: warmup),
            penalty: EntropyPenalty(initial: penaltyInit, final: penaltyFinal, totalSteps: steps),
            keepRatio: schedule(targets.mlp, steps: steps),
            attentionKeepRatio: targets.attention == targets.mlp ? nil : schedule(targets.attention, steps: steps),
            budgetScope: scope)
        let options = PolicyGradientRunOptions(
            toolVersion: PolicyPrune.version,
            model: .init(path: modelPath, sha256: sha, layers: lm.config.layers.count, parameters: lm.config.parameterCount.total),
            seed: seed, rate: rates.mlp, granularity: granularity.rawValue, steps: steps, batchSize: batch, sequenceLength: seq,
            optimizer: optimizer, initialization: initRecord, checkpointEvery: min(checkpointEvery, steps), evalEvery: evalEvery,
            calibration: calibration, heldout: heldout, threads: Parallel.threads, blasThreads: BLAS.threads,
            attentionRate: rates.attention == rates.mlp ? nil : rates.attention, heldoutSampledMasks: heldoutSamples,
            compute: compute == .f32 ? nil : compute,
            allocation: policy == "allocation"
                ? AllocationPolicyOptions(sigma: allocationSigma, learningRate: LearningRateSchedule(initial: allocationLr, totalSteps: steps, warmupSteps: warmup))
                : nil,
            channelMultiple: channelMultiple == 1 ? nil : channelMultiple)
        let draws = steps * batch
        note(String(format: "data: %d distinct calibration blocks; %d steps x %d blocks = %d draws = %.2f epochs",
                    data.calibration.count, steps, batch, draws, Double(draws) / Double(max(data.calibration.count, 1))))
        let pg = try PolicyGradientRun.create(directory: url, options: options, model: lm, data: data, initial: initial,
                                              communicator: communicator)
        try execute(pg)
    }

    private func initialScores(model lm: LanguageModel, tokenizer: any Tokenizer, sha: String, mu muPerKind: KeepRatios,
                               dataRoot: URL) throws -> (KeepProbabilities, PolicyGradientRunOptions.Initialization) {
        let scoreMapping: ScoreMapping
        switch mapping {
        case .sigmap: scoreMapping = .sigmap
        case .norm: scoreMapping = .norm
        case .hybrid: scoreMapping = .hybrid
        case .const: scoreMapping = .constant(initConstant)
        case .plan: scoreMapping = .planCentred(temperature: initTemperature)
        }
        let mu = muPerKind.mlp
        if let initScores {
            let file = try ScoresFile.read(URL(fileURLWithPath: initScores), config: lm.config, granularity: granularity)
            if file.modelSHA256 != sha {
                note("warning: \(initScores) was saved for model sha256 \(file.modelSHA256.prefix(16))…, this model is \(sha.prefix(16))…")
            }
            var record = PolicyGradientRunOptions.Initialization(
                method: "scores-file", mapping: mappingOption?.rawValue ?? "none", constant: initConstant, keepRatio: mu,
                scoresFile: initScores, scoresFileSHA256: try ModelFingerprint.fileSHA256(initScores))
            guard mappingOption != nil else { return (file.keepProbabilities, record) }
            // The saved scores act as the metric: only their order within each layer matters to the rank-based plan
            // mapping (and sigmap/norm see them as values).
            if mapping == .plan { record.details["temperature"] = "\(initTemperature)" }
            let k = file.keepProbabilities
            return (granularity.initialScores(attention: k.attention, mlp: k.mlp, mapping: scoreMapping, keepRatios: muPerKind), record)
        }
        let method = self.`init` ?? InitMethod.defaultInit(for: granularity)
        var record = PolicyGradientRunOptions.Initialization(method: method.rawValue, mapping: mapping.rawValue,
                                                             constant: initConstant, keepRatio: mu)
        if muPerKind.attention != muPerKind.mlp { record.details["attention_keep_ratio"] = "\(muPerKind.attention)" }
        if mapping == .plan { record.details["temperature"] = "\(initTemperature)" }
        switch method {
        case .uniform:
            record.mapping = "none"
            var uniform = KeepProbabilities.uniform(lm.config, value: mu, granularity: granularity)
            uniform.attention = uniform.attention.map { $0.map { _ in muPerKind.attention } }
            return (uniform, record)
        case .random:
            return (InitialScores.random(config: lm.config, mapping: scoreMapping, keepRatios: muPerKind, seed: seed &+ 1,
                                         granularity: granularity), record)
        case .wandaSP, .magnitude, .flap, .blockInfluence, .perplexityDrop:
            let metric = method.metric!
            func initRate(_ keep: Double) -> Double { 1 - keep >= 1 ? 0.999 : max(1 - keep, 0) }
            let options = MetricPruningOptions(metric: metric, rate: max(initRate(mu), granularity.prunesBothKinds ? 0 : 1e-9),
                                               granularity: granularity, scope: .global,
                                               seed: seed, wandaVariant: wandaVariant == "dense" ? .dense : .initMask, batchSize: 8,
                                               attentionRate: granularity.prunesBothKinds ? initRate(muPerKind.attention) : nil)
            var calibration: CalibrationData? = nil
            if metric.needsCalibration {
                calibration = try CalibrationData.c4Train(dataRoot: dataRoot, count: initWindows, length: initSeq, seed: initCalibrationSeed) {
                    tokenizer.encode($0, addSpecialTokens: true)
                }
                record.details["calibration"] = calibration!.recipe
                record.details["calibration_sha256"] = calibration!.sha256
                if metric == .wandaSP { record.details["wanda_variant"] = wandaVariant }
            }
            let t0 = Date()
            let bar = ProgressBar("init \(metric.rawValue)", total: lm.config.layers.count)
            let scores = try MetricPruning.scores(model: lm, options: options, calibration: calibration) { done, total in
                bar.update(done, rate: Double(done) / max(Date().timeIntervalSince(t0), 1e-9), unit: "layer")
            }
            note(String(format: "init %@ in %.1f s", metric.rawValue, Date().timeIntervalSince(t0)))
            let config = lm.config
            let attention: [[Double]], mlp: [[Double]]
            switch granularity {
            case .channels, .queryHeads: (attention, mlp) = (scores.attention, scores.mlp)
            case .heads: (attention, mlp) = (scores.attention, scores.attention.map { _ in [] })
            case .layers, .sublayers:
                attention = config.layers.indices.map { l in
                    granularity.scoreCount(.attention, layer: l, config: config) == 1 ? [scores.layers[l]] : []
                }
                mlp = config.layers.indices.map { _ in [] }
            }
            return (granularity.initialScores(attention: attention, mlp: mlp, mapping: scoreMapping, keepRatios: muPerKind), record)
        }
    }

    /// Steps that fit in `budget` seconds: a probe times one step (K masks sampled from the initial scores,
    /// gathered and run on one calibration batch); a held-out evaluation costs `1 + heldoutSamples` masks over the
    /// held-out windows, once every `evalEvery` steps. Over `ranks` ranks a rank computes ⌈K / ranks⌉ of the K
    /// masks (and of the evaluation's). Printed with the schedule it implies.
    static func stepsForBudget(_ budget: Double, model: LanguageModel, data: RunData, initial: KeepProbabilities, k: Int,
                               compute: ComputePrecision,
                               evalEvery: Int, heldoutSamples: Int, granularity: PruningGranularity, batch: Int,
                               ranks: Int = 1) throws -> Int {
        var rng = Xoshiro256(seed: 0x7072_6F62_6521)
        let blocks = Array(data.calibration.prefix(batch))
        if compute != .f32 { _ = try model.prepared(mask: nil, precision: compute) }   // quantize once, outside the probe
        let t0 = Date()
        for _ in 0..<k {
            let sample = initial.sampleMask(using: &rng)
            _ = try model.prepared(mask: sample.structureMask(config: model.config, granularity: granularity), precision: compute).tokenNLL(blocks)
        }
        func share(_ count: Int) -> Double { Double((count + ranks - 1) / ranks) / Double(count) }
        let step = Date().timeIntervalSince(t0) * share(k)
        // Held-out evaluations run in f32.
        let t1 = Date()
        _ = try model.prepared(mask: initial.sampleMask(using: &rng).structureMask(config: model.config, granularity: granularity)).tokenNLL(blocks)
        let batchSeconds = Date().timeIntervalSince(t1)
        let evalBatches = Double((data.heldout.count + batch - 1) / batch)
        let evaluation = Double((1 + heldoutSamples + ranks - 1) / ranks) * evalBatches * batchSeconds * Double(data.heldout.first?.count ?? 1) / Double(blocks.first?.count ?? 1)
        let perStep = step + (evalEvery > 0 ? evaluation / Double(evalEvery) : 0)
        // Two evaluations happen regardless (start and end).
        let steps = max(1, Int(((budget - 2 * evaluation) / perStep).rounded(.down)))
        note(String(format: "time budget %@: probe step %.2f s (%d masks), held-out evaluation ~%.1f s every %d steps -> %d steps; cosine LR over %d steps",
                    ProgressBar.clock(budget), step, k, evaluation, evalEvery, steps, steps))
        return steps
    }

    // MARK: resume

    private func resumeRun(_ url: URL, dataRoot: URL, communicator: Communicator) throws {
        let dir = RunDirectory(url)
        let options = try dir.readOptions(sharedBy: communicator)
        let modelPath = model ?? options.model.path
        let sha = try ModelFingerprint.sha256(path: modelPath)
        guard sha == options.model.sha256 else {
            throw RunError.modelMismatch(directory: url.path, recordedPath: options.model.path, recordedSHA256: options.model.sha256,
                                         givenPath: modelPath, givenSHA256: sha)
        }
        let loaded = try ModelOptions.parse(["--model", modelPath]).load()
        let tokenizer = try ModelOptions.parse(["--model", modelPath]).loadTokenizer(loaded)
        let (data, _, _) = try Self.buildData(dataRoot: dataRoot, tokenizer: tokenizer, sequenceLength: options.sequenceLength,
                                              heldoutWindows: options.heldout.blocks)
        let pg = try PolicyGradientRun.open(directory: url, model: loaded.model, modelSHA256: sha, modelPath: modelPath, data: data,
                                            communicator: communicator)
        try execute(pg)
    }

    // MARK: shared

    /// The run's data (`RunData.c4`), with a progress note.
    static func buildData(dataRoot: URL, tokenizer: any Tokenizer, sequenceLength: Int, heldoutWindows: Int) throws
        -> (RunData, PolicyGradientRunOptions.DataRecord, PolicyGradientRunOptions.DataRecord) {
        let t0 = Date()
        let result = try RunData.c4(dataRoot: dataRoot, sequenceLength: sequenceLength, heldoutWindows: heldoutWindows) {
            tokenizer.encode($0, addSpecialTokens: true)
        }
        note(String(format: "data: %d calibration blocks, %d held-out windows of %d tokens (%.1f s)", result.data.calibration.count,
                    result.data.heldout.count, sequenceLength, Date().timeIntervalSince(t0)))
        return result
    }

    private func execute(_ pg: PolicyGradientRun) throws {
        let o = pg.options
        note("run \(pg.directory.url.path): \(o.steps) steps of \(o.optimizer.samplesPerStep) x \(o.batchSize) x \(o.sequenceLength) tokens (\((o.compute ?? .f32).rawValue)), rate \(o.rate), policy \(o.policyName), \(o.granularity), \(o.optimizer.budgetScope.rawValue), init \(o.initialization.method), seed \(o.seed)")
        let started = Date()
        var firstIteration: Int?
        var lastPrint = Date.distantPast
        pg.onEvent = { event in
            switch event {
            case .message(let m):
                note(m)
            case .checkpoint:
                break
            case .heldout(let h):
                note(String(format: "held-out  iteration %d  step %d  keep %.3f  hard-mask NLL %.4f (ppl %.2f)  sampled NLL %@%@  (%d windows, %.1f s)",
                            h.iteration, h.step, h.keepRatio, h.meanNLL, h.perplexity,
                            h.sampledMeanNLL.map { String(format: "%.4f", $0) } ?? "-", h.best == true ? "  best so far" : "",
                            h.windows, h.seconds))
            case .step(let r, let total):
                if firstIteration == nil { firstIteration = r.iteration }
                let now = Date()
                let done = r.iteration + 1
                guard verbose || done == total || now.timeIntervalSince(lastPrint) >= 1 else { return }
                lastPrint = now
                let elapsed = now.timeIntervalSince(started)
                let rate = Double(done - firstIteration!) / max(elapsed, 1e-9)
                let eta = rate > 0 ? Double(total - done) / rate : 0
                note(String(format: "step %d/%d  loss %@  baseline %@  lr %.3g/%.3g  keep %.3f  kept-params %.3f  %.2f steps/s  ETA %@",
                            done, total, r.meanLoss.map { String(format: "%.4f", $0) } ?? "nan",
                            r.baseline.map { String(format: "%.4f", $0) } ?? "-", r.learningRate.attention, r.learningRate.mlp,
                            r.keepRatio, r.hardMaskKeptParameters, rate, ProgressBar.clock(eta)))
            }
        }
        let summary = try pg.run()
        guard pg.communicator.isRoot else { return }
        let dir = pg.directory
        print("plan         \(dir.plan.path)")
        print("scores       \(dir.scores.path)")
        print("report       \(dir.report.path)")
        print("final plan   \(dir.finalPlan.path) (last iterate)")
        print("achieved     \(summary.plan.achievedRate.summary) removed")
        if let a = summary.initialHeldoutNLL, let b = summary.finalHeldoutNLL {
            print(String(format: "held-out     NLL %.4f at the start, %.4f at the end (ppl %.2f -> %.2f) on %d C4 validation windows", a, b, exp(a), exp(b), o.heldout.blocks))
        }
        print("returned     \(summary.returnedReason)")
        print(String(format: "time         %.1f s in this process, %d steps", summary.seconds, summary.steps))
        print(String(format: "memory       peak %.1f MiB", Double(PeakMemory.bytes) / 1_048_576))
    }
}
