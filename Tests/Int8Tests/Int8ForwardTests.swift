import Checkpoints
import Corpora
import Evaluation
import FixtureSupport
import Foundation
import Kernels
import Tokenization
import Transformer
import XCTest

/// int8 sampled forwards (issue 12): the projections in u8 × s8 → s32 (oneDNN) against the Float32 forward.
final class Int8ForwardTests: XCTestCase {
    /// SmolLM2 and its tokenizer, loaded once for this bundle.
    nonisolated(unsafe) static var cached: (LanguageModel, any Tokenizer)?
    static let lock = NSLock()
    static func smolLM2() throws -> (LanguageModel, any Tokenizer) {
        lock.lock(); defer { lock.unlock() }
        if let cached { return cached }
        let loaded = try CheckpointLoader.load(path: try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path)
        let model = try LanguageModel(config: loaded.config, weights: loaded.weights, file: "SmolLM2")
        let pair = (model, try TokenizerLoader.load(loaded.tokenizer))
        cached = pair
        return pair
    }

    /// A 50 % structured mask from the Wanda-sp fixture scores (fixtures/pruning/wanda_sp_smollm2-135m.json.gz):
    /// every layer keeps its best-scored half of the MLP channels, and the best-scored KV groups so that exactly half
    /// of all groups are kept (layers alternate between 2 and 1 of 3). A realistic mask of the kind PG samples,
    /// unlike the first-half mask of `bench`, whose model is worse than uniform (NLL ≈ 12.5).
    static func wandaHalfMask(_ config: ModelConfig) throws -> StructureMask {
        let fixture = try Shared.json("fixtures/pruning/wanda_sp_smollm2-135m.json.gz")
        let layers: [[String: Any]] = try fixture.get("no_mask_between_layers")
        var extra = config.layers.reduce(0) { $0 + $1.kvHeads } / 2 - config.layers.reduce(0) { $0 + $1.kvHeads / 2 }
        return StructureMask(layers: try zip(config.layers, layers).map { spec, scores in
            let groupScores: [Double] = try scores.get("kv_group_score")
            let channelScores: [Double] = try scores.get("mlp_channel_score")
            var groups = spec.kvHeads / 2
            if extra > 0 { groups += 1; extra -= 1 }
            let keptGroups = groupScores.indices.sorted { groupScores[$0] > groupScores[$1] }.prefix(groups).sorted()
            let keptChannels = channelScores.indices.sorted { channelScores[$0] > channelScores[$1] }.prefix(spec.ffnDim / 2).sorted()
            return StructureMask.Layer(keptKVGroups: Array(keptGroups), keptChannels: Array(keptChannels))
        })
    }

    /// Each window's mean NLL, 8 windows per forward.
    static func windowMeans(_ model: PreparedModel, _ windows: [[Int]]) throws -> [Double] {
        var means = [Double]()
        for start in stride(from: 0, to: windows.count, by: 8) {
            for row in try model.tokenNLL(Array(windows[start..<min(windows.count, start + 8)])) {
                means.append(row.reduce(0, +) / Double(row.count))
            }
        }
        return means
    }

    /// The accuracy requirement on the first 64 WikiText-2 test windows of 128 tokens: the per-window NLL
    /// (the mean over windows of each window's mean NLL, what `eval ppl` reports) under int8 projections is within
    /// 1 % (relative) of the Float32 forward's, for the dense model and a realistic 50 % mask. Tolerances: rel 1e-2
    /// for that mean — the requirement itself (issue 12; measured 0.03 % dense, 0.1 % at 50 %); rel 1e-2 for every
    /// single window of the dense model (measured max 0.8 %); for single windows of the 50 % model, whose NLL of ≈ 9
    /// nats (perplexity ≈ 7,000) makes a few tokens' losses chaotic, mean |rel diff| ≤ 2e-2 and max ≤ 1.5e-1
    /// (measured 1.1 % and 8 %: window 8 moves 9.18 → 8.43). The numbers are printed.
    func testInt8WindowNLLWithinOnePercentOfF32() throws {
        let (model, tokenizer) = try Self.smolLM2()
        let text = try Dataset.wikitext2.text(dataRoot: try DataRoot.resolve(explicit: Shared.root.appendingPathComponent("data").path))
        let windows = try EvalWindows(tokens: tokenizer.encode(text, addSpecialTokens: true), context: 128, limit: 64, source: "wikitext2").windows
        XCTAssertEqual(windows.count, 64)
        for (name, mask) in [("dense", nil), ("wanda-sp 50%", try Self.wandaHalfMask(model.config))] as [(String, StructureMask?)] {
            let f32 = try Self.windowMeans(try model.prepared(mask: mask), windows)
            let int8Model = try model.prepared(mask: mask, precision: .int8)
            XCTAssertEqual(int8Model.precision, .int8)
            let int8 = try Self.windowMeans(int8Model, windows)
            let moved = WindowMovement(reference: f32, other: int8)
            let worst = try XCTUnwrap(moved.worstWindow)
            let meanF32 = f32.reduce(0, +) / 64, meanInt8 = int8.reduce(0, +) / 64
            print(String(format: "int8 vs f32, %@: per-window NLL %.5f vs %.5f (rel %.4f%%); single windows |rel diff| mean %.4f%%, max %.4f%% (window %d)",
                         name, meanInt8, meanF32, 100 * abs(meanInt8 - meanF32) / meanF32, 100 * moved.meanRelative, 100 * moved.maxRelative, worst))
            XCTAssertLessThanOrEqual(abs(meanInt8 - meanF32) / meanF32, 0.01, "\(name): per-window NLL int8 \(meanInt8) vs f32 \(meanF32)")
            if mask == nil {
                XCTAssertLessThanOrEqual(moved.maxRelative, 0.01, "\(name): window \(worst) int8 \(int8[worst]) vs f32 \(f32[worst])")
            } else {
                XCTAssertLessThanOrEqual(moved.meanRelative, 0.02, name)
                XCTAssertLessThanOrEqual(moved.maxRelative, 0.15, "\(name): window \(worst) int8 \(int8[worst]) vs f32 \(f32[worst])")
            }
        }
    }

    /// The dense int8 model is built once and shared; masked ones are gathered per call from the same quantized
    /// weights, so a mask keeping everything computes exactly what the dense int8 model computes.
    func testDenseInt8IsCachedAndFullMaskMatchesIt() throws {
        let (model, _) = try Self.smolLM2()
        let a = try model.prepared(mask: nil, precision: .int8)
        let b = try model.prepared(mask: nil, precision: .int8)
        let window = [[1, 504, 3458, 314, 260, 1345, 28, 2, 9, 400]]
        XCTAssertEqual(try a.tokenNLL(window), try b.tokenNLL(window))
        let full = try model.prepared(mask: StructureMask.dense(model.config), precision: .int8)
        XCTAssertEqual(try full.tokenNLL(window), try a.tokenNLL(window), "same int8 bytes, same arithmetic: exactly equal")
        XCTAssertEqual(model.dense.precision, .f32)
        XCTAssertEqual(try model.prepared(mask: nil, precision: .f32).precision, .f32)
    }

    /// Without an observer the int8 forward makes RMSNorm and the gated unit row by row where they are quantized;
    /// with one it writes them out first (the observer sees them). Both give the same NLLs, bit for bit, on a
    /// masked SmolLM2. Tolerance: none.
    func testFusedInt8ForwardMatchesTheObservedOne() throws {
        final class Watcher: ForwardObserver {
            var calls = 0
            func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) { calls += 1 }
        }
        let (model, _) = try Self.smolLM2()
        var mask = StructureMask.dense(model.config)
        for l in 0..<mask.layers.count where l % 2 == 0 {
            mask.layers[l].keptChannels = mask.layers[l].keptChannels.filter { $0 % 3 != 0 }
        }
        let prepared = try model.prepared(mask: mask, precision: .int8)
        let windows = [[1, 504, 3458, 314, 260, 1345, 28, 2, 9, 400], [9, 400, 1, 504, 3458, 314, 260, 1345, 28, 2]]
        let watcher = Watcher()
        XCTAssertEqual(try prepared.tokenNLL(windows), try prepared.tokenNLL(windows, observer: watcher))
        XCTAssertGreaterThan(watcher.calls, 0)
    }
}
