import XCTest
import Essentials
import FixtureSupport
import Checkpoints
@testable import Pruning

final class ProjectionTests: XCTestCase {
    /// fixtures/pruning/projection.json (float64 numpy): v* and s to abs 1e-9 (both sides sum in Double, only the
    /// summation order differs, ~1e-13 here); the number of midpoint evaluations exactly.
    func testProjectionGolden() throws {
        let fixture = try Shared.json("fixtures/pruning/projection.json")
        let cases: [[String: Any]] = try fixture.get("cases")
        XCTAssertEqual(cases.count, 10)
        let tol = Tolerance(absolute: 1e-9)
        for c in cases {
            let name: String = try c.get("name")
            var z: [Double] = try c.get("z")
            let k: Double = try c.get("k")
            let keepRatio: Double = try c.get("keep_ratio")
            XCTAssertEqual(keepRatio * Double(z.count), k, "\(name): budget is keep_ratio · n")
            let result = projectOntoBudget(&z, budget: k)
            XCTAssertEqual(result.evaluations, try c.get("n_evals", as: Int.self), "\(name): n_evals")
            XCTAssertTrue(tol.accepts(result.shift, try c.get("v_star")), "\(name): v* \(result.shift)")
            XCTAssertTrue(tol.accepts(result.excessAtZero, try c.get("f0")), "\(name): f0 \(result.excessAtZero)")
            XCTAssertNil(compareAll(z, try c.get("s"), tol, "\(name): s"))
            XCTAssertTrue(tol.accepts(z.reduce(0, +), try c.get("sum_s")), "\(name): sum s")
        }
    }

    /// Splitting one vector into segments (global mode over layers) must give the same result as the flat vector.
    func testSegmentedEqualsFlat() throws {
        var rng = SplitRandom(seed: 3)
        var flat = (0..<300).map { _ in 0.7 + 0.4 * (rng.next() - 0.5) }
        var segments = [Array(flat[0..<100]), Array(flat[100..<101]), [], Array(flat[101...])]
        let a = projectOntoBudget(&flat, budget: 0.5 * 300)
        let b = projectOntoBudget(&segments, budget: 0.5 * 300)
        XCTAssertEqual(a.shift, b.shift, accuracy: 1e-12)
        XCTAssertEqual(a.evaluations, b.evaluations)
        XCTAssertNil(compareAll(flat, Array(segments.joined()), Tolerance(absolute: 1e-12), "segmented s"))
        XCTAssertLessThanOrEqual(flat.reduce(0, +), 150 + 1e-3)
    }

    /// Large vectors essentially never meet the 1e-3 stop, so the bisection runs its 21 midpoints.
    func testLargeVectorRuns21Evaluations() {
        var rng = SplitRandom(seed: 9)
        var z = (0..<200_000).map { _ in 0.5 + 0.6 * rng.next() }
        let r = projectOntoBudget(&z, budget: 0.7 * 200_000)
        XCTAssertEqual(r.evaluations, BudgetProjection.maximumEvaluations)
        XCTAssertTrue(z.allSatisfy { $0 >= 0 && $0 <= 1 })
        // The last midpoint is within max(z)/2^21 of the root; each element moves by at most that much.
        XCTAssertLessThan(abs(z.reduce(0, +) - 0.7 * 200_000), 200_000 * 1.1 / 1_048_576 + 1e-6)
    }

    /// Per-layer scope projects every layer and kind on its own; global pools all layers of a kind.
    func testScopes() throws {
        let config = tinyConfig(layers: 3, kvHeads: 4, groupSize: 2, ffn: 6)
        var p = KeepProbabilities.uniform(config, value: 0.9)
        p.attention[0] = [1.2, 1.0, 0.9, 0.8]
        var perLayer = p
        let rl = perLayer.projectOntoBudget(keepRatio: 0.5, scope: .perLayer, config: config)
        XCTAssertEqual(rl.count, 6)
        for l in 0..<3 {
            XCTAssertLessThanOrEqual(perLayer.attention[l].reduce(0, +), 2 + 1e-3)
            XCTAssertLessThanOrEqual(perLayer.mlp[l].reduce(0, +), 3 + 1e-3)
        }
        var global = p
        let rg = global.projectOntoBudget(keepRatio: 0.5, scope: .global, config: config)
        XCTAssertEqual(rg.count, 2)
        XCTAssertEqual(rg[0].budget, 6)
        XCTAssertEqual(rg[1].budget, 9)
        XCTAssertLessThanOrEqual(global.attention.joined().reduce(0, +), 6 + 1e-3)
        // Global: one shift for all layers, so layer 0 (higher scores) keeps more than the others.
        XCTAssertGreaterThan(global.attention[0].reduce(0, +), global.attention[1].reduce(0, +))
    }

    /// Joint budget: Σ cost_i s_i ≤ ρ Σ cost_i, each score shifted in proportion to its cost.
    func testJointBudgetWeightedByCost() throws {
        let config = tinyConfig(layers: 2, kvHeads: 2, groupSize: 2, ffn: 8)
        let groupCost = Double(config.unitParameterCost(.attention, layer: 0))   // (2·2+2)·4·8 = 192
        let channelCost = Double(config.unitParameterCost(.mlp, layer: 0))       // 3·8 = 24
        XCTAssertEqual(groupCost, 192)
        XCTAssertEqual(channelCost, 24)
        var p = KeepProbabilities.uniform(config, value: 1.0)
        let r = p.projectOntoBudget(keepRatio: 0.6, scope: .joint, config: config)
        XCTAssertEqual(r.count, 1)
        let keptCost = p.attention.joined().reduce(0, +) * groupCost + p.mlp.joined().reduce(0, +) * channelCost
        let totalCost = 4 * groupCost + 16 * channelCost
        let meanCost = totalCost / 20     // the 1e-3 tolerance is in units of one average structure
        XCTAssertLessThan(abs(keptCost - 0.6 * totalCost), 1e-3 * meanCost)
        // Equal starting scores: the costlier KV groups are pushed down 8× as far as channels.
        let dropA = 1 - p.attention[0][0], dropM = 1 - p.mlp[0][0]
        XCTAssertEqual(dropA / dropM, groupCost / channelCost, accuracy: 1e-9)
    }
}

/// A tiny deterministic uniform [0,1) source for test inputs: Essentials' SplitMix64 (its stream is pinned to
/// Vigna's reference values by `WindowsTests`), 53 bits a draw.
struct SplitRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> Double { Double(generator.next() >> 11) * 0x1p-53 }
}

/// A uniform toy config: hidden 8, head dim 4.
func tinyConfig(layers: Int, kvHeads: Int, groupSize: Int, ffn: Int, bias: Bool = false) -> ModelConfig {
    ModelConfig(architecture: "llama", hiddenSize: 8, vocabSize: 16,
                layers: Array(repeating: LayerSpec(queryHeads: kvHeads * groupSize, kvHeads: kvHeads, headDim: 4, ffnDim: ffn),
                              count: layers),
                normEpsilon: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, attentionBias: bias, contextLength: 64)
}
