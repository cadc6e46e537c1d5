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
        let ulp: Float = 0x1p-7   // bfloat16's spacing in [1, 2)
        XCTAssertEqual(WeightRounding.bfloat16(1), 1)
        XCTAssertEqual(WeightRounding.bfloat16(1 + ulp / 2), 1, "a tie goes to the even neighbour 1")
        XCTAssertEqual(WeightRounding.bfloat16(1 + 3 * ulp / 2), 1 + 2 * ulp, "a tie goes to the even neighbour 1 + 2 ulp")
        XCTAssertEqual(WeightRounding.bfloat16(1 + ulp / 2 + 0x1p-20), 1 + ulp, "just above the tie rounds up")
        XCTAssertEqual(WeightRounding.bfloat16(-(1 + ulp / 2 + 0x1p-20)), -(1 + ulp))
        XCTAssertEqual(WeightRounding.bfloat16(.greatestFiniteMagnitude), .infinity)
        XCTAssertTrue(WeightRounding.bfloat16(.nan).isNaN)
        XCTAssertEqual(WeightRounding.bfloat16(-.infinity), -.infinity)
        XCTAssertEqual(WeightRounding.fp16.round([1 + 0x1p-11, 65_520], rows: 1, columns: 2), [1, .infinity],
                       "fp16: a tie to even, and past 65,504 infinity")
    }

    /// On stories260K: `int8` gives exactly the int8 forward's weight codes times their row scales; fp16 and bf16
    /// move every matrix by at most half their spacing; only projections and the head change, and a tied head
    /// becomes a rounded copy while the embedding stays.
    func testAppliedToACheckpoint() throws {
        let loaded = try CheckpointLoader.load(path: try Shared.url("models/stories260K/stories260K.bin").path)
        let config = loaded.config, weights = loaded.weights
        let d = config.hiddenSize, spec = config.layers[0]
        XCTAssertNil(weights.head, "stories260K ties its head to the embedding")

        let int8 = WeightRounding.int8.applied(to: weights, config: config)
        let codes = Int8Matrix(quantizing: weights.layers[0].gate, rows: spec.ffnDim, columns: d)
        for (i, value) in int8.layers[0].gate.enumerated() {
            XCTAssertEqual(value, codes.scales[i / d] * Float(codes.values[i]), "gate[\(i)]")
        }
        XCTAssertNotEqual(int8.layers[0].down, weights.layers[0].down)
        let head = try XCTUnwrap(int8.head)
        XCTAssertEqual(head, Int8Matrix(quantizing: weights.tokenEmbedding, rows: config.vocabSize, columns: d).dequantized())
        XCTAssertEqual(int8.tokenEmbedding, weights.tokenEmbedding)
        XCTAssertEqual(int8.layers[0].attentionNorm, weights.layers[0].attentionNorm)
        XCTAssertEqual(int8.finalNorm, weights.finalNorm)

        for (rounding, bits) in [(WeightRounding.fp16, 10), (.bf16, 7)] {
            let rounded = rounding.applied(to: weights, config: config)
            for (a, b) in zip(weights.layers.last!.wq, rounded.layers.last!.wq) where abs(a) >= 0x1p-14 {
                // Half a unit in the last place of the rounded format, relative (values normal in fp16 too).
                XCTAssertLessThanOrEqual(abs(b - a), abs(a) * Float(sign: .plus, exponent: -bits - 1, significand: 1) * 1.000_001,
                                         "\(rounding): \(a) -> \(b)")
            }
            XCTAssertEqual(rounded.tokenEmbedding, weights.tokenEmbedding)
        }
    }
}
