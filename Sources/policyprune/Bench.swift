import ArgumentParser
import Checkpoints
import Corpora
import Foundation
import Kernels
import Transformer

/// `policyprune bench`: forward-pass throughput next to the machine's own sgemm rate on the same shapes,
/// measured in the same run, so the ratio is meaningful on any machine.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark the forward pass against OpenBLAS sgemm on the same shapes (prints a ratio table).")

    @OptionGroup var model: ModelOptions
    @Option(help: "Sequences per batch.") var batch = 8
    @Option(help: "Tokens per sequence.") var seq = 128
    @Option(help: "Timed repetitions (the best is reported).") var repeats = 3
    @Option(help: "Also time a masked forward keeping this fraction of KV groups and MLP channels per layer (0 = skip).")
    var keep: Double = 0.5
    @Flag(help: "Also time the tokenizer on the WikiText-2 test text (needs the shared data).") var tokenizer = false
    @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?

    func run() throws {
        let loaded = try model.load()
        let lm = loaded.model
        let cfg = lm.config
        note("loaded \(loaded.checkpoint.path) in \(String(format: "%.2f", loaded.seconds)) s")
        print("OpenBLAS: \(BLAS.libraryPath)")
        print("OpenBLAS core: \(BLAS.coreName) (core type chosen by policyprune: \(BLAS.chosenCoreType ?? "none, OPENBLAS_CORETYPE set by environment"))")
        print("threads: OpenBLAS \(BLAS.threads), kernels \(Parallel.threads)")
        if tokenizer { try benchTokenizer(loaded.checkpoint) }
        let n = batch * seq
        var rng = Xoshiro256(seed: 1)
        let windows = (0..<batch).map { _ in (0..<seq).map { _ in Int(rng.next() % UInt64(cfg.vocabSize)) } }

        // sgemm on the forward's own shapes, weighted by how often each occurs.
        let l0 = cfg.layers[0]
        let d = cfg.hiddenSize
        let shapes: [(String, Int, Int, Int, Int)] = [
            ("qkv", n, l0.queryDim + 2 * l0.kvDim, d, cfg.layers.count),
            ("o", n, d, l0.queryDim, cfg.layers.count),
            ("gate+up", n, 2 * l0.ffnDim, d, cfg.layers.count),
            ("down", n, d, l0.ffnDim, cfg.layers.count),
            ("head (256-row blocks)", 256, cfg.vocabSize, d, n / 256),
        ]
        print("")
        print(pad("shape", 22) + pad("m x n x k", 22) + pad("GFLOP/s", 10))
        var gemmFlops = 0.0, gemmSeconds = 0.0
        for (name, m, nn, k, count) in shapes {
            let a = [Float](repeating: 0.01, count: m * k)
            let b = [Float](repeating: 0.02, count: nn * k)
            var c = [Float](repeating: 0, count: m * nn)
            let once: () -> Void = {
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    BLAS.gemm(m: m, n: nn, k: k, a: ap.baseAddress!, b: bp.baseAddress!, transposeB: true, c: cp.baseAddress!)
                } } }
            }
            once()
            let reps = max(3, min(200, Int(2e10 / Double(2 * m * nn * k))))
            let t0 = Date()
            for _ in 0..<reps { once() }
            let sec = Date().timeIntervalSince(t0) / Double(reps)
            let flops = 2.0 * Double(m * nn * k)
            print(pad(name, 22) + pad("\(m) x \(nn) x \(k)", 22) + pad(String(format: "%.1f", flops / sec / 1e9), 10))
            gemmFlops += flops * Double(count)
            gemmSeconds += sec * Double(count)
        }
        let sgemmRate = gemmFlops / gemmSeconds
        print(String(format: "sgemm on the forward's shapes (FLOP-weighted): %.1f GFLOP/s", sgemmRate / 1e9))

        /// Best of `repeats` after one warm-up.
        func best(_ body: () throws -> Void) rethrows -> Double {
            try body()
            var best = Double.infinity
            for _ in 0..<repeats {
                let t0 = Date()
                try body()
                best = min(best, Date().timeIntervalSince(t0))
            }
            return best
        }
        func timeForward(_ prepared: PreparedModel) throws -> Double { try best { _ = try prepared.tokenNLL(windows) } }
        /// The decoder stack alone (embeddings, layers, final norm): what a mask acts on.
        func timeStack(_ prepared: PreparedModel) throws -> Double { try best { try prepared.observe(windows, observer: NoObserver()) } }
        print("")
        print(pad("forward (\(batch) x \(seq) tokens)", 40) + pad("seconds", 10) + pad("tokens/s", 10) + pad("GFLOP/s", 10) + pad("vs sgemm", 10)
              + pad("FLOPs vs dense", 16) + pad("time vs dense", 14))
        let denseFlops = lm.dense.flops(batch: batch, sequence: seq)
        let denseStackFlops = lm.dense.flops(batch: batch, sequence: seq, includeHead: false)
        let denseTime = try timeForward(lm.dense)
        func row(_ name: String, _ flops: Double, _ sec: Double, denseFlops: Double, denseTime: Double) {
            print(pad(name, 40) + pad(String(format: "%.3f", sec), 10) + pad(String(format: "%.0f", Double(n) / sec), 10)
                  + pad(String(format: "%.1f", flops / sec / 1e9), 10) + pad(String(format: "%.2f", flops / sec / sgemmRate), 10)
                  + pad(String(format: "%.3f", flops / denseFlops), 16) + pad(String(format: "%.3f", sec / denseTime), 14))
        }
        row("dense", denseFlops, denseTime, denseFlops: denseFlops, denseTime: denseTime)
        if keep > 0 && keep < 1 {
            // Keep exactly `keep` of all KV groups (layers alternate between floor and ceil when a layer's share is
            // fractional, e.g. 1 or 2 of SmolLM2's 3) and of every layer's channels, so the kept fraction of the
            // attention+MLP parameters is `keep`, not rounded up per layer.
            let totalGroups = cfg.layers.reduce(0) { $0 + $1.kvHeads }
            var extra = Int((Double(totalGroups) * keep).rounded()) - cfg.layers.reduce(0) { $0 + Int(Double($1.kvHeads) * keep) }
            let mask = StructureMask(layers: cfg.layers.map { spec in
                var groups = Int(Double(spec.kvHeads) * keep)
                if extra > 0 && groups < spec.kvHeads { groups += 1; extra -= 1 }
                return StructureMask.Layer(keptKVGroups: Array(0..<groups), keptChannels: Array(0..<Int(Double(spec.ffnDim) * keep)))
            })
            let masked = try lm.prepared(mask: mask)
            let label = String(format: "masked, %.0f%% of groups/channels kept", keep * 100)
            row(label, masked.flops(batch: batch, sequence: seq), try timeForward(masked), denseFlops: denseFlops, denseTime: denseTime)
            // The same two models without the output head, which no mask prunes (it is 20 % of SmolLM2's FLOPs, so
            // the whole pass cannot drop below head share + keep · rest).
            let denseStack = try timeStack(lm.dense)
            row("dense, decoder stack only", denseStackFlops, denseStack, denseFlops: denseStackFlops, denseTime: denseStack)
            row(label.replacingOccurrences(of: "masked", with: "masked stack"), masked.flops(batch: batch, sequence: seq, includeHead: false),
                try timeStack(masked), denseFlops: denseStackFlops, denseTime: denseStack)
            let headShare = (denseFlops - denseStackFlops) / denseFlops
            print(String(format: "\nthe head is %.1f%% of the dense FLOPs: at %.0f%% kept the whole pass cannot cost less than %.3f of the dense FLOPs",
                         headShare * 100, keep * 100, masked.flops(batch: batch, sequence: seq) / denseFlops))
        }
        print(String(format: "\ndense forward FLOPs per pass: %.1f GFLOP", denseFlops / 1e9))
    }

    /// Tokenises the whole WikiText-2 test text (rows joined with "\n\n", as for perplexity), best of `repeats`.
    private func benchTokenizer(_ checkpoint: LoadedCheckpoint) throws {
        let tok = try model.loadTokenizer(checkpoint)
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
        print("")
        print(String(format: "tokenizer: WikiText-2 test, %d bytes -> %d tokens in %.3f s (best of %d): %.2f MB/s, %.0f tokens/s",
                     bytes, count, best, max(1, repeats), Double(bytes) / best / 1e6, Double(count) / best))
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}

/// A forward observer that ignores everything (times the decoder stack alone).
private final class NoObserver: ForwardObserver {
    func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {}
}
