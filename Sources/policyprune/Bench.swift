import ArgumentParser
import Checkpoints
import Corpora
import Essentials
import Evaluation
import Foundation
import Kernels
import Pruning
import Tokenization
import Transformer

/// `policyprune bench`: forward-pass throughput next to the machine's own GEMM rates on the same shapes, (with
/// `--compute int8`) the int8 forward beside the Float32 one, and (with `--pg-step`) one policy-gradient step by
/// part, all measured in the same run so every ratio is meaningful on any machine.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark the forward pass against sgemm on the same shapes, int8 against f32, and (--pg-step) one policy-gradient step by part (prints ratio tables).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var planOptions: PlanOptions
    @Option(help: "Sequences per batch.") var batch = 8
    @Option(help: "Tokens per sequence.") var seq = 128
    @Option(help: "Timed repetitions (the best is reported).") var repeats = 3
    @Option(help: "Also time a masked forward keeping this fraction of KV groups and MLP channels per layer (0 = skip).")
    var keep: Double = 0.5
    @Option(help: "Projection arithmetic to time beside f32: f32 (only f32) or int8 (f32 and int8 in the same run; needs oneDNN).")
    var compute: ComputePrecision = .f32
    @Option(help: "With --compute int8: also compare int8 and f32 NLL on the first N WikiText-2 windows of --seq tokens (0 = skip).")
    var nllWindows = 0
    @Option(help: "With --nll-windows: also run f32 on weights rounded to each of these (comma-separated: fp16, bf16, int8 = the int8 forward's weight codes, dequantized), to show how far any rounding of that size moves the same windows.",
            transform: { text in try commaSeparated(text) { name in
                guard let r = WeightRounding(rawValue: name) else {
                    throw ValidationError("unknown weight rounding '\(name)' (choose from \(WeightRounding.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return r
            } })
    var nllWeightRounding: [WeightRounding] = []
    @Option(help: "With --compute int8: smooth the int8 projections (SmoothQuant) with activation maxima from the first N C4 validation windows (0 = no smoothing).")
    var int8Calibration = 0
    @Option(help: "SmoothQuant migration strength for --int8-calibration.") var int8Alpha: Float = 0.5
    @Flag(help: "Also time one policy-gradient step by part (sample K masks from uniform keep probabilities --keep, gather, K forwards of --batch x --seq, estimator and projection), in f32 and with --compute int8 also in int8.")
    var pgStep = false
    @Option(help: "With --pg-step: masks (forwards) per step, K ≥ 2.") var k = 2
    @Flag(help: "Also time the tokenizer on the WikiText-2 test text (needs the shared data).") var tokenizer = false
    @Flag(help: "Instead of benchmarking: time OpenBLAS against oneDNN's sgemm on this model's F32 GEMM shapes (--batch x --seq rows) and save the winner per shape as this machine's sgemm calibration ($POLICYPRUNE_SGEMM_CALIBRATION, else ~/.cache/policyprune/sgemm-calibration.json), which every later F32 forward on this machine follows (needs oneDNN).")
    var calibrateSgemm = false
    @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
    @Flag(help: "Print the measurements as JSON on stdout instead of tables.") var json = false

    func validate() throws {
        guard batch >= 1, seq >= 2, repeats >= 1 else { throw ValidationError("--batch, --repeats must be ≥ 1 and --seq ≥ 2") }
        guard keep >= 0 && keep <= 1 else { throw ValidationError("--keep must be in [0, 1], got \(keep)") }
        if calibrateSgemm && (pgStep || compute != .f32 || tokenizer || nllWindows > 0) {
            throw ValidationError("--calibrate-sgemm only calibrates; run bench again for --pg-step, --compute, --tokenizer or --nll-windows")
        }
        if pgStep {
            guard k >= 2 else { throw ValidationError("--k must be at least 2 (the code estimator's leave-one-out needs two samples), got \(k)") }
            guard keep > 0 && keep < 1 else { throw ValidationError("--pg-step samples from keep probabilities --keep, which must be in (0, 1), got \(keep)") }
        }
        guard nllWindows >= 0 else { throw ValidationError("--nll-windows must be ≥ 0, got \(nllWindows)") }
        if (nllWindows > 0 || int8Calibration > 0) && compute != .int8 { throw ValidationError("--nll-windows and --int8-calibration need --compute int8") }
        if !nllWeightRounding.isEmpty && nllWindows == 0 { throw ValidationError("--nll-weight-rounding adds rows to the --nll-windows comparison; give --nll-windows N and --compute int8") }
        if nllWeightRounding.contains(.int8) && int8Calibration > 0 {
            throw ValidationError("--nll-weight-rounding int8 rounds the unsmoothed weights, not those of --int8-calibration; run them separately")
        }
        if planOptions.plan != nil && nllWindows == 0 { throw ValidationError("--plan adds a row to the --nll-windows comparison; give --nll-windows N and --compute int8") }
        guard int8Calibration >= 0, int8Alpha >= 0, int8Alpha <= 1 else { throw ValidationError("--int8-calibration must be ≥ 0 and --int8-alpha in [0, 1]") }
    }

    /// One GEMM shape of the forward, timed with each available kernel.
    struct GEMMRow: Codable {
        var shape: String, m: Int, n: Int, k: Int
        /// Occurrences per forward pass.
        var count: Int
        var openblasSgemmGFLOPS: Double
        var dnnlSgemmGFLOPS: Double?
        var dnnlU8S8S32GOPS: Double?
    }

    /// One forward variant: seconds (best of `repeats`) per precision.
    struct ForwardRow: Codable {
        var name: String
        var flops: Double
        var f32Seconds: Double
        var int8Seconds: Double?
        var f32TokensPerSecond: Double
        var int8TokensPerSecond: Double?
        /// f32 time / int8 time, measured in this run.
        var int8SpeedUp: Double?
        /// This variant's f32 time over the dense f32 time of the same kind (whole pass or stack).
        var f32TimeVsDense: Double
    }

    /// int8 vs f32 NLL on real windows.
    struct NLLRow: Codable {
        var name: String
        var windows: Int
        var f32MeanNLL: Double
        var int8MeanNLL: Double
        /// max over windows of |int8 − f32| / f32 (per-window mean NLL).
        var maxRelativeWindowDifference: Double
        var meanRelativeWindowDifference: Double
        /// Windows whose |int8 − f32| / f32 exceeds 1 %.
        var windowsOverOnePercent: Int
        /// The window of `maxRelativeWindowDifference` (0-based).
        var worstWindow: Int?
        /// The same comparison for f32 forwards on rounded weights (`--nll-weight-rounding`), in the order given.
        var weightRounding: [RoundingRow]
    }

    /// f32 on rounded weights against f32, on the windows of an `NLLRow`.
    struct RoundingRow: Codable {
        var rounding: WeightRounding
        var meanNLL: Double
        /// Against the f32 windows (threshold 1 %).
        var movement: WindowMovement
    }

    struct Report: Codable {
        var model: String
        var batch: Int, seq: Int, repeats: Int, keep: Double
        var openblas: String, openblasCore: String, threads: Int
        var dnnl: String?
        /// The library F32 models' GEMMs go through (`F32GEMM`), and why.
        var f32GEMM: String, f32GEMMReason: String
        var loadAverage: String
        var gemm: [GEMMRow]
        var sgemmFLOPWeightedGFLOPS: Double
        var forward: [ForwardRow]
        var nll: [NLLRow]
        var denseGFLOPPerPass: Double
        /// int8 smoothing: calibration windows (C4 validation) and α, nil when none.
        var int8CalibrationWindows: Int?
        var int8Alpha: Float?
        /// One policy-gradient step by part (`--pg-step`), nil without it.
        var pgStep: StepReport?
    }

    func run() throws {
        let loaded = try model.load()
        let lm = loaded.model
        let cfg = lm.config
        note("loaded \(loaded.path) in \(String(format: "%.2f", loaded.seconds)) s")
        if calibrateSgemm { return try calibrate(lm) }
        let int8 = compute == .int8
        if int8 { try DNNL.load() }   // typed error naming libdnnl when it is missing
        if int8 && int8Calibration > 0 {
            let tok = try model.loadTokenizer(loaded)
            let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            let tokens = tok.encode(try Dataset.c4.text(dataRoot: root), addSpecialTokens: true)
            let windows = try EvalWindows(tokens: tokens, context: seq, limit: int8Calibration, source: "c4").windows
            try lm.calibrateInt8(on: windows, alpha: int8Alpha)
        }
        let dnnl = DNNL.isAvailable
        var report = Report(model: model.model, batch: batch, seq: seq, repeats: repeats, keep: keep,
                            openblas: BLAS.libraryPath, openblasCore: BLAS.coreName, threads: Parallel.threads,
                            dnnl: dnnl ? "\(DNNL.libraryPath) \(DNNL.version) (\(DNNL.usesOpenMP ? "OpenMP" : "own") threads: \(DNNL.threads), VNNI: \(DNNL.cpuHasVNNI ? "yes" : "no"))" : nil,
                            f32GEMM: F32GEMM.choice.backend.rawValue, f32GEMMReason: F32GEMM.choice.reason,
                            loadAverage: Self.loadAverage(), gemm: [], sgemmFLOPWeightedGFLOPS: 0, forward: [], nll: [],
                            denseGFLOPPerPass: lm.dense.flops(batch: batch, sequence: seq) / 1e9)
        if !json {
            print("OpenBLAS: \(BLAS.libraryPath)")
            print("OpenBLAS core: \(BLAS.coreName) (core type chosen by policyprune: \(BLAS.chosenCoreType ?? "none, OPENBLAS_CORETYPE set by environment"))")
            print("oneDNN: \(report.dnnl ?? "not available (apt-get install libdnnl-dev)")")
            print("F32 GEMMs of the forward: \(report.f32GEMM) (\(report.f32GEMMReason))")
            print("threads: OpenBLAS \(BLAS.threads), kernels \(Parallel.threads); load average at start: \(report.loadAverage)")
        }
        if tokenizer { try benchTokenizer(loaded) }
        let n = batch * seq
        var rng = Xoshiro256(seed: 1)
        let windows = (0..<batch).map { _ in (0..<seq).map { _ in Int(rng.next() % UInt64(cfg.vocabSize)) } }

        // GEMMs on the forward's own shapes, weighted by how often each occurs.
        let l0 = cfg.layers[0]
        let d = cfg.hiddenSize
        let shapes: [(String, Int, Int, Int, Int)] = [
            ("qkv", n, l0.queryDim + 2 * l0.kvDim, d, cfg.layers.count),
            ("o", n, d, l0.queryDim, cfg.layers.count),
            ("gate+up", n, 2 * l0.ffnDim, d, cfg.layers.count),
            ("down", n, d, l0.ffnDim, cfg.layers.count),
            ("head (256-row blocks)", 256, cfg.vocabSize, d, n / 256),
        ]
        var gemmFlops = 0.0, gemmSeconds = 0.0
        for (name, m, nn, k, count) in shapes {
            let flops = 2.0 * Double(m * nn * k)
            let reps = max(3, min(200, Int(2e10 / flops)))
            let a = [Float](repeating: 0.01, count: m * k)
            let b = [Float](repeating: 0.02, count: nn * k)
            var c = [Float](repeating: 0, count: m * nn)
            func rate(_ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    kernel(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let t0 = Date()
                    for _ in 0..<reps { kernel(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!) }
                    return flops * Double(reps) / Date().timeIntervalSince(t0)
                } } }
            }
            let openblas = rate { BLAS.gemm(m: m, n: nn, k: k, a: $0, b: $1, transposeB: true, c: $2) }
            var row = GEMMRow(shape: name, m: m, n: nn, k: k, count: count, openblasSgemmGFLOPS: openblas / 1e9)
            if dnnl {
                row.dnnlSgemmGFLOPS = rate { DNNL.sgemm(m: m, n: nn, k: k, a: $0, b: $1, transposeB: true, c: $2) } / 1e9
                let qa = [UInt8](repeating: 3, count: m * k), qb = [Int8](repeating: -2, count: nn * k)
                var qc = [Int32](repeating: 0, count: m * nn)
                row.dnnlU8S8S32GOPS = qa.withUnsafeBufferPointer { ap in qb.withUnsafeBufferPointer { bp in qc.withUnsafeMutableBufferPointer { cp in
                    DNNL.gemmU8S8S32(m: m, n: nn, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!)
                    let t0 = Date()
                    for _ in 0..<reps { DNNL.gemmU8S8S32(m: m, n: nn, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!) }
                    return flops * Double(reps) / Date().timeIntervalSince(t0) / 1e9
                } } }
            }
            report.gemm.append(row)
            gemmFlops += flops * Double(count)
            gemmSeconds += flops / openblas * Double(count)
        }
        let sgemmRate = gemmFlops / gemmSeconds
        report.sgemmFLOPWeightedGFLOPS = sgemmRate / 1e9

        /// f32 and int8 timed alternately (best of `repeats` each after one warm-up), so a change in the machine's
        /// load during the run hits both.
        func measure(_ name: String, mask: StructureMask?, stack: Bool, dense: ForwardRow?) throws -> ForwardRow {
            let f32 = try lm.prepared(mask: mask)
            let q = int8 ? try lm.prepared(mask: mask, precision: .int8) : nil
            let flops = f32.flops(batch: batch, sequence: seq, includeHead: !stack)
            func once(_ m: PreparedModel) throws -> Double {
                let t0 = Date()
                if stack { try m.observe(windows, observer: NoObserver()) } else { _ = try m.tokenNLL(windows) }
                return Date().timeIntervalSince(t0)
            }
            _ = try once(f32)
            if let q { _ = try once(q) }
            var f32Seconds = Double.infinity, int8Seconds = Double.infinity
            for _ in 0..<repeats {
                f32Seconds = min(f32Seconds, try once(f32))
                if let q { int8Seconds = min(int8Seconds, try once(q)) }
            }
            var row = ForwardRow(name: name, flops: flops, f32Seconds: f32Seconds, f32TokensPerSecond: Double(n) / f32Seconds,
                                 f32TimeVsDense: f32Seconds / (dense?.f32Seconds ?? f32Seconds))
            if q != nil {
                row.int8Seconds = int8Seconds
                row.int8TokensPerSecond = Double(n) / int8Seconds
                row.int8SpeedUp = f32Seconds / int8Seconds
            }
            return row
        }
        let mask = keep > 0 && keep < 1 ? Self.keepMask(cfg, keep: keep) : nil
        let maskLabel = String(format: "masked, %.0f%% of groups/channels kept", keep * 100)
        let dense = try measure("dense", mask: nil, stack: false, dense: nil)
        report.forward.append(dense)
        if let mask {
            report.forward.append(try measure(maskLabel, mask: mask, stack: false, dense: dense))
            // The same two models without the output head, which no mask prunes (int8 in int8 models, else Float32).
            let denseStack = try measure("dense, decoder stack only", mask: nil, stack: true, dense: nil)
            report.forward.append(denseStack)
            report.forward.append(try measure(maskLabel.replacingOccurrences(of: "masked", with: "masked stack"), mask: mask, stack: true, dense: denseStack))
        }
        if int8 && nllWindows > 0 {
            let tok = try model.loadTokenizer(loaded)
            let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            let tokens = tok.encode(try Dataset.wikitext2.text(dataRoot: root), addSpecialTokens: true)
            let eval = try EvalWindows(tokens: tokens, context: seq, limit: nllWindows, source: "wikitext2").windows
            var rows: [(String, StructureMask?)] = [("dense", nil)]
            if let mask { rows.append((maskLabel, mask)) }
            if let planMask = try planOptions.structureMask(loaded, modelPath: model.model) {
                rows.append(("plan \(URL(fileURLWithPath: planOptions.plan ?? "").lastPathComponent)", planMask))
            }
            // One rounded copy of the model at a time (a second set of Float32 weights).
            var rounded: [[[Double]]] = rows.map { _ in [] }
            for rounding in nllWeightRounding {
                let copy = try LanguageModel(config: cfg, weights: rounding.applied(to: lm.weights, config: cfg))
                for (i, (_, m)) in rows.enumerated() { rounded[i].append(try Self.windowMeans(try copy.prepared(mask: m), eval, batch: batch)) }
            }
            for (i, (name, m)) in rows.enumerated() {
                let f32 = try Self.windowMeans(try lm.prepared(mask: m), eval, batch: batch)
                let q = try Self.windowMeans(try lm.prepared(mask: m, precision: .int8), eval, batch: batch)
                let moved = WindowMovement(reference: f32, other: q)
                let roundingRows = zip(nllWeightRounding, rounded[i]).map { rounding, means in
                    RoundingRow(rounding: rounding, meanNLL: means.reduce(0, +) / Double(means.count),
                                movement: WindowMovement(reference: f32, other: means))
                }
                report.nll.append(NLLRow(name: name, windows: eval.count, f32MeanNLL: f32.reduce(0, +) / Double(f32.count),
                                         int8MeanNLL: q.reduce(0, +) / Double(q.count), maxRelativeWindowDifference: moved.maxRelative,
                                         meanRelativeWindowDifference: moved.meanRelative, windowsOverOnePercent: moved.windowsOverThreshold,
                                         worstWindow: moved.worstWindow, weightRounding: roundingRows))
            }
        }
        if int8 && int8Calibration > 0 { report.int8CalibrationWindows = int8Calibration; report.int8Alpha = int8Alpha }
        if pgStep { report.pgStep = try measureStep(lm, windows: windows) }
        if json { try printJSON(report); return }
        printTables(report, sgemmRate: sgemmRate, denseFlops: dense.flops)
    }

    private func printTables(_ report: Report, sgemmRate: Double, denseFlops: Double) {
        print("")
        print(pad("shape", 22) + pad("m x n x k", 22) + pad("OpenBLAS sgemm GFLOP/s", 24)
              + (report.dnnl != nil ? pad("dnnl_sgemm GFLOP/s", 20) + pad("dnnl u8s8s32 GOP/s", 20) : ""))
        for g in report.gemm {
            print(pad(g.shape, 22) + pad("\(g.m) x \(g.n) x \(g.k)", 22) + pad(String(format: "%.1f", g.openblasSgemmGFLOPS), 24)
                  + (g.dnnlSgemmGFLOPS.map { pad(String(format: "%.1f", $0), 20) } ?? "")
                  + (g.dnnlU8S8S32GOPS.map { pad(String(format: "%.1f", $0), 20) } ?? ""))
        }
        print(String(format: "OpenBLAS sgemm on the forward's shapes (FLOP-weighted): %.1f GFLOP/s", sgemmRate / 1e9))
        print("")
        print(pad("f32 forward (\(batch) x \(seq) tokens)", 44) + pad("seconds", 10) + pad("tokens/s", 10) + pad("GFLOP/s", 10)
              + pad("vs sgemm", 10) + pad("time vs dense", 14))
        for r in report.forward {
            print(pad(r.name, 44) + pad(String(format: "%.3f", r.f32Seconds), 10) + pad(String(format: "%.0f", r.f32TokensPerSecond), 10)
                  + pad(String(format: "%.1f", r.flops / r.f32Seconds / 1e9), 10) + pad(String(format: "%.2f", r.flops / r.f32Seconds / sgemmRate), 10)
                  + pad(String(format: "%.3f", r.f32TimeVsDense), 14))
        }
        if compute == .int8 {
            print("")
            print(pad("int8 vs f32 (same run)", 44) + pad("f32 s", 9) + pad("int8 s", 9) + pad("f32 tok/s", 11) + pad("int8 tok/s", 11)
                  + pad("int8 speed-up", 14))
            for r in report.forward {
                print(pad(r.name, 44) + pad(String(format: "%.3f", r.f32Seconds), 9) + pad(String(format: "%.3f", r.int8Seconds ?? .nan), 9)
                      + pad(String(format: "%.0f", r.f32TokensPerSecond), 11) + pad(String(format: "%.0f", r.int8TokensPerSecond ?? .nan), 11)
                      + pad(String(format: "%.2fx", r.int8SpeedUp ?? .nan), 14))
            }
        }
        if !report.nll.isEmpty {
            print("")
            print(pad("NLL, first WikiText-2 windows", 44) + pad("windows", 9) + pad("f32 mean", 10) + pad("int8 (or rounded) mean", 24)
                  + pad("max |rel diff| per window (window)", 36) + pad("mean |rel diff|", 16) + pad("windows > 1 %", 14))
            for r in report.nll {
                print(pad(r.name, 44) + pad("\(r.windows)", 9) + pad(String(format: "%.4f", r.f32MeanNLL), 10) + pad(String(format: "%.4f", r.int8MeanNLL), 24)
                      + pad(String(format: "%.3f%% (%d)", 100 * r.maxRelativeWindowDifference, r.worstWindow ?? -1), 36)
                      + pad(String(format: "%.3f%%", 100 * r.meanRelativeWindowDifference), 16) + pad("\(r.windowsOverOnePercent)", 14))
                for w in r.weightRounding {
                    print(pad("  f32, weights rounded to \(w.rounding)", 44) + pad("\(r.windows)", 9) + pad(String(format: "%.4f", r.f32MeanNLL), 10)
                          + pad(String(format: "%.4f", w.meanNLL), 24) + pad(String(format: "%.3f%% (%d)", 100 * w.movement.maxRelative, w.movement.worstWindow ?? -1), 36)
                          + pad(String(format: "%.3f%%", 100 * w.movement.meanRelative), 16) + pad("\(w.movement.windowsOverThreshold)", 14))
                }
            }
        }
        if let step = report.pgStep { printStep(step) }
        print(String(format: "\ndense forward FLOPs per pass: %.1f GFLOP; load average at the end: %@", denseFlops / 1e9, Self.loadAverage()))
    }

    /// Keeps exactly `keep` of all KV groups (layers alternate between floor and ceil when a layer's share is
    /// fractional, e.g. 1 or 2 of SmolLM2's 3) and of every layer's channels, so the kept fraction of the
    /// attention+MLP parameters is `keep`, not rounded up per layer.
    static func keepMask(_ cfg: ModelConfig, keep: Double) -> StructureMask {
        let totalGroups = cfg.layers.reduce(0) { $0 + $1.kvHeads }
        var extra = Int((Double(totalGroups) * keep).rounded()) - cfg.layers.reduce(0) { $0 + Int(Double($1.kvHeads) * keep) }
        return StructureMask(layers: cfg.layers.map { spec in
            var groups = Int(Double(spec.kvHeads) * keep)
            if extra > 0 && groups < spec.kvHeads { groups += 1; extra -= 1 }
            return StructureMask.Layer(keptKVGroups: Array(0..<groups), keptChannels: Array(0..<Int(Double(spec.ffnDim) * keep)))
        })
    }

    /// Each window's mean NLL, `batch` windows per forward.
    static func windowMeans(_ model: PreparedModel, _ windows: [[Int]], batch: Int) throws -> [Double] {
        var means = [Double]()
        for start in stride(from: 0, to: windows.count, by: batch) {
            for row in try model.tokenNLL(Array(windows[start..<min(windows.count, start + batch)])) {
                means.append(row.reduce(0, +) / Double(row.count))
            }
        }
        return means
    }

    /// The 1-, 5- and 15-minute load averages (/proc/loadavg), so a reader can judge how quiet the machine was.
    static func loadAverage() -> String {
        guard let s = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return s.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// Tokenises the whole WikiText-2 test text (rows joined with "\n\n", as for perplexity), best of `repeats`.
    private func benchTokenizer(_ loaded: ModelOptions.Loaded) throws {
        let tok = try model.loadTokenizer(loaded)
        let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
        let text = try Dataset.wikitext2.text(dataRoot: root)
        let bytes = text.utf8.count
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let t0 = Date()
            count = tok.encode(text, addSpecialTokens: true).count
            best = min(best, Date().timeIntervalSince(t0))
        }
        if json { return }
        print("")
        print(String(format: "tokenizer: WikiText-2 test, %d bytes -> %d tokens in %.3f s (best of %d): %.2f MB/s, %.0f tokens/s",
                     bytes, count, best, max(1, repeats), Double(bytes) / best / 1e6, Double(count) / best))
    }

    func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}

/// A forward observer that ignores everything (times the decoder stack alone).
private final class NoObserver: ForwardObserver {
    func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {}
}

extension Bench {
    /// `--calibrate-sgemm`: measures `F32GEMMCalibration` on the model's shapes and writes it (temporary file, then
    /// rename) where `F32GEMM` looks for it.
    private func calibrate(_ lm: LanguageModel) throws {
        let cfg = lm.config
        try DNNL.load()   // typed error naming libdnnl when it is missing
        let layers = cfg.layers.map { (qkv: $0.queryDim + 2 * $0.kvDim, query: $0.queryDim, ffn: $0.ffnDim, headDim: $0.headDim) }
        let shapes = F32GEMMCalibration.modelShapes(hidden: cfg.hiddenSize, vocab: cfg.vocabSize, layers: layers,
                                                    tokens: batch * seq, sequence: seq)
        let load = Self.loadAverage()
        note("calibrating sgemm on \(shapes.count) shapes, best of \(repeats) each (load average \(load))")
        if let busy = Double(load.split(separator: " ").first ?? ""), busy > 0.5 * Double(ProcessInfo.processInfo.activeProcessorCount) {
            note("note: the machine is busy (load average \(load)): a calibration measured under load can choose badly; run it again on a quiet machine")
        }
        let perShape = try F32GEMMCalibration.measure(shapes: shapes, repeats: repeats)
        let calibration = try checkWithForwards(perShape, lm: lm)
        let url = F32GEMMCalibration.defaultURL
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(try encoder.encode(calibration), to: url)
        } catch {
            // Foundation wraps the POSIX error; its code says it best ("No such file or directory").
            let underlying = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? Error).map { $0 as NSError }
            let reason = underlying.flatMap { $0.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32($0.code))) : nil }
                ?? error.localizedDescription
            throw PlanFileError.unwritable(option: "--calibrate-sgemm (POLICYPRUNE_SGEMM_CALIBRATION)", path: url.path, reason: reason)
        }
        if json {
            print(String(decoding: try encoder.encode(calibration), as: UTF8.self))
        } else {
            print("machine: \(calibration.machine)")
            print(pad("shape m x n x k", 26) + pad("B", 4) + pad("OpenBLAS GFLOP/s", 18) + pad("dnnl_sgemm GFLOP/s", 20) + "chosen")
            for e in calibration.entries {
                print(pad("\(e.m) x \(e.n) x \(e.k)", 26) + pad(e.transposeB ? "T" : "N", 4)
                      + pad(String(format: "%.1f", e.openblasGFLOPS), 18) + pad(String(format: "%.1f", e.dnnlGFLOPS), 20) + e.backend.rawValue)
            }
            let seconds = (calibration.forwardSeconds ?? [:]).sorted { $0.key < $1.key }
                .map { String(format: "%@ %.3f s", $0.key, $0.value) }.joined(separator: ", ")
            print("whole forwards (dense + half kept, best of \(repeats)): \(seconds); the entries follow: \(calibration.decision ?? "")")
            print("saved \(url.path) (\(calibration.summary)); F32 GEMMs on this machine now follow it (POLICYPRUNE_SGEMM overrides it; delete the file to go back to the rule)")
        }
    }

    /// Times a dense and a half-kept forward of `--batch` × `--seq` random tokens under the per-shape table, all
    /// OpenBLAS and all oneDNN (alternating, best of `--repeats` after a warm-up) and returns the table whose
    /// backends follow the fastest. Restores `F32GEMM`'s state before returning.
    private func checkWithForwards(_ perShape: F32GEMMCalibration, lm: LanguageModel) throws -> F32GEMMCalibration {
        let saved = (F32GEMM.table, F32GEMM.usesDNNL)
        defer { (F32GEMM.table, F32GEMM.usesDNNL) = saved }
        var rng = Xoshiro256(seed: 1)
        let windows = (0..<batch).map { _ in (0..<seq).map { _ in Int(rng.next() % UInt64(lm.config.vocabSize)) } }
        let half = try lm.prepared(mask: Self.keepMask(lm.config, keep: 0.5))
        let candidates: [(name: String, table: F32GEMMCalibration?, dnnl: Bool)] =
            [("per shape", perShape, false), ("openblas", nil, false), ("dnnl", nil, true)]
        var best = [String: Double]()
        for repetition in 0...max(1, repeats) {
            for candidate in candidates {
                (F32GEMM.table, F32GEMM.usesDNNL) = (candidate.table, candidate.dnnl)
                let start = Date()
                _ = try lm.dense.tokenNLL(windows)
                _ = try half.tokenNLL(windows)
                let seconds = Date().timeIntervalSince(start)
                if repetition > 0 { best[candidate.name] = min(best[candidate.name] ?? .infinity, seconds) }
            }
        }
        let winner = candidates.min { best[$0.name]! < best[$1.name]! }!
        var result: F32GEMMCalibration
        switch winner.name {
        case "per shape": result = perShape
        case "dnnl": result = perShape.uniform(.dnnl)
        default: result = perShape.uniform(.openblas)
        }
        result.forwardSeconds = best
        result.decision = winner.name == "per shape" ? "per shape" : "all \(winner.name) (its forwards were the fastest)"
        return result
    }
}
