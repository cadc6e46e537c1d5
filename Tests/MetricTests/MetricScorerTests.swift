import Checkpoints
import Corpora
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// The scorers other than Wanda-sp, checked against direct computations on stories260K (5 layers, 8 query heads,
/// 4 KV heads, head dim 8, d = 64, ffn 172) and on properties that pin their definition.
final class MetricScorerTests: XCTestCase {
    /// Magnitude: L1 and L2 of the coupled slices, recomputed here element by element from the canonical weights.
    func testMagnitudeMatchesCoupledSlices() throws {
        let m = try TestModel.stories260K().model
        let config = m.config, d = config.hiddenSize
        for norm in MagnitudeNorm.allCases {
            let scores = Magnitude.scores(config: config, weights: m.weights, norm: norm)
            func finish(_ x: [Float]) -> Double {
                norm == .l1 ? x.reduce(0.0) { $0 + Double(abs($1)) } : x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            }
            for (l, spec) in config.layers.enumerated() {
                let w = m.weights.layers[l], hd = spec.headDim, g = spec.groupSize
                for group in 0..<spec.kvHeads {
                    var slice: [Float] = []
                    for h in (group * g)..<((group + 1) * g) {
                        for r in (h * hd)..<((h + 1) * hd) { slice += w.wq[(r * d)..<((r + 1) * d)] }
                        for r in 0..<d { slice += w.wo[(r * spec.queryDim + h * hd)..<(r * spec.queryDim + (h + 1) * hd)] }
                    }
                    for r in (group * hd)..<((group + 1) * hd) {
                        let k: ArraySlice<Float> = w.wk[(r * d)..<((r + 1) * d)]
                        let v: ArraySlice<Float> = w.wv[(r * d)..<((r + 1) * d)]
                        slice += k
                        slice += v
                    }
                    XCTAssertEqual(scores.attention[l][group], finish(slice), accuracy: 1e-9 * finish(slice), "\(norm) layer \(l) group \(group)")
                }
                for c in [0, 17, spec.ffnDim - 1] {
                    let slice = Array(w.gate[(c * d)..<((c + 1) * d)]) + Array(w.up[(c * d)..<((c + 1) * d)])
                        + (0..<d).map { w.down[$0 * spec.ffnDim + c] }
                    XCTAssertEqual(scores.mlp[l][c], finish(slice), accuracy: 1e-9 * finish(slice), "\(norm) layer \(l) channel \(c)")
                }
                var all: [Float] = w.wq
                for part in [w.wk, w.wv, w.wo, w.gate, w.up, w.down] { all += part }
                XCTAssertEqual(scores.layers[l], finish(all), accuracy: 1e-9 * finish(all), "\(norm) layer \(l)")
            }
        }
    }

    /// Random: same seed, same scores; another seed, other scores; values in [0, 1); shapes follow the config.
    func testRandomIsSeeded() throws {
        let config = try TestModel.stories260K().model.config
        let a = RandomScores.scores(config: config, seed: 7), b = RandomScores.scores(config: config, seed: 7)
        let c = RandomScores.scores(config: config, seed: 8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.attention.map(\.count), config.layers.map(\.kvHeads))
        XCTAssertEqual(a.mlp.map(\.count), config.layers.map(\.ffnDim))
        XCTAssertEqual(a.layers.count, config.layers.count)
        XCTAssertTrue((Array(a.attention.joined()) + Array(a.mlp.joined()) + a.layers).allSatisfy { $0 >= 0 && $0 < 1 })
    }

    /// FLAP, pure part: variance × squared column norm, summed per head and averaged per KV group (hand example:
    /// one layer, d = 2, 2 query heads of dim 2 sharing 1 KV head, 3 channels).
    func testFlapLayerScoresByHand() {
        let spec = LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 2, ffnDim: 3)
        // wo [d = 2, queryDim = 4], down [2, 3]
        let wo: [Float] = [1, 2, 0, 1,
                           3, 0, 1, 1]
        let down: [Float] = [1, 0, 2,
                             1, 3, 0]
        let w = LayerWeights(attentionNorm: [1, 1], wq: [Float](repeating: 0, count: 8), wk: [Float](repeating: 0, count: 4),
                             wv: [Float](repeating: 0, count: 4), wo: wo, mlpNorm: [1, 1],
                             gate: [Float](repeating: 0, count: 6), up: [Float](repeating: 0, count: 6), down: down)
        let s = Flap.layerScores(weights: w, spec: spec, hiddenSize: 2, outputProjectionVariance: [1, 2, 3, 4], downProjectionVariance: [0.5, 1, 2])
        // column norms² of wo: [10, 4, 1, 2] → × var: [10, 8, 3, 8]; heads: [18, 11]; group: 14.5
        XCTAssertEqual(s.heads, [18, 11])
        XCTAssertEqual(s.kvGroups, [14.5])
        // down column norms²: [2, 9, 4] × var [0.5, 1, 2] = [1, 9, 8]
        XCTAssertEqual(s.channels, [1, 9, 8])
        // Wanda-sp on the same layer: mean|W| per column × sqrt(A).
        let wanda = WandaSP.layerScores(weights: w, spec: spec, hiddenSize: 2, outputProjectionScale: [4, 1, 1, 4], downProjectionScale: [1, 4, 9])
        // mean|wo| columns [2, 1, 0.5, 1] × sqrt(A) [2, 1, 1, 2] = [4, 1, 0.5, 2]; heads [5, 2.5]; group 3.75
        XCTAssertEqual(wanda.heads, [5, 2.5])
        XCTAssertEqual(wanda.kvGroups, [3.75])
        // mean|down| columns [1, 1.5, 1] × [1, 2, 3]
        XCTAssertEqual(wanda.channels, [1, 3, 3])
    }

    /// FLAP on a model: the variance from the recorder equals E[x²] − E[x]² and agrees with Wanda's sum of squares
    /// (A_j · sequences / tokens = E[x²] ≥ variance); scores are finite and non-negative.
    func testFlapOnStories() throws {
        let t = try TestModel.stories260K()
        let calibration = try CalibrationData.fixtureRecipe(dataRoot: TestModel.dataRoot()) { t.tokenizer.encode($0, addSpecialTokens: true) }
        let flap = try Flap.scores(model: t.model, windows: calibration.windows)
        let wanda = try WandaSP.score(model: t.model, windows: calibration.windows, variant: .dense, initKeepRatio: 0.7)
        XCTAssertEqual(flap.attention.map(\.count), t.model.config.layers.map(\.kvHeads))
        XCTAssertTrue((Array(flap.attention.joined()) + Array(flap.mlp.joined())).allSatisfy { $0.isFinite && $0 >= 0 })
        // Upper bound: variance ≤ E[x²] = A · 8 / 1024, so flap_c ≤ ‖W_c‖² · A_c / 128.
        let d = t.model.config.hiddenSize
        for (l, spec) in t.model.config.layers.enumerated() {
            let down = t.model.weights.layers[l].down
            for c in 0..<spec.ffnDim {
                let norm2 = (0..<d).reduce(0.0) { $0 + Double(down[$1 * spec.ffnDim + c]) * Double(down[$1 * spec.ffnDim + c]) }
                XCTAssertLessThanOrEqual(flap.mlp[l][c], norm2 * wanda.layers[l].downProjectionScale[c] / 128 * (1 + 1e-9))
            }
        }
    }

    /// Block influence: in [0, 2]; a layer switched off by the mask leaves its input unchanged, so its influence is
    /// 0; the value of a live layer equals a direct computation from `observe` (layer input vs output).
    func testBlockInfluence() throws {
        let t = try TestModel.stories260K()
        let calibration = try CalibrationData.fixtureRecipe(dataRoot: TestModel.dataRoot()) { t.tokenizer.encode($0, addSpecialTokens: true) }
        let windows = Array(calibration.windows.prefix(2))
        let dense = try LayerImportance.blockInfluence(model: t.model.dense, windows: windows)
        XCTAssertEqual(dense.count, 5)
        XCTAssertTrue(dense.allSatisfy { $0 > 0 && $0 <= 2 })
        var mask = StructureMask.dense(t.model.config)
        mask.layers[2] = StructureMask.Layer(keptKVGroups: [], keptChannels: [], attention: false, mlp: false)
        let masked = try LayerImportance.blockInfluence(model: t.model.prepared(mask: mask), windows: windows)
        XCTAssertEqual(masked[2], 0, accuracy: 1e-12)
        XCTAssertEqual(masked[0], dense[0], accuracy: 1e-12, "layers before the removed one are unchanged")
        XCTAssertEqual(masked[1], dense[1], accuracy: 1e-12)

        final class Capture: ForwardObserver {
            var input: [Float] = [], output: [Float] = []
            func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {
                guard layer == 3 else { return }
                if point == .layerInput { input = Array(UnsafeBufferPointer(start: values, count: rows * width)) }
                if point == .layerOutput { output = Array(UnsafeBufferPointer(start: values, count: rows * width)) }
            }
        }
        let capture = Capture()
        try t.model.dense.observe(windows, observer: capture)
        let d = t.model.config.hiddenSize, rows = capture.input.count / d
        var total = 0.0
        for r in 0..<rows {
            let a = capture.input[(r * d)..<((r + 1) * d)].map(Double.init), b = capture.output[(r * d)..<((r + 1) * d)].map(Double.init)
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            total += 1 - dot / (a.reduce(0) { $0 + $1 * $1 }.squareRoot() * b.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
        XCTAssertEqual(dense[3], total / Double(rows), accuracy: 1e-12)
    }

    /// Perplexity drop: each entry equals mean NLL with that layer removed minus the dense mean NLL.
    func testPerplexityDrop() throws {
        let t = try TestModel.stories260K()
        let calibration = try CalibrationData.fixtureRecipe(dataRoot: TestModel.dataRoot()) { t.tokenizer.encode($0, addSpecialTokens: true) }
        let windows = Array(calibration.windows.prefix(2))
        let drops = try LayerImportance.perplexityDrop(model: t.model, windows: windows)
        func mean(_ p: PreparedModel) throws -> Double {
            let nll = try p.tokenNLL(windows).joined()
            return nll.reduce(0, +) / Double(nll.count)
        }
        let dense = try mean(t.model.dense)
        var mask = StructureMask.dense(t.model.config)
        mask.layers[4] = StructureMask.Layer(keptKVGroups: [], keptChannels: [], attention: false, mlp: false)
        XCTAssertEqual(drops[4], try mean(t.model.prepared(mask: mask)) - dense, accuracy: 1e-9)
        XCTAssertEqual(drops.count, 5)
        XCTAssertTrue(drops.allSatisfy(\.isFinite))
    }

    /// Wanda-sp init-mask variant: layer 0 sees the same inputs in both variants; later layers differ because
    /// earlier layers are masked.
    func testWandaVariantsShareLayerZero() throws {
        let t = try TestModel.stories260K()
        let calibration = try CalibrationData.fixtureRecipe(dataRoot: TestModel.dataRoot()) { t.tokenizer.encode($0, addSpecialTokens: true) }
        let dense = try WandaSP.score(model: t.model, windows: calibration.windows, variant: .dense, initKeepRatio: 0.7)
        let masked = try WandaSP.score(model: t.model, windows: calibration.windows, variant: .initMask, initKeepRatio: 0.7)
        XCTAssertEqual(dense.layers[0], masked.layers[0])
        XCTAssertNotEqual(dense.layers[4].channelScores, masked.layers[4].channelScores)
        XCTAssertThrowsError(try WandaSP.score(model: t.model, windows: [], variant: .dense, initKeepRatio: 0.7))
    }
}
