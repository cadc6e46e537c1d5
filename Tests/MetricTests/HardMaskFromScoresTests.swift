import Essentials
import Checkpoints
import Corpora
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// Hard masks from metric scores (spec §2.4) at a rate over attention+MLP parameters, the plan they make, and
/// calibration sampling.
final class HardMaskFromScoresTests: XCTestCase {
    /// SmolLM2's shape (30 layers, 9 query / 3 KV heads, head dim 64, d 576, ffn 1536) without weights.
    let smol = ModelConfig(architecture: "llama", hiddenSize: 576, vocabSize: 49152,
                           layers: Array(repeating: LayerSpec(queryHeads: 9, kvHeads: 3, headDim: 64, ffnDim: 1536), count: 30),
                           normEpsilon: 1e-5, ropeTheta: 100000, tiedEmbeddings: true, attentionBias: false, contextLength: 8192)

    func testChannelsGlobalAndPerLayer() throws {
        let scores = RandomScores.scores(config: smol, seed: 1)
        for rate in [0.3, 0.4, 0.5] {
            let global = try scores.hardMask(rate: rate, granularity: .channels, scope: .global, config: smol)
            // Distinct random scores: exactly N − floor(N · rate) kept per kind.
            XCTAssertEqual(global.keptCount(.attention), 90 - Int((90 * rate).rounded(.down)))
            XCTAssertEqual(global.keptCount(.mlp), 46080 - Int((46080 * rate).rounded(.down)))
            let perLayer = try scores.hardMask(rate: rate, granularity: .channels, scope: .perLayer, config: smol)
            for layer in perLayer.layers {
                XCTAssertEqual(layer.keptKVGroups.count, 3 - Int((3 * rate).rounded(.down)))
                XCTAssertEqual(layer.keptChannels.count, 1536 - Int((1536 * rate).rounded(.down)))
            }
            // The global mask keeps the highest scores.
            let theta = hardMaskThreshold(scores.mlp.joined(), keepRatio: 1 - rate).threshold
            for (l, layer) in global.layers.enumerated() {
                XCTAssertEqual(layer.keptChannels, scores.mlp[l].indices.filter { scores.mlp[l][$0] >= theta })
            }
            let plan = try PrunePlan(mask: global, config: smol, method: "random", seed: 1, requestedRate: rate,
                                     modelSHA256: "", calibrationSHA256: "", toolVersion: "test")
            XCTAssertEqual(plan.achievedRate.attentionMLP, rate, accuracy: 0.003)
            XCTAssertLessThan(plan.achievedRate.wholeModel, plan.achievedRate.attentionMLP, "embeddings are not pruned")
        }
    }

    func testHeadsKeepsTheMLP() throws {
        let scores = RandomScores.scores(config: smol, seed: 2)
        let mask = try scores.hardMask(rate: 0.5, granularity: .heads, scope: .global, config: smol)
        XCTAssertEqual(mask.keptCount(.mlp), 46080)
        XCTAssertEqual(mask.keptCount(.attention), 45)
    }

    /// Layers: floor(rate · 30) lowest-scored layers dropped (equal costs), the rest dense; the rate is in parameters.
    func testLayers() throws {
        let scores = StructureScores(attention: [], mlp: [], layers: (0..<30).map { Double(($0 * 7) % 30) })
        for (rate, dropped) in [(0.3, 9), (0.4, 12), (0.5, 15)] {
            let mask = try scores.hardMask(rate: rate, granularity: .layers, scope: .perLayer, config: smol)
            let off = mask.layers.indices.filter { !mask.layers[$0].attentionActive && !mask.layers[$0].mlpActive }
            XCTAssertEqual(off.count, dropped)
            XCTAssertEqual(Set(off), Set((0..<30).filter { scores.layers[$0] < Double(dropped) }))
            let kept = mask.keptParameters(in: smol)
            XCTAssertEqual(AchievedRate(kept: kept, dense: smol.parameterCount).attentionMLP, Double(dropped) / 30, accuracy: 1e-12)
        }
    }

    func testBadInput() throws {
        let scores = RandomScores.scores(config: smol, seed: 3)
        for rate in [0.0, 1.0, -0.1, 1.5, .nan] {
            XCTAssertThrowsError(try scores.hardMask(rate: rate, granularity: .channels, scope: .global, config: smol)) {
                XCTAssertTrue("\($0)".contains("rate"), "\($0)")
            }
            XCTAssertThrowsError(try MetricPruningOptions(metric: .random, rate: rate).validate())
        }
        XCTAssertThrowsError(try scores.hardMask(rate: 0.3, granularity: .channels, scope: .joint, config: smol))
        XCTAssertThrowsError(try MetricPruningOptions(metric: .blockInfluence, rate: 0.3, granularity: .channels).validate()) {
            XCTAssertTrue("\($0)".contains("granularity"), "\($0)")
        }
        XCTAssertThrowsError(try MetricPruningOptions(metric: .wandaSP, rate: 0.3, granularity: .layers).validate())
        var short = scores
        short.mlp[4].removeLast()
        XCTAssertThrowsError(try short.hardMask(rate: 0.3, granularity: .channels, scope: .global, config: smol)) {
            XCTAssertEqual($0 as? PruningError, .lengthMismatch(what: "mlp keep probabilities", layer: 4, expected: 1536, found: 1535))
        }
        XCTAssertThrowsError(try StructureScores(attention: [], mlp: [], layers: [1, 2]).hardMask(rate: 0.3, granularity: .layers,
                                                                                                     scope: .global, config: smol))
    }

    /// A plan made by `MetricPruning.plan` validates against its model and hash; another hash, shape or an id out
    /// of range is a typed error naming what is wrong.
    func testPlanValidation() throws {
        let t = try TestModel.stories260K()
        let options = MetricPruningOptions(metric: .magnitude, rate: 0.4)
        let scores = try MetricPruning.scores(model: t.model, options: options, calibration: nil)
        let plan = try MetricPruning.plan(scores: scores, config: t.model.config, options: options, calibration: nil,
                                          modelSHA256: "abc123", toolVersion: "test")
        XCTAssertEqual(plan.method, "magnitude")
        XCTAssertEqual(plan.options["norm"], .string("l2"))
        XCTAssertNoThrow(try plan.validate(against: t.model.config, modelSHA256: "ABC123"))
        XCTAssertThrowsError(try plan.validate(against: t.model.config, modelSHA256: "def456")) {
            XCTAssertTrue("\($0)".contains("model_sha256"), "\($0)")
        }
        var other = t.model.config
        other.layers.removeLast()
        XCTAssertThrowsError(try plan.validate(against: other, modelSHA256: nil)) {
            XCTAssertEqual($0 as? PruningError, .layerCount(what: "plan", expected: 4, found: 5))
        }
        var bad = plan
        bad.layers[1].keptChannels.append(500)
        XCTAssertThrowsError(try bad.validate(against: t.model.config, modelSHA256: nil)) {
            XCTAssertEqual($0 as? PruningError, .idOutOfRange(what: "plan kept_channels", layer: 1, id: 500, limit: 172))
        }
        // The plan runs: masked NLL is finite.
        let nll = try t.model.prepared(mask: plan.structureMask).tokenNLL([[1, 403, 407, 261]])[0]
        XCTAssertTrue(nll.allSatisfy(\.isFinite))
    }

    /// Calibration sampling: seeded and reproducible, windows of the requested length, different seeds differ, the
    /// hash names the ids.
    func testCalibrationSampling() throws {
        let t = try TestModel.stories260K()
        let encode: (String) -> [Int] = { t.tokenizer.encode($0, addSpecialTokens: true) }
        let root = try TestModel.dataRoot()
        let a = try CalibrationData.c4Train(dataRoot: root, count: 16, length: 64, seed: 5, encode: encode)
        let b = try CalibrationData.c4Train(dataRoot: root, count: 16, length: 64, seed: 5, encode: encode)
        let c = try CalibrationData.c4Train(dataRoot: root, count: 16, length: 64, seed: 6, encode: encode)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.windows, c.windows)
        XCTAssertEqual(a.windows.count, 16)
        XCTAssertTrue(a.windows.allSatisfy { $0.count == 64 })
        XCTAssertEqual(a.sha256, SHA256.hex(ids: a.windows.flatMap { $0 }))
        XCTAssertNotEqual(a.sha256, c.sha256)
        XCTAssertThrowsError(try CalibrationData.c4Train(dataRoot: root, count: 1_000_000, length: 64, seed: 5, encode: encode))
        XCTAssertThrowsError(try CalibrationData.c4Train(dataRoot: root.appendingPathComponent("nope"), count: 4, length: 64, seed: 5, encode: encode))
    }
}
