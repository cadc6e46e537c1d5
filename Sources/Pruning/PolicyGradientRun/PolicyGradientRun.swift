import Checkpoints
import Corpora
import Essentials
import Foundation
import Kernels
import Transformer

/// The token data of a run: calibration blocks (the training stream) and held-out windows (monitoring).
public struct RunData: Sendable {
    /// [blocks][T] calibration token ids (C4 train subset), in document order; the run permutes them.
    public var calibration: [[Int]]
    /// [windows][T] held-out token ids (C4 validation subset).
    public var heldout: [[Int]]

    /// Wraps tokenised blocks (all of length T).
    public init(calibration: [[Int]], heldout: [[Int]]) {
        self.calibration = calibration
        self.heldout = heldout
    }

    /// The data of a run on the shared C4 subsets: calibration blocks from every C4 train file
    /// (`Dataset.RelativePath.c4TrainFiles`: each document with the model's BOS rule via `encode`, groups of 1,000
    /// documents, `sequenceLength`-token blocks, remainders dropped) and the first `heldoutWindows` blocks of the
    /// C4 validation subset (documents taken 64, 128, ... at a time until enough blocks exist). WikiText-2 is never
    /// read. Returns the data with the records `options.json` keeps.
    /// - Throws: `CorpusError` for missing or malformed files, `RunError.notEnoughData` when validation runs out.
    public static func c4(dataRoot: URL, sequenceLength: Int, heldoutWindows: Int, encode: (String) throws -> [Int]) throws
        -> (data: RunData, calibration: PolicyGradientRunOptions.DataRecord, heldout: PolicyGradientRunOptions.DataRecord) {
        let trainFiles = Dataset.RelativePath.c4TrainFiles(dataRoot: dataRoot)
        var documents: [String] = []
        for file in trainFiles { documents += try CorpusText.c4Documents(dataRoot.appendingPathComponent(file)) }
        let train = try Calibration.blocks(documents: documents, length: sequenceLength, encode: encode)
        let validationFile = Dataset.RelativePath.c4Validation
        let validationURL = dataRoot.appendingPathComponent(validationFile)
        let available = try CorpusText.c4Documents(validationURL)
        var heldout: [[Int]] = []
        var heldoutDocuments = 64
        while true {
            heldout = try Calibration.blocks(documents: Array(available.prefix(heldoutDocuments)), length: sequenceLength, encode: encode)
            if heldout.count >= heldoutWindows || heldoutDocuments >= available.count { break }
            heldoutDocuments *= 2
        }
        guard heldout.count >= heldoutWindows else {
            throw RunError.notEnoughData(what: validationURL.path, blocks: heldout.count, needed: heldoutWindows)
        }
        heldout = Array(heldout.prefix(heldoutWindows))
        let data = RunData(calibration: train, heldout: heldout)
        let calibration = PolicyGradientRunOptions.DataRecord(
            file: trainFiles.joined(separator: ", "),
            recipe: "every document of every C4 train file (\(documents.count) documents) with the model's BOS rule, groups of 1000 documents, \(sequenceLength)-token blocks, remainders dropped; visited in seeded per-epoch permutations",
            blocks: train.count, idsSHA256: data.calibrationSHA256)
        let held = PolicyGradientRunOptions.DataRecord(
            file: validationFile,
            recipe: "first \(heldoutWindows) \(sequenceLength)-token blocks of the first \(min(heldoutDocuments, available.count)) documents (each with the model's BOS rule)",
            blocks: heldout.count, idsSHA256: data.heldoutSHA256)
        return (data, calibration, held)
    }

    /// sha256 of the calibration ids (decimal, comma-joined, block order).
    public var calibrationSHA256: String { SHA256.hex(ids: calibration.flatMap { $0 }) }
    /// sha256 of the held-out ids.
    public var heldoutSHA256: String { SHA256.hex(ids: heldout.flatMap { $0 }) }
}

/// What a run reports while it works.
public enum RunEvent {
    /// Something to tell the user (resume point, fallback to an older checkpoint, thread-count warning, ...).
    case message(String)
    /// A step finished; `iterations` is the run's total.
    case step(StepLogRecord, iterations: Int)
    /// A held-out evaluation finished.
    case heldout(HeldoutLogRecord)
    /// A checkpoint was written.
    case checkpoint(URL)
}

/// The files of a run directory (design.md decision 6).
public struct RunDirectory: Sendable {
    /// The folder.
    public let url: URL
    /// The run folder at `url`.
    public init(_ url: URL) { self.url = url }
    /// Everything needed to reproduce the run.
    public var options: URL { url.appendingPathComponent("options.json") }
    /// One JSON line per step and per held-out evaluation.
    public var log: URL { url.appendingPathComponent("log.jsonl") }
    /// Atomic checkpoints, latest two.
    public var checkpoints: URL { url.appendingPathComponent("checkpoint") }
    /// The initial keep probabilities and their hard mask (the run's own starting plan).
    public var initialScores: URL { url.appendingPathComponent("initial-scores.json") }
    /// The hard mask of the initial scores at the target keep ratio.
    public var initialPlan: URL { url.appendingPathComponent("initial-plan.json") }
    /// Final outputs.
    public var scores: URL { url.appendingPathComponent("scores.json") }
    /// The returned plan: the best held-out hard mask over the evaluations.
    public var plan: URL { url.appendingPathComponent("plan.json") }
    /// The hard mask of the last iterate, whether or not it is the best.
    public var finalPlan: URL { url.appendingPathComponent("final-plan.json") }
    /// Per-layer kept structures and the loss curves.
    public var report: URL { url.appendingPathComponent("report.svg") }

    /// Reads `options.json`.
    public func readOptions() throws -> PolicyGradientRunOptions {
        guard let data = FileManager.default.contents(atPath: options.path) else {
            throw RunError.notARunDirectory(directory: url.path, reason: "no options.json")
        }
        return try decodeOptions(data)
    }

    /// Rank 0's `options.json` on every rank: rank 0 reads the file and sends its bytes, so the other ranks need no
    /// copy of the run folder. A rank 0 that cannot read it throws (and its abort ends the others).
    public func readOptions(sharedBy communicator: Communicator) throws -> PolicyGradientRunOptions {
        guard communicator.size > 1 else { return try readOptions() }
        var bytes: [UInt8] = []
        if communicator.isRoot {
            guard let data = FileManager.default.contents(atPath: options.path) else {
                throw RunError.notARunDirectory(directory: url.path, reason: "no options.json")
            }
            bytes = [UInt8](data)
        }
        return try decodeOptions(Data(try communicator.broadcast(bytes, from: 0)))
    }

    private func decodeOptions(_ data: Data) throws -> PolicyGradientRunOptions {
        let decoded: PolicyGradientRunOptions
        do { decoded = try JSONDecoder().decode(PolicyGradientRunOptions.self, from: data) } catch {
            throw RunError.notARunDirectory(directory: url.path, reason: "options.json does not parse: \(error)")
        }
        try decoded.validate()
        return decoded
    }
}

/// What a finished run produced.
public struct RunSummary: Sendable {
    /// The plan written to `plan.json`: the best held-out hard mask over the evaluations (step 0 included).
    public var plan: PrunePlan
    /// The hard mask of the last iterate (`final-plan.json`).
    public var finalPlan: PrunePlan
    /// Iteration of the evaluation whose hard mask `plan` is, and its held-out NLL.
    public var returnedIteration: Int
    /// Held-out NLL of the returned plan.
    public var returnedHeldoutNLL: Double?
    /// Why that plan was returned, in words.
    public var returnedReason: String
    /// Held-out NLL of the initial hard mask (nil when not measured).
    public var initialHeldoutNLL: Double?
    /// Held-out NLL of the final hard mask.
    public var finalHeldoutNLL: Double?
    /// Valid steps and wall-clock seconds of this process.
    public var steps: Int
    /// Wall-clock seconds of this process.
    public var seconds: Double
}

/// A policy-gradient pruning run (spec §1.10 per step): K masks sampled from the keep probabilities, K masked
/// forward passes on the same calibration batch, then `policyGradientStep`. Checkpoints make it resumable
/// exactly: a killed and resumed run ends bit-identical to an uninterrupted one (same thread counts).
///
/// Over N ranks (`mpirun -np N`), every rank holds the whole state and makes every update; the forwards are shared
/// by `RankShare`, so the run is byte-identical to the one-rank run. Rank 0 alone writes the run folder and reports
/// events; it sends the checkpoint it starts from (and, on `--resume`, `options.json`) to the others, so their
/// machines need no copy of the folder.
public final class PolicyGradientRun {
    /// The run folder.
    public let directory: RunDirectory
    /// Its options.
    public let options: PolicyGradientRunOptions
    /// The ranks sharing the run (`SingleProcess` without MPI).
    public let communicator: Communicator
    let model: LanguageModel
    let data: RunData
    /// Receives progress and messages (called on rank 0 only).
    public var onEvent: (RunEvent) -> Void = { _ in }

    private init(directory: RunDirectory, options: PolicyGradientRunOptions, model: LanguageModel, data: RunData,
                 communicator: Communicator) {
        self.directory = directory
        self.options = options
        self.model = model
        self.data = data
        self.communicator = communicator
    }

    /// Whether this process writes the run folder (rank 0).
    var writesFiles: Bool { communicator.isRoot }

    private func emit(_ event: RunEvent) {
        if writesFiles { onEvent(event) }
    }

    /// Starts a new run in `directory` (created if needed; it must not hold a run): writes `options.json`, the
    /// initial scores and plan, and the iteration-0 checkpoint. Over several ranks, only rank 0 checks and writes the
    /// folder; every rank builds the same run in memory.
    public static func create(directory url: URL, options: PolicyGradientRunOptions, model: LanguageModel, data: RunData,
                              initial: KeepProbabilities, communicator: Communicator = SingleProcess()) throws -> PolicyGradientRun {
        try options.validate()
        let dir = RunDirectory(url)
        if communicator.isRoot, FileManager.default.fileExists(atPath: dir.options.path) {
            let existing = (try? dir.readOptions())?.model.path ?? "unknown model"
            throw RunError.runExists(directory: url.path, model: existing)
        }
        try check(options: options, model: model, data: data, directory: url.path)
        do { try initial.validate(against: model.config, granularity: options.scoreGranularity) } catch {
            throw PruningError.invalidValue(key: "initial scores", value: "", reason: "\(error)")
        }
        let run = PolicyGradientRun(directory: dir, options: options, model: model, data: data, communicator: communicator)
        guard communicator.isRoot else { return run }
        do {
            try FileManager.default.createDirectory(at: dir.checkpoints, withIntermediateDirectories: true)
        } catch {
            throw RunError.writeFailed(path: dir.checkpoints.path, reason: error.localizedDescription)
        }
        try run.writeFile(try options.jsonData(), to: dir.options)
        try run.writeFile(try ScoresFile(modelSHA256: options.model.sha256, step: 0, keepProbabilities: initial).jsonData(),
                          to: dir.initialScores)
        try run.writeFile(try run.plan(for: initial).jsonData(), to: dir.initialPlan)
        try? FileManager.default.removeItem(at: dir.log)
        var state = PolicyGradientState(initial: initial, options: options.optimizer)
        if options.allocation != nil {
            let allocation = LayerAllocation(initial: initial, keepRatios: options.optimizer.keepRatios(atStep: 0), config: model.config)
            state.allocation = allocation
            state.keepProbabilities = allocation.keepProbabilities
        }
        let checkpoint = RunCheckpoint(modelSHA256: options.model.sha256, iteration: 0, state: state,
                                       maskGenerator: Xoshiro256(seed: options.seed),
                                       dataOrder: DataOrder(blockCount: data.calibration.count, seed: Self.dataSeed(options.seed)),
                                       elapsedSeconds: 0)
        try CheckpointStore(directory: dir.checkpoints).write(checkpoint)
        return run
    }

    /// Opens an existing run for `--resume`: the model must be the one recorded (by sha256) and the data must
    /// tokenise to the recorded ids. Over several ranks, rank 0 reads `options.json` and sends it to the others.
    public static func open(directory url: URL, model: LanguageModel, modelSHA256: String, modelPath: String,
                            data: RunData, communicator: Communicator = SingleProcess()) throws -> PolicyGradientRun {
        let dir = RunDirectory(url)
        let options = try dir.readOptions(sharedBy: communicator)
        guard options.model.sha256 == modelSHA256 else {
            throw RunError.modelMismatch(directory: url.path, recordedPath: options.model.path, recordedSHA256: options.model.sha256,
                                         givenPath: modelPath, givenSHA256: modelSHA256)
        }
        try check(options: options, model: model, data: data, directory: url.path)
        return PolicyGradientRun(directory: dir, options: options, model: model, data: data, communicator: communicator)
    }

    /// The data-order seed: derived from the run seed so mask sampling and data order use distinct streams.
    static func dataSeed(_ seed: UInt64) -> UInt64 { seed ^ 0xD1B5_4A32_D192_ED03 }

    private static func check(options: PolicyGradientRunOptions, model: LanguageModel, data: RunData, directory: String) throws {
        guard options.model.layers == model.config.layers.count,
              options.model.parameters == model.config.parameterCount.total else {
            throw RunError.modelMismatch(directory: directory, recordedPath: options.model.path, recordedSHA256: options.model.sha256,
                                         givenPath: "the loaded model", givenSHA256: "(\(model.config.layers.count) layers, \(model.config.parameterCount.total) parameters)")
        }
        let calibration = data.calibrationSHA256
        guard calibration == options.calibration.idsSHA256 else {
            throw RunError.dataMismatch(what: "calibration blocks", recorded: options.calibration.idsSHA256, found: calibration)
        }
        let heldout = data.heldoutSHA256
        guard heldout == options.heldout.idsSHA256 else {
            throw RunError.dataMismatch(what: "held-out windows", recorded: options.heldout.idsSHA256, found: heldout)
        }
        guard data.calibration.count >= options.batchSize else {
            throw RunError.notEnoughData(what: "calibration (\(options.calibration.file))", blocks: data.calibration.count, needed: options.batchSize)
        }
        guard data.calibration.allSatisfy({ $0.count == options.sequenceLength }),
              data.heldout.allSatisfy({ $0.count == options.sequenceLength }) else {
            throw PruningError.invalidValue(key: "seq", value: "\(options.sequenceLength)", reason: "every block must have this many tokens")
        }
    }

    /// Runs from the newest good checkpoint to the end, then writes `scores.json`, `plan.json` and `report.svg`.
    /// Every rank of a multi-rank run calls it; rank 0 writes, and the others return the same plans.
    public func run() throws -> RunSummary {
        let started = Date()
        let config = model.config
        let store = CheckpointStore(directory: directory.checkpoints)
        let sha = options.model.sha256
        let share = RankShare(communicator)
        try checkRanksAgree()
        let (checkpoint, file, messages) = try startingCheckpoint(store)
        for m in messages { emit(.message(m)) }
        if Parallel.threads != options.threads || BLAS.threads != options.blasThreads {
            emit(.message("note: the run was started with \(options.threads) kernel / \(options.blasThreads) BLAS threads, now \(Parallel.threads) / \(BLAS.threads): results are reproducible, but not bit-identical to an uninterrupted run"))
        }
        if checkpoint.iteration > 0 {
            emit(.message("resuming from \(file): iteration \(checkpoint.iteration) of \(options.steps), step \(checkpoint.state.step)"))
        }
        var log: JSONLinesWriter? = nil
        if writesFiles {
            try RunLog.truncate(directory.log, before: checkpoint.iteration)
            log = try JSONLinesWriter(directory.log)
        }

        var state = checkpoint.state
        var maskRNG = checkpoint.maskGenerator
        var order = checkpoint.dataOrder
        var permutation: [Int]? = nil
        var elapsedBefore = checkpoint.elapsedSeconds
        let o = options.optimizer
        let granularity = options.scoreGranularity
        let totalA = config.structureCount(.attention), totalM = config.structureCount(.mlp)
        let denseParameters = config.parameterCount.prunable

        var best = checkpoint.best
        let targets = options.targetKeepRatios
        let sampledMasks = options.heldoutSampledMasks ?? 2

        func heldout(iteration: Int) throws {
            let rho = iteration >= options.steps ? targets : o.keepRatios(atStep: state.step)
            let t0 = Date()
            let mask = planMask(state.keepProbabilities, keepRatios: rho)
            // Sampled masks from a stream of their own (seeded by run seed and iteration), so measuring them never
            // changes the training stream.
            var drawn: [MaskSample] = []
            if sampledMasks > 0 {
                var rng = Xoshiro256(seed: options.seed ^ 0x5A3E_D1C7_0B9F_4E21 ^ UInt64(iteration) &* 0x9E37_79B9_7F4A_7C15)
                while drawn.count < sampledMasks {
                    if let a = state.allocation, let ao = options.allocation {
                        let pair = a.samplePair(options: ao, using: &rng)
                        drawn += [pair.plus, pair.minus]
                    } else {
                        drawn.append(state.keepProbabilities.sampleMask(using: &rng))
                    }
                }
            }
            // The hard mask, then the sampled masks: one value each, shared among the ranks.
            let masks = [mask] + drawn.prefix(sampledMasks).map { $0.structureMask(config: config, granularity: granularity) }
            let nlls = try share.values(count: masks.count) { try meanNLL(mask: masks[$0], windows: data.heldout) }.values
            let nll = nlls[0]
            var sampledNLL: Double? = nil
            if sampledMasks > 0 {
                var sum = 0.0
                for value in nlls.dropFirst() { sum += value }
                sampledNLL = sum / Double(sampledMasks)
            }
            // Only evaluations at the target keep ratios compete for the returned plan (a progressive schedule's
            // early masks keep more and are not comparable).
            let atTarget = rho == targets
            // Ties at the threshold are cut to the budget (exactBudget), in held-out evaluations and in the plans the
            // run writes, so a run can never return a plan that keeps more than asked (e.g. when a too-large
            // learning rate drives every score of a kind to one value) and equal scores across layers (the plan
            // mapping's start) still give exactly the budget.
            if state.keepProbabilities.hardMaskExceedsBudget(keepRatios: rho, scope: o.budgetScope) {
                emit(.message("note: at iteration \(iteration) scores tie at the hard-mask threshold; ties are kept in layer order up to the budget"))
            }
            var isBest = false
            if atTarget, nll.isFinite, best == nil || nll < best!.meanNLL {
                best = BestHeldout(iteration: iteration, step: state.step, meanNLL: nll, keepProbabilities: state.keepProbabilities)
                isBest = true
            }
            let record = HeldoutLogRecord(iteration: iteration, step: state.step, keepRatio: rho.mlp, attentionKeepRatio: rho.attention,
                                          meanNLL: nll, sampledMeanNLL: sampledNLL, sampledMasks: sampledMasks > 0 ? sampledMasks : nil,
                                          best: isBest, perplexity: exp(nll), windows: data.heldout.count,
                                          keptParameters: Double(mask.keptParameters(in: config).prunable) / Double(max(denseParameters, 1)),
                                          seconds: Date().timeIntervalSince(t0))
            try log?.append(record)
            emit(.heldout(record))
        }

        var iteration = checkpoint.iteration
        var segmentStart = Date()
        while iteration < options.steps {
            if options.evalEvery > 0 ? iteration % options.evalEvery == 0 : iteration == 0 {
                try heldout(iteration: iteration)
            }
            let stepStart = Date()
            let batch = order.nextBatch(options.batchSize, cache: &permutation).map { data.calibration[$0] }
            // Every rank draws all K masks (so the generator advances identically), then computes the losses of its
            // own share of them.
            var samples: [MaskSample] = [], noises: [PerKindVectors] = []
            if let allocation = state.allocation, let ao = options.allocation {
                for _ in 0..<(o.samplesPerStep / 2) {
                    let pair = allocation.samplePair(options: ao, using: &maskRNG)
                    noises.append(pair.noise)
                    samples += [pair.plus, pair.minus]
                }
            } else {
                for _ in 0..<o.samplesPerStep { samples.append(state.keepProbabilities.sampleMask(using: &maskRNG)) }
            }
            var gatherSeconds = 0.0, forwardSeconds = 0.0
            // `local` is read after this rank's forwards: its seconds, summed over the ranks.
            let shared = try share.values(count: samples.count, local: { [gatherSeconds, forwardSeconds] }) { i in
                let t0 = Date()
                let prepared = try model.prepared(mask: samples[i].structureMask(config: config, granularity: granularity),
                                                  precision: options.compute ?? .f32)
                let t1 = Date()
                let value = try Self.meanNLL(prepared.tokenNLL(batch))
                forwardSeconds += Date().timeIntervalSince(t1)
                gatherSeconds += t1.timeIntervalSince(t0)
                return value
            }
            let losses = shared.values
            // Seconds spent by all ranks together, so the log reads the same as a one-rank run's.
            (gatherSeconds, forwardSeconds) = (shared.summedLocal[0], shared.summedLocal[1])
            let report: PolicyGradientStepReport
            if var allocation = state.allocation, let ao = options.allocation {
                let pairs = noises.indices.map { (noise: noises[$0], plus: losses[2 * $0], minus: losses[2 * $0 + 1]) }
                report = allocationStep(state: &state, allocation: &allocation, pairs: pairs, allocationOptions: ao, options: o)
            } else {
                report = policyGradientStep(state: &state, samples: samples, losses: losses, options: o, config: config,
                                            granularity: granularity)
            }
            iteration += 1

            let s = state.keepProbabilities
            let hard = s.hardMask(keepRatios: KeepRatios(attention: report.attentionKeepRatio, mlp: report.keepRatio),
                                  scope: o.budgetScope, config: config, granularity: granularity)
            func stats(_ v: [[Double]]) -> (mean: Double, zero: Double, one: Double) {
                var sum = 0.0, zeros = 0, ones = 0, n = 0
                for x in v.joined() { sum += x; n += 1; if x == 0 { zeros += 1 }; if x == 1 { ones += 1 } }
                let d = Double(max(n, 1))
                return (sum / d, Double(zeros) / d, Double(ones) / d)
            }
            let a = stats(s.attention), m = stats(s.mlp)
            let record = StepLogRecord(
                iteration: iteration - 1, step: state.step, skipped: report.skipped,
                sampleLosses: losses.map { $0.isNaN ? nil : $0 },
                meanLoss: report.skipped ? nil : report.meanLoss, baseline: report.baseline.isNaN ? nil : report.baseline,
                learningRate: PerKind(attention: report.attentionLearningRate, mlp: report.mlpLearningRate),
                keepRatio: report.keepRatio, meanScore: PerKind(attention: a.mean, mlp: m.mean),
                fractionAtZero: PerKind(attention: a.zero, mlp: m.zero), fractionAtOne: PerKind(attention: a.one, mlp: m.one),
                hardMaskKept: PerKind(attention: Double(hard.keptCount(.attention)) / Double(max(totalA, 1)),
                                      mlp: Double(hard.keptCount(.mlp)) / Double(max(totalM, 1))),
                hardMaskKeptParameters: Double(hard.keptParameters(in: config).prunable) / Double(max(denseParameters, 1)),
                gradientNorm: PerKind(attention: report.attentionGradientNorm, mlp: report.mlpGradientNorm),
                stepSeconds: Date().timeIntervalSince(stepStart), gatherSeconds: gatherSeconds, forwardSeconds: forwardSeconds,
                attentionKeepRatio: report.attentionKeepRatio, epoch: order.epoch)
            try log?.append(record)
            emit(.step(record, iterations: options.steps))

            if iteration % options.checkpointEvery == 0 || iteration == options.steps {
                let now = Date()
                elapsedBefore += now.timeIntervalSince(segmentStart)
                segmentStart = now
                if writesFiles {
                    let c = RunCheckpoint(modelSHA256: sha, iteration: iteration, state: state, maskGenerator: maskRNG,
                                          dataOrder: order, elapsedSeconds: elapsedBefore, best: best)
                    emit(.checkpoint(try store.write(c)))
                }
            }
        }
        try heldout(iteration: options.steps)

        let finalPlan = try self.plan(for: state.keepProbabilities)
        let returned = best ?? BestHeldout(iteration: options.steps, step: state.step, meanNLL: .nan,
                                           keepProbabilities: state.keepProbabilities)
        let plan = returned.iteration == options.steps ? finalPlan : try self.plan(for: returned.keepProbabilities)
        // Only rank 0 has the log; the other ranks return the same plans without the log-derived figures.
        let history = writesFiles ? RunLog.read(directory.log) : (steps: [], heldout: [])
        let finalNLL = history.heldout.last?.meanNLL
        let reason: String
        if best == nil {
            reason = "no held-out evaluation at the target keep ratios: the last iterate"
        } else if returned.iteration == options.steps {
            reason = String(format: "the last iterate has the lowest held-out NLL of the %d evaluations (%.4f)",
                            history.heldout.count, returned.meanNLL)
        } else if returned.iteration == 0 {
            reason = String(format: "no evaluation beat the starting plan (held-out NLL %.4f; last iterate %.4f): the starting plan",
                            returned.meanNLL, finalNLL ?? .nan)
        } else {
            reason = String(format: "iteration %d has the lowest held-out NLL (%.4f; last iterate %.4f)",
                            returned.iteration, returned.meanNLL, finalNLL ?? .nan)
        }
        if writesFiles {
            try writeFile(try ScoresFile(modelSHA256: sha, step: state.step, keepProbabilities: state.keepProbabilities).jsonData(),
                          to: directory.scores)
            try writeFile(try finalPlan.jsonData(), to: directory.finalPlan)
            try writeFile(try plan.jsonData(), to: directory.plan)
            let initialPlan = try? PrunePlan.decode(Data(contentsOf: directory.initialPlan))
            let svg = RunReportSVG.render(config: config, finalPlan: plan, initialPlan: initialPlan, steps: history.steps,
                                          heldout: history.heldout, title: "\((options.model.path as NSString).lastPathComponent): policy-gradient pruning, rate attention \(options.attentionRate ?? options.rate) / MLP \(options.rate), seed \(options.seed)")
            try writeFile(Data(svg.utf8), to: directory.report)
        }
        return RunSummary(plan: plan, finalPlan: finalPlan, returnedIteration: returned.iteration,
                          returnedHeldoutNLL: best?.meanNLL, returnedReason: reason,
                          initialHeldoutNLL: history.heldout.first { $0.iteration == 0 }?.meanNLL,
                          finalHeldoutNLL: finalNLL, steps: state.step,
                          seconds: Date().timeIntervalSince(started))
    }

    /// The hard mask of `scores` at `keepRatios` as plans and held-out evaluations see it: ties cut to the budget,
    /// then MLP channels aligned to `--channel-multiple` (channels granularity).
    func planMask(_ scores: KeepProbabilities, keepRatios: KeepRatios) -> StructureMask {
        let granularity = options.scoreGranularity
        let mask = scores.hardMask(keepRatios: keepRatios, scope: options.optimizer.budgetScope, config: model.config,
                                   granularity: granularity, exactBudget: true)
        guard granularity.prunesBothKinds, let multiple = options.channelMultiple, multiple > 1 else { return mask }
        return mask.aligningMLPChannels(to: multiple, priority: scores.mlp, config: model.config)
    }

    /// The checkpoint every rank starts from: rank 0 takes the newest good one (`CheckpointStore.latest`, which renames
    /// damaged files and explains the fallback in `messages`) and sends its bytes to the other ranks.
    /// - Returns: the checkpoint, its file name (on rank 0; "rank 0's checkpoint" elsewhere) and rank 0's messages.
    private func startingCheckpoint(_ store: CheckpointStore) throws -> (RunCheckpoint, String, [String]) {
        let config = model.config, sha = options.model.sha256
        if writesFiles {
            let (checkpoint, file, messages) = try store.latest { c in
                guard c.modelSHA256 == sha else { throw CheckpointFault("made for model sha256 \(c.modelSHA256.prefix(16))…") }
                try c.state.keepProbabilities.validate(against: config, granularity: self.options.scoreGranularity)
                guard c.dataOrder.blockCount == self.data.calibration.count else { throw CheckpointFault("data order over another block count") }
                guard c.iteration <= self.options.steps else { throw CheckpointFault("iteration \(c.iteration) beyond --steps \(self.options.steps)") }
            }
            // The other ranks receive the exact bytes rank 0 decoded (it alone writes the folder, so they are unchanged).
            if communicator.size > 1 { _ = try communicator.broadcast([UInt8](try Data(contentsOf: file)), from: 0) }
            return (checkpoint, file.lastPathComponent, messages)
        }
        let bytes = try communicator.broadcast([], from: 0)
        do {
            return (try CheckpointStore.decode(Data(bytes)), "rank 0's checkpoint", [])
        } catch {
            throw RunError.unreadable(path: "checkpoint received from rank 0", reason: "\(error)")
        }
    }

    /// Every rank must have built the same options (model, data, thread counts, ...) and run the same thread counts
    /// now: otherwise their forwards would disagree silently. Rank 0 sends its `options.json` and thread counts; a
    /// rank whose own differ stops the run, naming what differs.
    private func checkRanksAgree() throws {
        guard communicator.size > 1 else { return }
        let threads = [Double(Parallel.threads), Double(BLAS.threads)]
        if try communicator.broadcast(threads, from: 0) != threads {
            throw RunError.ranksDisagree(rank: communicator.rank, keys: ["POLICYPRUNE_THREADS / OPENBLAS_NUM_THREADS of this process"])
        }
        let mine = try options.jsonData()
        let root = try communicator.broadcast([UInt8](mine), from: 0)
        guard Data(root) != mine else { return }
        let a = (try? JSONSerialization.jsonObject(with: Data(root))) as? [String: Any] ?? [:]
        let b = (try? JSONSerialization.jsonObject(with: mine)) as? [String: Any] ?? [:]
        let keys = Set(a.keys).union(b.keys).sorted().filter { key in
            guard let x = a[key], let y = b[key] else { return true }
            func canonical(_ v: Any) -> Data? { try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]) }
            return canonical(x) != canonical(y)
        }
        throw RunError.ranksDisagree(rank: communicator.rank, keys: keys)
    }

    /// The hard mask of `scores` at the target keep ratio as a plan.
    func plan(for scores: KeepProbabilities) throws -> PrunePlan {
        let o = options.optimizer
        let mask = planMask(scores, keepRatios: o.targetKeepRatios)
        return try PrunePlan(mask: mask, config: model.config, method: "policy-gradient", options: options.planRecord,
                             seed: options.seed, requestedRate: 1 - o.targetKeepRatios.joint(config: model.config), modelSHA256: options.model.sha256,
                             calibrationSHA256: options.calibration.idsSHA256, toolVersion: options.toolVersion)
    }

    /// L(m): the mean token NLL over every target of the batch (B × (T − 1) values, spec §1.2), summed in order in
    /// Double. NaN when any token's NLL is NaN (the sample is then dropped, spec §1.6).
    public static func meanNLL(_ nll: [[Double]]) -> Double {
        var sum = 0.0, count = 0
        for row in nll { for v in row { sum += v }; count += row.count }
        return count == 0 ? .nan : sum / Double(count)
    }

    /// Mean token NLL of the model under `mask` over `windows`, in batches of the run's batch size.
    func meanNLL(mask: StructureMask, windows: [[Int]]) throws -> Double {
        let prepared = try model.prepared(mask: mask)
        var sum = 0.0, count = 0
        var start = 0
        while start < windows.count {
            let batch = Array(windows[start..<min(start + options.batchSize, windows.count)])
            for row in try prepared.tokenNLL(batch) { for v in row { sum += v }; count += row.count }
            start += batch.count
        }
        return count == 0 ? .nan : sum / Double(count)
    }

    private func writeFile(_ data: Data, to url: URL) throws {
        do { try AtomicFile.write(data, to: url) } catch {
            throw RunError.writeFailed(path: url.path, reason: "\(error)")
        }
    }
}
