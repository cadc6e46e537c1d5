import XCTest
import FixtureSupport
import Checkpoints
import Transformer
@testable import Pruning

final class HardMaskTests: XCTestCase {
    /// fixtures/pruning/hard_mask.json: index rule (float64 floor), thresholds and keep lists, global and per
    /// layer, exact (a coarse score grid with many ties, so the tie rule is exercised).
    func testHardMaskGolden() throws {
        let fixture = try Shared.json("fixtures/pruning/hard_mask.json")
        let examples: [[String: Any]] = try fixture.get("index_rule_examples")
        XCTAssertEqual(examples.count, 12)
        for e in examples {
            let n: Int = try e.get("n"), rho: Double = try e.get("keep_ratio")
            XCTAssertEqual(hardMaskIndex(count: n, keepRatio: rho), try e.get("index_floor_n_times_1_minus_rho"), "n=\(n) ρ=\(rho)")
        }
        let attn = try doubleMatrix(fixture["attn_scores"], "attn_scores")
        let mlp = try doubleMatrix(fixture["mlp_scores"], "mlp_scores")
        let config = tinyConfig(layers: 4, kvHeads: 3, groupSize: 1, ffn: 10)
        let scores = KeepProbabilities(attention: attn, mlp: mlp)
        try scores.validate(against: config)

        let cases: [[String: Any]] = try fixture.get("cases")
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let rho: Double = try c.get("keep_ratio")
            let global = scores.hardMask(keepRatio: rho, scope: .global, config: config)
            let perLayer = scores.hardMask(keepRatio: rho, scope: .perLayer, config: config)
            for (kind, vectors, key) in [(StructureKind.attention, attn, "attn"), (.mlp, mlp, "mlp")] {
                // Global threshold and keep lists.
                let g: [String: Any] = try c.get("\(key)_global")
                let t = hardMaskThreshold(vectors.joined(), keepRatio: rho)
                XCTAssertEqual(t.index, try g.get("index"), "ρ=\(rho) \(key) global index")
                XCTAssertEqual(t.threshold, try g.get("threshold"), "ρ=\(rho) \(key) global threshold")
                let keep = try doubleMatrix(g["keep"], "keep").map { $0.map { Int($0) } }
                XCTAssertEqual(keptLists(global, kind), keep.map(idsOf), "ρ=\(rho) \(key) global keep")
                XCTAssertEqual(global.keptCount(kind), try g.get("kept_total"), "ρ=\(rho) \(key) kept_total")
                // Per-layer thresholds and keep lists.
                let per: [[String: Any]] = try c.get("\(key)_per_layer")
                XCTAssertEqual(per.count, 4)
                for (l, entry) in per.enumerated() {
                    let tl = hardMaskThreshold(vectors[l], keepRatio: rho)
                    XCTAssertEqual(tl.index, try entry.get("index"), "ρ=\(rho) \(key) layer \(l) index")
                    XCTAssertEqual(tl.threshold, try entry.get("threshold"), "ρ=\(rho) \(key) layer \(l) threshold")
                    XCTAssertEqual(keptLists(perLayer, kind)[l], idsOf(try entry.get("keep")), "ρ=\(rho) \(key) layer \(l) keep")
                }
            }
        }
    }

    /// The selection behind the threshold picks exactly the sorted element: random scores on coarse and fine grids
    /// (many ties, all ties, none), every k of short inputs and spread k of long ones, against a full sort.
    func testSelectionIsTheSortedElement() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 11 }
        for (count, levels) in [(1, 1), (7, 3), (17, 1), (33, 2), (100, 1_000_000), (1_000, 5), (46_080, 1), (46_080, 40), (46_080, 1 << 40)] {
            let values = (0..<count).map { _ in Double(next() % UInt64(levels)) / Double(levels) - 0.25 }
            let sorted = values.sorted()
            let ks = count <= 100 ? Array(0..<count) : [0, 1, count / 3, count / 2, count - 2, count - 1]
            for k in ks {
                var copy = values
                XCTAssertEqual(kthSmallest(&copy, k), sorted[k], "n=\(count) levels=\(levels) k=\(k)")
                XCTAssertEqual(copy.sorted(), sorted, "a permutation of the input")
            }
        }
        // Sorted, reversed and organ-pipe inputs, and the fallback sort: with 0 or 1 partitions allowed the range
        // left over is sorted, and the element is still the sorted one.
        let n = 5_000
        let ascending: [Double] = (0..<n).map { Double($0) }
        let organPipe: [Double] = (0..<n).map { Double(min($0, n - $0)) }
        let fewLevels: [Double] = (0..<n).map { _ in Double(next() % 7) }
        for values in [ascending, Array(ascending.reversed()), organPipe, fewLevels] {
            let sorted = values.sorted()
            for k in [0, 17, n / 2, n - 1] {
                for partitions in [0, 1, 64] {
                    var copy = values
                    XCTAssertEqual(kthSmallest(&copy, k, maximumPartitions: partitions), sorted[k], "k=\(k) partitions=\(partitions)")
                }
            }
        }
    }

    /// Keep ratio 0 keeps nothing (index n: the code would index past the end); ratios above 1 clamp to index 0.
    func testKeepRatioZeroKeepsNothing() {
        XCTAssertEqual(hardMaskIndex(count: 5, keepRatio: 0), 5)
        let t = hardMaskThreshold([0.1, 0.2, 0.3, 0.4, 0.5], keepRatio: 0)
        XCTAssertEqual(t.threshold, .infinity)
        XCTAssertEqual(keptIds([0.1, 0.2, 0.3, 0.4, 0.5], threshold: t), [])
        XCTAssertEqual(hardMaskIndex(count: 5, keepRatio: 1.2), 0)
        XCTAssertEqual(hardMaskThreshold([Double](), keepRatio: 0.5).index, 0)
    }

    /// The cost-weighted rule reduces to the count rule with unit costs, and with costs removes no more than the
    /// allowed share.
    func testJointThreshold() {
        let s = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.0]
        for rho in [0.0, 0.3, 0.5, 0.7, 0.9, 1.0] {
            XCTAssertEqual(hardMaskThreshold(s, costs: Array(repeating: 1, count: 10), keepRatio: rho),
                           hardMaskThreshold(s, keepRatio: rho), "ρ=\(rho)")
        }
        // Structure 2 (s = 0.9) costs 5, total 14; removing in ascending order while ≤ 7 is removed takes
        // 0.0 … 0.6 (7 structures, cost 7), so θ = 0.7.
        let costs = [1.0, 1, 5, 1, 1, 1, 1, 1, 1, 1]
        let t = hardMaskThreshold(s, costs: costs, keepRatio: 0.5)
        XCTAssertEqual(t.index, 7)
        XCTAssertEqual(t.threshold, 0.7)
    }

    /// A joint hard mask on a model keeps at most the requested share of attention+MLP parameters (ties aside).
    func testJointHardMaskOnModel() {
        let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 8)
        var rng = SplitRandom(seed: 5)
        let p = KeepProbabilities(attention: (0..<2).map { _ in (0..<2).map { _ in rng.next() } },
                                  mlp: (0..<2).map { _ in (0..<8).map { _ in rng.next() } })
        let mask = p.hardMask(keepRatio: 0.6, scope: .joint, config: config)
        let kept = mask.keptParameters(in: config).prunable
        let dense = config.parameterCount.prunable
        XCTAssertLessThanOrEqual(Double(kept), 0.6 * Double(dense) + Double(config.unitParameterCost(.attention, layer: 0)))
        XCTAssertGreaterThanOrEqual(Double(kept), 0.6 * Double(dense) - Double(config.unitParameterCost(.attention, layer: 0)))
    }
}

func idsOf(_ flags: [Int]) -> [Int] { flags.indices.filter { flags[$0] != 0 } }

func keptLists(_ mask: StructureMask, _ kind: StructureKind) -> [[Int]] {
    mask.layers.map { kind == .attention ? $0.keptKVGroups : $0.keptChannels }
}

func doubleMatrix(_ value: Any?, _ what: String) throws -> [[Double]] {
    guard let rows = value as? [[NSNumber]] else { throw FixtureShapeError(description: "fixture key \(what) missing or not a matrix") }
    return rows.map { $0.map(\.doubleValue) }
}

struct FixtureShapeError: Error, CustomStringConvertible { let description: String }
