import XCTest
import FixtureSupport
@testable import Pruning

final class WandaInitTests: XCTestCase {
    /// The pure-math tail of fixtures/pruning/wanda_sp_*.json.gz (init_mask_between_layers, keep 0.7): from the
    /// stored head / KV-group / channel metrics, the KV-group reduction (abs 1e-12, a mean of G doubles), the
    /// per-layer init masks (exact) and the sigmap init scores with μ = 0.7 (abs 1e-9 in Double, as for
    /// score_mappings.json). The metric itself needs a model forward and is tested elsewhere.
    func testInitMasksAndSigmapFromStoredMetrics() throws {
        for (model, groupSize) in [("stories260K", 2), ("smollm2-135m", 3)] {
            let fixture = try Shared.json("fixtures/pruning/wanda_sp_\(model).json.gz")
            let layers: [[String: Any]] = try fixture.get("init_mask_between_layers")
            XCTAssertFalse(layers.isEmpty)
            for entry in layers {
                let l: Int = try entry.get("layer")
                let heads: [Double] = try entry.get("head_score")
                let groups: [Double] = try entry.get("kv_group_score")
                let channels: [Double] = try entry.get("mlp_channel_score")
                XCTAssertNil(compareAll(kvGroupScores(headScores: heads, groupSize: heads.count / groups.count), groups,
                                        Tolerance(absolute: 1e-12), "\(model) layer \(l) kv_group_score"))
                XCTAssertEqual(heads.count / groups.count, groupSize, "\(model) G")
                let attnMask = initMask(metric: groups, keepRatio: 0.7)
                XCTAssertEqual(attnMask.indices.filter { attnMask[$0] }, try entry.get("init_keep_kv_groups"), "\(model) layer \(l)")
                let mlpMask = initMask(metric: channels, keepRatio: 0.7)
                XCTAssertEqual(mlpMask.map { $0 ? 1 : 0 }, try entry.get("init_mlp_mask"), "\(model) layer \(l)")
                XCTAssertEqual(mlpMask.filter { $0 }.count, try entry.get("init_keep_mlp_channels_count"))
                let tol = Tolerance(absolute: 1e-9)
                XCTAssertNil(compareAll(ScoreMapping.sigmap.keepProbabilities(metric: groups, kind: .attention, mean: 0.7, initMask: attnMask),
                                        try entry.get("init_scores_sigmap_attn"), tol, "\(model) layer \(l) sigmap attn"))
                XCTAssertNil(compareAll(ScoreMapping.sigmap.keepProbabilities(metric: channels, kind: .mlp, mean: 0.7, initMask: mlpMask),
                                        try entry.get("init_scores_sigmap_mlp"), tol, "\(model) layer \(l) sigmap mlp"))
            }
        }
    }
}
