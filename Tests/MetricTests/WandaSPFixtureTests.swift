import Corpora
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// fixtures/pruning/wanda_sp_{stories260K,smollm2-135m}.json.gz (README §4): the fixture calibration recipe, then the
/// Wanda-sp statistics and scores of both variants. Tolerances as stated there: A and scores rel 1e-4 (float32
/// activations from a different BLAS and summation order; an absolute floor of 1e-9 · max(A) covers features whose
/// A is ~0), init masks exact except near-ties (an entry may differ only when its metric is within rel 1e-4 of
/// the threshold), sigmap init scores abs 1e-4 (computed from our scores, whose own rel error is 1e-4).
final class WandaSPFixtureTests: XCTestCase {
    func check(_ m: TestModel, fixture name: String) throws {
        let fixture = try Shared.json("fixtures/pruning/\(name)")
        let expectedWindows: [Any] = try fixture.get("calibration", "window_ids")
        let calibration = try CalibrationData.fixtureRecipe(dataRoot: try TestModel.dataRoot()) {
            m.tokenizer.encode($0, addSpecialTokens: true)
        }
        XCTAssertEqual(calibration.windows, try expectedWindows.map { try XCTUnwrap($0 as? [NSNumber]).map(\.intValue) }, "\(name): calibration windows")
        XCTAssertEqual(calibration.windows.count, 8)

        for (key, variant) in [("no_mask_between_layers", WandaSP.Variant.dense), ("init_mask_between_layers", .initMask)] {
            let result = try WandaSP.score(model: m.model, windows: calibration.windows, variant: variant, initKeepRatio: 0.7)
            let layers: [[String: Any]] = try fixture.get(key)
            XCTAssertEqual(layers.count, result.layers.count)
            for entry in layers {
                let l: Int = try entry.get("layer")
                let got = result.layers[l]
                let what = "\(name) \(key) layer \(l)"
                for (field, actual) in [("A_o_proj_in", got.outputProjectionScale), ("A_down_proj_in", got.downProjectionScale),
                                        ("head_score", got.headScores), ("kv_group_score", got.kvGroupScores),
                                        ("mlp_channel_score", got.channelScores)] {
                    let expected: [Double] = try entry.get(field)
                    let floor = 1e-9 * (expected.map(abs).max() ?? 0)
                    if let msg = compareAll(actual, expected, Tolerance(absolute: floor, relative: 1e-4), "\(what) \(field)") { XCTFail(msg) }
                }
                guard key == "init_mask_between_layers" else { continue }
                let expectedGroups: [Int] = try entry.get("init_keep_kv_groups")
                let expectedChannels: [Int] = try entry.get("init_mlp_mask")
                try checkNearTies(kept: got.initKeptKVGroups, expectedMask: (0..<got.kvGroupScores.count).map { expectedGroups.contains($0) },
                                  metric: got.kvGroupScores, what: "\(what) init KV groups")
                try checkNearTies(kept: got.initKeptChannels, expectedMask: expectedChannels.map { $0 == 1 },
                                  metric: got.channelScores, what: "\(what) init MLP mask")
                let attnMask = (0..<got.kvGroupScores.count).map { got.initKeptKVGroups.contains($0) }
                let sigAttn = ScoreMapping.sigmap.keepProbabilities(metric: got.kvGroupScores, kind: .attention, mean: 0.7, initMask: attnMask)
                let sigMLP = ScoreMapping.sigmap.keepProbabilities(metric: got.channelScores, kind: .mlp, mean: 0.7, initMask: [])
                if let msg = compareAll(sigAttn, try entry.get("init_scores_sigmap_attn"), Tolerance(absolute: 1e-4), "\(what) sigmap attn") { XCTFail(msg) }
                if let msg = compareAll(sigMLP, try entry.get("init_scores_sigmap_mlp"), Tolerance(absolute: 1e-4), "\(what) sigmap mlp") { XCTFail(msg) }
            }
        }
    }

    /// The kept set must equal the golden one, except for entries whose metric lies within rel 1e-4 of the threshold.
    func checkNearTies(kept: [Int], expectedMask: [Bool], metric: [Double], what: String) throws {
        XCTAssertEqual(metric.count, expectedMask.count, what)
        let threshold = hardMaskThreshold(metric, keepRatio: 0.7).threshold
        for i in metric.indices where kept.contains(i) != expectedMask[i] {
            let near = abs(metric[i] - threshold) <= 1e-4 * abs(threshold)
            XCTAssertTrue(near, "\(what): entry \(i) (metric \(metric[i]), threshold \(threshold)) differs and is not a near-tie")
        }
    }

    func testStories260K() throws {
        try check(try TestModel.stories260K(), fixture: "wanda_sp_stories260K.json.gz")
    }

    func testSmolLM2() throws {
        try check(try TestModel.smolLM2(), fixture: "wanda_sp_smollm2-135m.json.gz")
    }
}
