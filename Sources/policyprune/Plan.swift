import ArgumentParser
import Checkpoints
import Corpora
import Essentials
import Foundation
import Kernels
import Pruning
import Transformer

/// `policyprune plan`: what a `prune` run with these options will keep, write, hold in memory and take, before it
/// runs. Memory and times are measured by a probe that does the run's own work once (load, data, one metric-init
/// batch, one step, one held-out evaluation); sizes come from exporting the uniform plan at the budget to a
/// temporary folder (with `--channel-multiple`, any plan at that budget has the same widths in all).
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dry run: structures and parameters a prune run keeps, exported sizes per dtype, peak memory, step time and ETA.",
        discussion: "Channels granularity (KV groups and MLP channels). A probe loads the model and the data, runs one batch of the metric init, one policy-gradient step (K forwards) and one held-out evaluation, and measures the process's peak memory; the export sizes come from the uniform plan at the budget. Options mean what they mean for `prune`.")

    @Option(help: "Model: llama2.c .bin, .gguf, or a Hugging Face directory.") var model: String
    @OptionGroup(title: "Data (as for prune)") var runData: PruneDataOptions
    @Option(help: "Pruning rate of both kinds (default 0.3).") var rate: Double = 0.3
    @Option(help: "Pruning rate of the attention structures in [0, 1) (default --rate).") var attentionRate: Double?
    @Option(help: "Pruning rate of the MLP structures in [0, 1) (default --rate).") var mlpRate: Double?
    @Option(help: "Every plan keeps a multiple of this many MLP channels per layer (1: off).") var channelMultiple = 32
    @Option(help: "Iterations of the run (ignored with --time-budget).") var steps = 1000
    @Option(help: ArgumentHelp("Derive the steps from a wall-clock budget, as prune does (e.g. 45m).", valueName: "duration"),
            transform: TimeBudget.init(parsing:))
    var timeBudget: TimeBudget?
    @Option(help: "Masks sampled per step.") var k = 2
    @Option(help: "Arithmetic of the sampled forwards (f32 or int8).") var compute: ComputePrecision = .f32
    @Option(help: "Initial scores: wanda-sp, magnitude, flap, random, uniform.") var `init`: InitMethod = .wandaSP
    @Option(help: "Calibration windows of a metric init.") var initWindows = 128
    @Option(help: "Tokens per calibration window of a metric init.") var initSeq = 1024
    @Option(help: "Held-out evaluation every N iterations (0: start and end only).") var evalEvery = 100
    @Option(help: "Sampled masks per held-out evaluation.") var heldoutSamples = 2
    @Option(help: "Export dtypes to size (comma-separated: f32, f16, q8_0; default: all three).", transform: { try Plan.dtypeList($0) })
    var dtypes: [WeightDType] = ExportFormat.gguf.dtypes
    @Flag(help: "Print the plan as JSON on stdout.") var json = false

    func validate() throws {
        for (name, v) in [("--rate", Optional(rate)), ("--attention-rate", attentionRate), ("--mlp-rate", mlpRate)] {
            if let v, !(v >= 0 && v < 1) { throw ValidationError("\(name) must be in [0, 1), got \(v)") }
        }
        guard k >= 2, runData.batch >= 1, runData.seq >= 2, steps >= 1 else { throw ValidationError("--k >= 2, --batch >= 1, --seq >= 2 and --steps >= 1") }
        guard channelMultiple >= 1 else { throw ValidationError("--channel-multiple must be at least 1, got \(channelMultiple)") }
        guard `init`.supports(.channels) else {
            throw ValidationError("--init must be wanda-sp, magnitude, flap, random or uniform, got \(`init`.rawValue)")
        }
        guard initWindows >= 1, initSeq >= 2, runData.evalWindows >= 1, evalEvery >= 0, heldoutSamples >= 0 else {
            throw ValidationError("--init-windows, --eval-windows >= 1; --init-seq >= 2; --eval-every, --heldout-samples >= 0")
        }
    }

    /// `--dtypes`: the GGUF storage types to size, in the order given; an unknown one is an error listing them.
    static func dtypeList(_ text: String) throws -> [WeightDType] {
        let known = ExportFormat.gguf.dtypes
        return try commaSeparated(text) { name in
            guard let dtype = WeightDType(rawValue: name), known.contains(dtype) else {
                throw ValidationError("unknown dtype '\(name)' (\(known.map(\.rawValue).joined(separator: ", ")))")
            }
            return dtype
        }
    }

    /// What the plan says, as printed and as JSON.
    struct Report: Encodable {
        struct Kind: Encodable { var structures: Int; var kept: Int; var parameters: Int; var keptParameters: Int }
        struct Size: Encodable { var dtype: String; var bytes: Int; var denseBytes: Int }
        var model: String
        var attention: Kind
        var mlp: Kind
        var totalParameters: Int
        var keptTotalParameters: Int
        var achieved: String
        var sizes: [Size]
        var peakMemoryBytes: Int
        var weightBytesF32: Int
        var initSeconds: Double
        var stepSeconds: Double
        var heldoutSeconds: Double
        var steps: Int
        var runSeconds: Double
    }

    func run() throws {
        let dataRoot = try DataRoot.resolve(explicit: runData.shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
        let loaded = try ModelOptions.load(path: model)
        let lm = loaded.model
        let config = lm.config
        let tokenizer = try loaded.loadTokenizer()
        let encode: (String) -> [Int] = { tokenizer.encode($0, addSpecialTokens: true) }
        let rates = KeepRatios(attention: 1 - (attentionRate ?? rate), mlp: 1 - (mlpRate ?? rate))

        // The uniform plan at the budget (with --channel-multiple, any plan at that budget has the same widths).
        let mask = StructureMask.uniform(config: config, keepRatios: rates, channelMultiple: channelMultiple)
        let plan = try PrunePlan(mask: mask, config: config, method: "uniform (plan)", options: [:], seed: 0,
                                 requestedRate: 1 - rates.joint(config: config), modelSHA256: "", calibrationSHA256: "",
                                 toolVersion: PolicyPrune.version)

        // The probe: the run's own work once, in this process.
        note("probe: data, one metric-init batch, one step of \(k) masks, one held-out evaluation")
        let (data, _, _) = try Prune.buildData(dataRoot: dataRoot, sequenceLength: runData.seq, heldoutWindows: runData.evalWindows, encode: encode)
        var initSeconds = 0.0
        if let metric = `init`.metric {
            var calibration: CalibrationData? = nil
            let probeWindows = min(initWindows, 8)
            if metric.needsCalibration {
                calibration = try CalibrationData.c4Train(dataRoot: dataRoot, count: probeWindows, length: initSeq, seed: 42, encode: encode)
            }
            let t0 = Date()
            _ = try MetricPruning.scores(model: lm, options: MetricPruningOptions(metric: metric, rate: 1 - rates.mlp,
                                                                                 seed: 42, attentionRate: 1 - rates.attention),
                                         calibration: calibration) { _, _ in }
            initSeconds = Date().timeIntervalSince(t0) * (metric.needsCalibration ? Double(initWindows) / Double(probeWindows) : 1)
        }
        // One step and one held-out evaluation, the probe `prune --time-budget` uses, on keep probabilities at the budget.
        let probabilities = KeepProbabilities(attention: config.layers.indices.map { l in
            Array(repeating: rates.attention, count: config.structureCount(.attention, layer: l)) },
                                              mlp: config.layers.indices.map { l in
            Array(repeating: rates.mlp, count: config.structureCount(.mlp, layer: l)) })
        let probe = try RunProbe.measure(model: lm, data: data, keepProbabilities: probabilities, samplesPerStep: k, batch: runData.batch,
                                         compute: compute, heldoutSampledMasks: heldoutSamples)
        let stepSeconds = probe.stepSeconds, heldoutSeconds = probe.evaluationSeconds
        let peak = probe.peakMemoryBytes

        var steps = self.steps
        if let timeBudget { steps = probe.steps(forBudget: timeBudget.seconds, evalEvery: evalEvery) }
        let runSeconds = probe.runSeconds(steps: steps, evalEvery: evalEvery, setupSeconds: initSeconds)

        // Sizes: export the uniform plan and the dense model to a temporary folder.
        // (After the memory probe: `lm.weights` rebuilds the canonical layout, a second copy.)
        let denseWeights = lm.weights
        let (prunedConfig, prunedWeights) = try plan.compact(config: config, weights: denseWeights)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("policyprune-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var sizes: [Report.Size] = []
        for dtype in dtypes {
            let name = dtype.rawValue
            func size(_ c: ModelConfig, _ w: ModelWeights, _ tag: String) throws -> Int {
                let out = scratch.appendingPathComponent("\(tag)-\(name).gguf").path
                let request = ExportRequest(config: c, weights: w, format: .gguf, dtype: dtype, tokenizer: loaded.tokenizer,
                                            name: tag, extraFiles: [:], provenance: [:])
                let result = try ModelExporter.export(request, to: out, force: true)
                defer { try? FileManager.default.removeItem(atPath: out) }
                return result.files.reduce(0) { $0 + $1.bytes }
            }
            sizes.append(.init(dtype: name, bytes: try size(prunedConfig, prunedWeights, "pruned"),
                               denseBytes: try size(config, denseWeights, "dense")))
        }

        let dense = config.parameterCount, kept = prunedConfig.parameterCount
        let report = Report(
            model: model,
            attention: .init(structures: config.structureCount(.attention), kept: mask.keptCount(.attention),
                             parameters: dense.attention, keptParameters: kept.attention),
            mlp: .init(structures: config.structureCount(.mlp), kept: mask.keptCount(.mlp), parameters: dense.mlp, keptParameters: kept.mlp),
            totalParameters: dense.total, keptTotalParameters: kept.total, achieved: plan.achievedRate.summary, sizes: sizes,
            peakMemoryBytes: peak, weightBytesF32: dense.total * 4, initSeconds: initSeconds, stepSeconds: stepSeconds,
            heldoutSeconds: heldoutSeconds, steps: steps, runSeconds: runSeconds)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        print("model        \(model)")
        let aligned = channelMultiple > 1 && config.layers.contains { $0.ffnDim % channelMultiple == 0 }
        print("kept         KV groups \(report.attention.kept) of \(report.attention.structures), MLP channels \(report.mlp.kept) of \(report.mlp.structures)\(aligned ? " (multiples of \(channelMultiple) per layer)" : "")")
        print("parameters   attention \(kept.attention) of \(dense.attention), MLP \(kept.mlp) of \(dense.mlp), all \(kept.total) of \(dense.total)")
        print("achieved     \(plan.achievedRate.summary) removed")
        for s in sizes {
            print("export       GGUF \(s.dtype.padding(toLength: 5, withPad: " ", startingAt: 0)) \(mib(s.bytes)) (dense \(mib(s.denseBytes)))")
        }
        print("memory       peak \(mib(peak)) (F32 weights \(mib(dense.total * 4)))")
        print(String(format: "time         init %@, step %.2f s (%d masks x %d x %d tokens, %@), held-out evaluation %.1f s every %d steps",
                     ProgressBar.clock(initSeconds), stepSeconds, k, runData.batch, runData.seq, compute.rawValue, heldoutSeconds, evalEvery))
        print("run          \(steps) steps, about \(ProgressBar.clock(runSeconds))\(timeBudget.map { " (time budget \($0.text))" } ?? "")")
    }
}
