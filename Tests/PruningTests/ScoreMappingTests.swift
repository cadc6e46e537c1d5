import XCTest
import FixtureSupport
@testable import Pruning

final class ScoreMappingTests: XCTestCase {
    /// fixtures/pruning/score_mappings.json (float64 numpy, unbiased std): abs 1e-9, since both sides compute in
    /// Double and differ only in summation order and libm's exp (a few ulps).
    func testSigmapAndNormGolden() throws {
        let fixture = try Shared.json("fixtures/pruning/score_mappings.json")
        let cases: [[String: Any]] = try fixture.get("cases")
        XCTAssertEqual(cases.count, 6)
        let tol = Tolerance(absolute: 1e-9)
        for c in cases {
            let name: String = try c.get("name")
            let x: [Double] = try c.get("x")
            let mu: Double = try c.get("mu")
            XCTAssertNil(compareAll(sigmap(x, mean: mu), try c.get("sigmap"), tol, "\(name) sigmap"))
            XCTAssertNil(compareAll(minMaxNorm(x, mean: mu), try c.get("norm"), tol, "\(name) norm"))
            let mask = Array(repeating: true, count: x.count)
            XCTAssertNil(compareAll(ScoreMapping.hybrid.keepProbabilities(metric: x, kind: .attention, mean: mu, initMask: mask),
                                    try c.get("sigmap"), tol, "\(name) hybrid attention"))
            XCTAssertNil(compareAll(ScoreMapping.hybrid.keepProbabilities(metric: x, kind: .mlp, mean: mu, initMask: mask),
                                    try c.get("norm"), tol, "\(name) hybrid mlp"))
        }
    }

    /// n = 1 is defined as μ (PyTorch would give NaN); n = 0 is empty; `constant` maps the init mask to c / 1 − c.
    func testEdgeCasesAndConstant() {
        XCTAssertEqual(sigmap([3.7], mean: 0.7), [0.7])
        XCTAssertEqual(minMaxNorm([3.7], mean: 0.7), [0.7])
        XCTAssertEqual(sigmap([5], mean: 1.4), [1.0])
        XCTAssertEqual(sigmap([], mean: 0.7), [])
        XCTAssertEqual(minMaxNorm([], mean: 0.7), [])
        XCTAssertEqual(ScoreMapping.constant(0.9).keepProbabilities(metric: [1, 2, 3], kind: .mlp, mean: 0.7,
                                                                    initMask: [true, false, true]),
                       [0.9, 1 - 0.9, 0.9])
        // The mean is exactly μ when the clip does not bite.
        let y = sigmap([0.2, 0.5, 0.1, 0.9, 0.4], mean: 0.6)
        XCTAssertEqual(y.reduce(0, +) / 5, 0.6, accuracy: 1e-12)
    }
}
