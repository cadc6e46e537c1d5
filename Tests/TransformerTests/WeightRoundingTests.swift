import Checkpoints
import FixtureSupport
import Foundation
import Kernels
import Transformer
import XCTest

/// `WeightRounding`, the yardstick rows of `bench --nll-weight-rounding`: exact roundings of single values and of a
/// real checkpoint's matrices, and which tensors it touches.
final class WeightRoundingTests: XCTestCase {
    /// bfloat16 rounds to nearest with ties to even, and overflows to infinity past its largest finite value.
    func testBfloat16RoundsToNearestEven() {
        func bf16(_ x: Float) -> Float { WeightRounding.bf16.round([x], rows: 1, columns: 1)[0] }
        let ulp: Float = 0x1p-7   // bfloat16's spacing in [1, 2)
        XCTAssertEqual(bf16(1), 1)
        XCTAssertEqual(bf16(1 + ulp / 2), 1, "a tie goes to the even neighbour 1")
        XCTAssertEqual(bf16(1 + 3 * ulp / 2), 1 + 2 * ulp, "a tie goes to the even neighbour 1 + 2 ulp")
        XCTAssertEqual(bf16(1 + ulp / 2 + 0x1p-20), 1 + ulp, "just above the tie rounds up")
        XCTAssertEqual(bf16(-(1 + ulp / 2 + 0x1p-20)), -(1 + ulp))
        XCTAssertEqual(bf16(.greatestFiniteMagnitude), .infinity)
        XCTAssertTrue(bf16(.nan).isNaN)
        XCTAssertEqual(bf16(-.infinity), -.infinity)
        XCTAssertEqual(WeightRounding.fp16.round([1 + 0x1p-11, 65_520], rows: 1, columns: 2), [1, .infinity],
                       "fp16: a tie to even, and past 65,504 infinity")
    }

    /// On stories260K: every layer's seven projections and the head are exactly `round` of the originals (so none
    /// is skipped); `int8` is the int8 forward's codes times their row scales; fp16 and bf16 move values normal in
    /// both formats by at most half their spacing; norms and the embedding stay, and the tied head becomes a
    /// rounded copy.
    func testAppliedToACheckpoint() throws {
        let loaded = try CheckpointLoader.load(path: try Shared.url("models/stories260K/stories260K.bin").path)
        let config = loaded.config, weights = loaded.weights
        let d = config.hiddenSize
        XCTAssertNil(weights.head, "stories260K ties its head to the embedding")

        for (rounding, bits) in [(WeightRounding.fp16, 10), (.bf16, 7), (.int8, 0)] {
            let rounded = rounding.applied(to: weights, config: config)
            for (l, spec) in config.layers.enumerated() {
                let (a, b) = (weights.layers[l], rounded.layers[l])
                let matrices: [(String, [Float], [Float], Int, Int)] = [
                    ("wq", a.wq, b.wq, spec.queryDim, d), ("wk", a.wk, b.wk, spec.kvDim, d), ("wv", a.wv, b.wv, spec.kvDim, d),
                    ("wo", a.wo, b.wo, d, spec.queryDim), ("gate", a.gate, b.gate, spec.ffnDim, d), ("up", a.up, b.up, spec.ffnDim, d),
                    ("down", a.down, b.down, d, spec.ffnDim),
                ]
                for (name, original, result, rows, columns) in matrices {
                    XCTAssertEqual(result, rounding.round(original, rows: rows, columns: columns), "\(rounding) layer \(l) \(name)")
                    XCTAssertNotEqual(result, original, "\(rounding) layer \(l) \(name) was rounded")
                }
                XCTAssertEqual(b.attentionNorm, a.attentionNorm)
                XCTAssertEqual(b.mlpNorm, a.mlpNorm)
            }
            XCTAssertEqual(rounded.head, rounding.round(weights.tokenEmbedding, rows: config.vocabSize, columns: d))
            XCTAssertEqual(rounded.tokenEmbedding, weights.tokenEmbedding)
            XCTAssertEqual(rounded.finalNorm, weights.finalNorm)
            if bits > 0 {
                for (a, b) in zip(weights.layers.last!.wq, rounded.layers.last!.wq) where abs(a) >= 0x1p-14 {
                    // Half a unit in the last place of the rounded format, relative.
                    XCTAssertLessThanOrEqual(abs(b - a), abs(a) * Float(sign: .plus, exponent: -bits - 1, significand: 1) * 1.000_001,
                                             "\(rounding): \(a) -> \(b)")
                }
            }
        }
        let spec = config.layers[0]
        let codes = Int8Matrix(quantizing: weights.layers[0].gate, rows: spec.ffnDim, columns: d)
        let int8Gate = WeightRounding.int8.round(weights.layers[0].gate, rows: spec.ffnDim, columns: d)
        for (i, value) in int8Gate.enumerated() {
            XCTAssertEqual(value, codes.scales[i / d] * Float(codes.values[i]), "gate[\(i)]")
        }
    }
}
