import ArgumentParser
import Corpora
import Essentials
import Foundation
import Kernels
import Pruning
import Tokenization
import Transformer

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

    @OptionGroup(title: "Model") var modelOptions: PruneModelOptions
    @OptionGroup(title: "Data") var data: PruneDataOptions
    @OptionGroup(title: "Initial scores") var start: PruneInitOptions
    @OptionGroup(title: "Optimiser") var optimiser: PruneOptimiserOptions
    @OptionGroup(title: "Run control") var control: PruneRunOptions
    @Flag(help: "The paper's settings (official scripts): --mapping sigmap --baseline ema --lr 2e-3, instead of PolicyPrune's defaults (--mapping plan --baseline step --lr 0.5; RESULTS.md says why).")
    var paper = false

    /// The mapping of a metric init: --mapping, else sigmap with --paper, else plan.
    var mapping: InitMapping { start.mappingOption ?? (paper ? .sigmap : .plan) }
    /// The learning rate: 0.5 for the plan mapping (scores start near 0 and 1 and need large moves), else 2e-3.
    var lr: Double { optimiser.lrOption ?? (mapping == .plan ? 0.5 : 2e-3) }
    /// The baseline: step unless --paper.
    var baseline: MovingAverageBaseline.Kind { optimiser.baselineOption ?? (paper ? .exponential : .stepMean) }

    func validate() throws {
        let o = optimiser, c = control, i = start, d = data
        if (c.runDirectory == nil) == (c.resume == nil) { throw ValidationError("give exactly one of --run DIR (new run) or --resume DIR") }
        if c.resume != nil { return }
        guard modelOptions.model != nil else { throw ValidationError("--model is required for a new run") }
        guard o.rate > 0, o.rate < 1 else { throw ValidationError("--rate must be in (0, 1), got \(o.rate)") }
        for (name, v) in [("--attention-rate", o.attentionRate), ("--mlp-rate", o.mlpRate)] {
            if let v, !(v >= 0 && v < 1) { throw ValidationError("\(name) must be in [0, 1), got \(v)") }
        }
        guard o.rates.attention > 0 || o.rates.mlp > 0 else { throw ValidationError("nothing to prune: --attention-rate and --mlp-rate are both 0") }
        if o.scope == .perLayer || o.scope == .global, o.granularity == .layers, o.attentionRate != nil || o.mlpRate != nil {
            throw ValidationError("--granularity layers has one rate (of whole layers); use --rate")
        }
        guard c.heldoutSamples >= 0 else { throw ValidationError("--heldout-samples must be >= 0, got \(c.heldoutSamples)") }
        guard i.initTemperature > 0, i.initTemperature.isFinite else { throw ValidationError("--init-temperature must be > 0, got \(i.initTemperature)") }
        let initMethod = i.`init` ?? InitMethod.defaultInit(for: o.granularity)
        guard i.initScores != nil || initMethod.supports(o.granularity) else {
            let usable = InitMethod.allCases.filter { $0.supports(o.granularity) }.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--init \(initMethod.rawValue) does not score --granularity \(o.granularity.rawValue); use one of: \(usable)")
        }
        guard o.granularity.allowsPerLayerScope || o.scope != .perLayer else {
            throw ValidationError("--scope per-layer: --granularity \(o.granularity.rawValue) has one score per layer and kind; use global or joint")
        }
        guard o.k >= 2 else { throw ValidationError("--k must be at least 2 (the estimator divides by K - 1), got \(o.k)") }
        guard o.channelMultiple >= 1 else { throw ValidationError("--channel-multiple must be at least 1, got \(o.channelMultiple)") }
        if o.policy == .allocation {
            guard !paper else { throw ValidationError("--paper runs the paper's per-structure policy; drop --policy allocation or --paper") }
            guard o.k % 2 == 0 else { throw ValidationError("--policy allocation samples antithetic pairs: --k must be even, got \(o.k)") }
            guard o.allocationSigma > 0, o.allocationSigma < 1 else { throw ValidationError("--allocation-sigma must be in (0, 1), got \(o.allocationSigma)") }
            guard o.allocationLr >= 0, o.allocationLr.isFinite else { throw ValidationError("--allocation-lr must be a finite value >= 0, got \(o.allocationLr)") }
            guard o.granularity == .channels else { throw ValidationError("--policy allocation needs --granularity channels") }
            guard o.scope == .global else { throw ValidationError("--policy allocation keeps a global budget per kind: --scope \(o.scope.rawValue) does not apply") }
        }
        guard c.steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(c.steps)") }
        guard d.batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(d.batch)") }
        guard d.seq >= 2 else { throw ValidationError("--seq must be at least 2, got \(d.seq)") }
        for (name, v) in [("--lr", lr), ("--attn-lr", o.attnLr ?? lr), ("--mlp-lr", o.mlpLr ?? lr)] {
            guard v >= 0, v.isFinite else { throw ValidationError("\(name) must be a finite value >= 0, got \(v)") }
        }
        guard o.warmup >= 0, o.warmup <= c.steps else { throw ValidationError("--warmup must be in 0...\(c.steps), got \(o.warmup)") }
        guard o.window >= 1 else { throw ValidationError("--window must be at least 1, got \(o.window)") }
        if let p = o.progressiveStart, !(p > 0 && p <= 1) { throw ValidationError("--progressive-start is a keep ratio in (0, 1], got \(p)") }
        if let e = o.progressiveEnd, e < 0 || e > c.steps { throw ValidationError("--progressive-end must be in 0...\(c.steps), got \(e)") }
        if let r = i.initRate, !(r > 0 && r <= 1) { throw ValidationError("--init-rate is a keep ratio in (0, 1], got \(r)") }
        guard i.initConstant >= 0, i.initConstant <= 1 else { throw ValidationError("--init-constant must be in [0, 1], got \(i.initConstant)") }
        guard c.checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1, got \(c.checkpointEvery)") }
        guard c.evalEvery >= 0 else { throw ValidationError("--eval-every must be >= 0, got \(c.evalEvery)") }
        guard d.evalWindows >= 1 else { throw ValidationError("--eval-windows must be at least 1, got \(d.evalWindows)") }
        guard i.initWindows >= 1, i.initSeq >= 2 else { throw ValidationError("--init-windows must be >= 1 and --init-seq >= 2") }
    }

    func run() throws {
        // Under mpirun every rank runs this command; MPI is loaded only then (MPIWorld.start returns nil otherwise).
        let world = try MPIWorld.start()
        let communicator: Communicator = world ?? SingleProcess()
        isSecondaryRank = !communicator.isRoot
        do {
            let dataRoot = try DataRoot.resolve(explicit: data.shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            if let world { note("\(world.size) MPI ranks (\(world.libraryPath)); rank 0 writes the run folder") }
            if let resume = control.resume {
                try resumeRun(URL(fileURLWithPath: resume), dataRoot: dataRoot, communicator: communicator)
            } else if let runDirectory = control.runDirectory, let model = modelOptions.model {
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
        let o = optimiser, c = control
        // Refuse an occupied folder before the slow parts (rank 0 only: it alone writes the folder).
        let dir = RunDirectory(url)
        if communicator.isRoot, FileManager.default.fileExists(atPath: dir.options.path) {
            let existing = (try? dir.readOptions())?.model.path ?? "unknown model"
            throw RunError.runExists(directory: url.path, model: existing)
        }
        let loaded = try ModelOptions.load(path: modelPath)
        let lm = loaded.model
        let tokenizer = try loaded.loadTokenizer()
        let encode: (String) -> [Int] = { tokenizer.encode($0, addSpecialTokens: true) }
        let sha = try ModelFingerprint.sha256(path: modelPath)
        note("loaded \(modelPath) in \(String(format: "%.1f", loaded.seconds)) s (sha256 \(sha.prefix(16))…)")
        let (runData, calibration, heldout) = try Self.buildData(dataRoot: dataRoot, sequenceLength: data.seq,
                                                                 heldoutWindows: data.evalWindows, encode: encode)
        let targets = KeepRatios(attention: 1 - o.rates.attention, mlp: 1 - o.rates.mlp)
        func schedule(_ target: Double, steps: Int) -> KeepRatioSchedule {
            guard let p = o.progressiveStart else { return .constant(target) }
            return KeepRatioSchedule(start: max(p, target), target: target, startStep: 0, endStep: min(o.progressiveEnd ?? steps, steps))
        }
        let starts = KeepRatios(attention: schedule(targets.attention, steps: c.steps).start, mlp: schedule(targets.mlp, steps: c.steps).start)
        let recipe = RunInitialization(
            method: start.`init` ?? InitMethod.defaultInit(for: o.granularity), mapping: mapping,
            temperature: start.initTemperature, constant: start.initConstant,
            keepRatios: start.initRate.map { KeepRatios(both: $0) } ?? starts,
            calibrationWindows: start.initWindows, calibrationLength: start.initSeq, calibrationSeed: start.initCalibrationSeed,
            wandaVariant: start.wandaVariant, seed: c.seed, scoresFile: start.initScores, remapsScoresFile: start.mappingOption != nil)
        let t0 = Date()
        let bar = recipe.metric.map { ProgressBar("init \($0.rawValue)", total: lm.config.layers.count) }
        let (rawInitial, initRecord) = try recipe.make(model: lm, modelSHA256: sha, granularity: o.granularity, dataRoot: dataRoot,
                                                       encode: encode, warn: note) { done, _ in
            bar?.update(done, rate: Double(done) / max(Date().timeIntervalSince(t0), 1e-9), unit: "layer")
        }
        if let metric = recipe.metric { note(String(format: "init %@ in %.1f s", metric.rawValue, Date().timeIntervalSince(t0))) }
        let initial = rawInitial.keepingUnprunedKinds(targets)
        var steps = c.steps
        if let timeBudget = c.timeBudget {
            // Every rank probes (so ranks sharing a machine are timed as they will run); rank 0's count is used.
            let probed = try Self.stepsForBudget(timeBudget.seconds, model: lm, data: runData, initial: initial, k: o.k,
                                                 compute: o.compute, evalEvery: c.evalEvery, heldoutSamples: c.heldoutSamples,
                                                 granularity: o.granularity, batch: data.batch, ranks: communicator.size)
            steps = Int(try communicator.broadcast([Double(probed)], from: 0)[0])
        }
        let optimizer = PolicyGradientOptions(
            estimator: o.estimator, samplesPerStep: o.k, baselineKind: baseline, baselineWindow: o.window,
            attentionLearningRate: LearningRateSchedule(initial: o.attnLr ?? lr, totalSteps: steps, warmupSteps: o.warmup),
            mlpLearningRate: LearningRateSchedule(initial: o.mlpLr ?? lr, totalSteps: steps, warmupSteps: o.warmup),
            penalty: EntropyPenalty(initial: o.penaltyInit, final: o.penaltyFinal, totalSteps: steps),
            keepRatio: schedule(targets.mlp, steps: steps),
            attentionKeepRatio: targets.attention == targets.mlp ? nil : schedule(targets.attention, steps: steps),
            budgetScope: o.scope)
        let options = PolicyGradientRunOptions(
            toolVersion: PolicyPrune.version,
            model: .init(path: modelPath, sha256: sha, layers: lm.config.layers.count, parameters: lm.config.parameterCount.total),
            seed: c.seed, rate: o.rates.mlp, granularity: o.granularity.rawValue, steps: steps, batchSize: data.batch,
            sequenceLength: data.seq, optimizer: optimizer, initialization: initRecord,
            checkpointEvery: min(c.checkpointEvery, steps), evalEvery: c.evalEvery,
            calibration: calibration, heldout: heldout, threads: Parallel.threads, blasThreads: BLAS.threads,
            attentionRate: o.rates.attention == o.rates.mlp ? nil : o.rates.attention, heldoutSampledMasks: c.heldoutSamples,
            compute: o.compute == .f32 ? nil : o.compute,
            allocation: o.policy == .allocation
                ? AllocationPolicyOptions(sigma: o.allocationSigma,
                                          learningRate: LearningRateSchedule(initial: o.allocationLr, totalSteps: steps, warmupSteps: o.warmup))
                : nil,
            channelMultiple: o.channelMultiple == 1 ? nil : o.channelMultiple)
        let draws = steps * data.batch
        note(String(format: "data: %d distinct calibration blocks; %d steps x %d blocks = %d draws = %.2f epochs",
                    runData.calibration.count, steps, data.batch, draws, Double(draws) / Double(max(runData.calibration.count, 1))))
        let pg = try PolicyGradientRun.create(directory: url, options: options, model: lm, data: runData, initial: initial,
                                              communicator: communicator)
        try execute(pg)
    }

    /// Steps that fit in `budget` seconds (`RunProbe`: one step of K masks sampled from the initial scores on one
    /// calibration batch, one held-out evaluation), printed with the schedule it implies.
    static func stepsForBudget(_ budget: Double, model: LanguageModel, data: RunData, initial: KeepProbabilities, k: Int,
                               compute: ComputePrecision, evalEvery: Int, heldoutSamples: Int, granularity: PruningGranularity,
                               batch: Int, ranks: Int = 1) throws -> Int {
        let probe = try RunProbe.measure(model: model, data: data, keepProbabilities: initial, granularity: granularity,
                                         samplesPerStep: k, batch: batch, compute: compute, heldoutSampledMasks: heldoutSamples,
                                         ranks: ranks)
        let steps = probe.steps(forBudget: budget, evalEvery: evalEvery)
        note(String(format: "time budget %@: probe step %.2f s (%d masks), held-out evaluation ~%.1f s every %d steps -> %d steps; cosine LR over %d steps",
                    ProgressBar.clock(budget), probe.stepSeconds, k, probe.evaluationSeconds, evalEvery, steps, steps))
        return steps
    }

    // MARK: resume

    private func resumeRun(_ url: URL, dataRoot: URL, communicator: Communicator) throws {
        let dir = RunDirectory(url)
        let options = try dir.readOptions(sharedBy: communicator)
        let modelPath = modelOptions.model ?? options.model.path
        let sha = try ModelFingerprint.sha256(path: modelPath)
        guard sha == options.model.sha256 else {
            throw RunError.modelMismatch(directory: url.path, recordedPath: options.model.path, recordedSHA256: options.model.sha256,
                                         givenPath: modelPath, givenSHA256: sha)
        }
        let loaded = try ModelOptions.load(path: modelPath)
        let tokenizer = try loaded.loadTokenizer()
        let t0 = Date()
        let (runData, _, _) = try RunData.c4(dataRoot: dataRoot, recordedIn: options) { tokenizer.encode($0, addSpecialTokens: true) }
        Self.noteData(runData, sequenceLength: options.sequenceLength, since: t0)
        let pg = try PolicyGradientRun.open(directory: url, model: loaded.model, modelSHA256: sha, modelPath: modelPath, data: runData,
                                            communicator: communicator)
        try execute(pg)
    }

    // MARK: shared

    /// The run's data (`RunData.c4`), with a progress note.
    static func buildData(dataRoot: URL, sequenceLength: Int, heldoutWindows: Int, encode: (String) throws -> [Int]) throws
        -> (RunData, PolicyGradientRunOptions.DataRecord, PolicyGradientRunOptions.DataRecord) {
        let t0 = Date()
        let result = try RunData.c4(dataRoot: dataRoot, sequenceLength: sequenceLength, heldoutWindows: heldoutWindows, encode: encode)
        noteData(result.data, sequenceLength: sequenceLength, since: t0)
        return result
    }

    private static func noteData(_ data: RunData, sequenceLength: Int, since t0: Date) {
        note(String(format: "data: %d calibration blocks, %d held-out windows of %d tokens (%.1f s)", data.calibration.count,
                    data.heldout.count, sequenceLength, Date().timeIntervalSince(t0)))
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
                guard control.verbose || done == total || now.timeIntervalSince(lastPrint) >= 1 else { return }
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
