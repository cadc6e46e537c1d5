import ArgumentParser
import Corpora
import Essentials
import Foundation
import Pruning
import Transformer

extension PruningMetric: ExpressibleByArgument {}
extension PruningGranularity: ExpressibleByArgument {}
extension MagnitudeNorm: ExpressibleByArgument {}
extension WandaSP.Variant: ExpressibleByArgument {}

/// `policyprune score`: a metric-only baseline plan (issue 4): score every structure, apply the hard mask at the rate,
/// and write the plan.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score structures with a metric and write a prune plan (hard mask at the rate).",
        discussion: """
            Granularities: channels = KV groups and MLP channels, each at keep ratio 1 - rate (wanda-sp, flap, \
            magnitude, random); heads = KV groups only; query-heads = query heads and MLP channels, a KV group \
            going with its last query head (wanda-sp; for one or few KV heads, e.g. Gemma 3); layers = whole \
            decoder layers (block-influence, ppl-drop, \
            magnitude, random). The rate is measured over attention+MLP parameters; the plan records the rate \
            achieved over attention+MLP and over the whole model.

            Scope: per-layer (the default) thresholds every layer's KV groups and channels on their own, so every \
            layer keeps 1 - rate of each (floor rule of spec §2.4: with 3 KV groups per layer, 30 % removes none, \
            so the achieved rate can fall short; it is printed). global applies one threshold per kind over all \
            layers, the official code's choice for its learned scores; on raw metric values it is harmful, because \
            Wanda-sp and FLAP scores grow with depth: on SmolLM2 at 30 % it empties the first layers' attention \
            (WikiText-2 PPL 49,000 against 128 per layer; RESULTS.md).
            """)

    @OptionGroup var model: ModelOptions
    @Option(help: "The metric that scores the structures.") var metric: PruningMetric
    @Option(help: "Pruning rate in (0, 1) (1 - keep ratio) of both kinds (channels), or of the granularity's units.") var rate: Double?
    @Option(help: "Pruning rate of the KV groups in [0, 1) (default --rate; 0 keeps attention whole). Channels only.") var attentionRate: Double?
    @Option(help: "Pruning rate of the MLP channels in [0, 1) (default --rate). Channels only.") var mlpRate: Double?

    /// The MLP (or only) rate and the attention rate when it differs.
    var rates: (mlp: Double, attention: Double?) {
        let mlp = mlpRate ?? rate ?? 0
        let attention = attentionRate ?? rate ?? 0
        return (mlp, attention == mlp ? nil : attention)
    }
    @Option(help: "Thresholds per layer (per-layer, the default) or over all layers (global; harmful on raw metrics, see below); joint is for prune only.")
    var scope: BudgetScope?
    @Option(help: "What to remove: channels, heads, query-heads or layers (default: layers for block-influence and ppl-drop, else channels).")
    var granularity: PruningGranularity?
    @Option(help: "Calibration windows (C4 train).") var calibrationWindows = 32
    @Option(help: "Tokens per calibration window.") var calibrationLength = 128
    @Option(help: "Seed of the calibration sample and of the random metric.") var seed: UInt64 = 0
    @Option(help: "Norm of the magnitude metric: l1 or l2.") var norm: MagnitudeNorm = .l2
    @Option(help: "Wanda-sp statistics: init-mask (layers < l carry their per-layer init mask, the official code) or dense.")
    var wandaVariant: WandaSP.Variant = .initMask
    @Flag(help: "Use the fixtures' calibration recipe (first 8 C4 documents, 8 x 128) instead of a seeded sample.")
    var fixtureCalibration = false
    @Option(help: "Windows per forward pass.") var batch = 8
    @Option(help: "Every layer keeps a multiple of this many MLP channels, the budget still met (quantized exports store 32-wide blocks; layers whose dense width is not a multiple are left as they are; 1: off).") var channelMultiple = 32
    @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
    @Option(help: "Where to write the plan (JSON, written atomically).") var out: String
    @Flag(help: "Print the plan summary as JSON on stdout.") var json = false
    @Option(help: "Also write the metric's order per KV group and channel (each layer's rank quantiles) as a scores file (channels granularity), so `prune --init-scores FILE --mapping plan` starts from this plan without scoring again.") var saveScores: String?

    /// `--scope`, per-layer when not given. (An optional rather than a default, which the help would print as the
    /// plan's spelling `per_layer`.)
    var resolvedScope: BudgetScope { scope ?? .perLayer }

    var resolvedGranularity: PruningGranularity {
        granularity ?? (metric.granularities.contains(.channels) ? .channels : .layers)
    }

    func validate() throws {
        guard rate != nil || attentionRate != nil || mlpRate != nil else {
            throw ValidationError("give --rate, or --attention-rate and/or --mlp-rate")
        }
        if let rate, !(rate > 0 && rate < 1) { throw ValidationError("--rate must be in (0, 1), got \(rate)") }
        for (name, v) in [("--attention-rate", attentionRate), ("--mlp-rate", mlpRate)] {
            if let v, !(v >= 0 && v < 1) { throw ValidationError("\(name) must be in [0, 1), got \(v)") }
        }
        if (attentionRate != nil || mlpRate != nil) && !resolvedGranularity.prunesBothKinds {
            throw ValidationError("--attention-rate and --mlp-rate need --granularity channels or query-heads; use --rate")
        }
        guard resolvedScope != .joint else {
            throw ValidationError("--scope joint is a policy-gradient budget (prune); a metric plan thresholds per-layer or global")
        }
        guard rates.mlp > 0 || (rates.attention ?? 0) > 0 else { throw ValidationError("nothing to prune: every rate is 0") }
        guard metric.granularities.contains(resolvedGranularity) else {
            throw ValidationError("--granularity \(resolvedGranularity.rawValue) is not scored by --metric \(metric.rawValue) "
                                  + "(it scores: \(metric.granularities.map(\.rawValue).joined(separator: ", ")))")
        }
        guard calibrationWindows >= 1 else { throw ValidationError("--calibration-windows must be at least 1, got \(calibrationWindows)") }
        guard calibrationLength >= 2 else { throw ValidationError("--calibration-length must be at least 2, got \(calibrationLength)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
        guard !out.isEmpty else { throw ValidationError("--out must name a file") }
    }

    /// What `--json` prints.
    struct Summary: Codable {
        var out: String
        var method: String
        var requestedRate: Double
        var achievedRate: AchievedRate
        var keptKVGroups: Int
        var keptChannels: Int
        var keptLayers: Int
        var seconds: Double
    }

    func run() throws {
        var options = MetricPruningOptions(metric: metric, rate: rates.mlp, granularity: resolvedGranularity, scope: resolvedScope,
                                           seed: seed, magnitudeNorm: norm, wandaVariant: wandaVariant, batchSize: batch,
                                           attentionRate: rates.attention)
        options.channelMultiple = channelMultiple
        try options.validate()
        let loaded = try model.load()
        let requested = resolvedGranularity.prunesBothKinds ? 1 - options.keepRatios.joint(config: loaded.model.config) : rates.mlp
        let config = loaded.model.config
        let t0 = Date()
        var calibration: CalibrationData? = nil
        if metric.needsCalibration {
            let tokenizer = try model.loadTokenizer(loaded)
            let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            let encode: (String) -> [Int] = { tokenizer.encode($0, addSpecialTokens: true) }
            calibration = fixtureCalibration
                ? try CalibrationData.fixtureRecipe(dataRoot: root, encode: encode)
                : try CalibrationData.c4Train(dataRoot: root, count: calibrationWindows, length: calibrationLength, seed: seed, encode: encode)
            note("calibration: \(calibration!.recipe), sha256 \(calibration!.sha256.prefix(16))…")
        }
        let bar = ProgressBar(metric.rawValue, total: config.layers.count)
        let scores = try MetricPruning.scores(model: loaded.model, options: options, calibration: calibration) { done, _ in
            bar.update(done, rate: Double(done) / max(Date().timeIntervalSince(t0), 1e-9), unit: "layer")
        }
        let modelHash = try modelSHA256(model.model)
        let plan = try MetricPruning.plan(scores: scores, config: config, options: options, calibration: calibration,
                                          modelSHA256: modelHash, toolVersion: "policyprune \(PolicyPrune.version)")
        try writeAtomically(try plan.jsonData(), to: out, option: "--out")
        if let saveScores {
            guard resolvedGranularity == .channels else { throw ValidationError("--save-scores needs --granularity channels") }
            let file = ScoresFile(rankingsOf: scores, modelSHA256: modelHash)
            try writeAtomically(try file.jsonData(), to: saveScores, option: "--save-scores")
        }
        let seconds = Date().timeIntervalSince(t0)
        let mask = plan.structureMask
        let keptLayers = mask.layers.filter { $0.attentionActive || $0.mlpActive }.count
        if plan.achievedRate.attentionMLP < requested - 0.01 {
            let why = resolvedGranularity == .queryHeads
                ? "a query head's KV group stays while another of its heads does, so removing a head frees only its q/o share"
                : "per-layer thresholds keep ceil(n · (1 - rate)) of a layer's n KV groups (ties kept), which with few groups per layer removes less"
            note(String(format: "note: achieved %.4f of attention+MLP, below the requested %.4f: ", plan.achievedRate.attentionMLP, requested) + why)
        }
        if json {
            try printJSON(Summary(out: out, method: plan.method, requestedRate: requested, achievedRate: plan.achievedRate,
                                  keptKVGroups: mask.keptCount(.attention), keptChannels: mask.keptCount(.mlp),
                                  keptLayers: keptLayers, seconds: seconds))
            return
        }
        print("plan             \(out)")
        print("metric           \(metric.rawValue), granularity \(resolvedGranularity.rawValue), scope \(resolvedGranularity == .layers ? "global" : resolvedScope.argument)")
        if resolvedGranularity == .queryHeads {
            let heads = zip(mask.layers, config.layers).reduce(0) { $0 + ($1.0.attentionActive ? $1.0.queryHeads($1.1).count : 0) }
            print("kept             \(heads)/\(config.layers.reduce(0) { $0 + $1.queryHeads }) query heads")
        }
        print("kept             \(mask.keptCount(.attention))/\(config.structureCount(.attention)) KV groups, "
              + "\(mask.keptCount(.mlp))/\(config.structureCount(.mlp)) MLP channels, \(keptLayers)/\(config.layers.count) layers")
        print(String(format: "rate             requested %.4f of attention+MLP; achieved %.4f (%d -> %d), %.4f of all parameters (%d -> %d)",
                     requested, plan.achievedRate.attentionMLP, plan.denseParameters.prunable, plan.keptParameters.prunable,
                     plan.achievedRate.wholeModel, plan.denseParameters.total, plan.keptParameters.total))
        print("achieved         \(plan.achievedRate.summary)")
        print(String(format: "time             %.1f s", seconds))
    }
}
