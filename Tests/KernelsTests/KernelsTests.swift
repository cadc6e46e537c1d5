import Essentials
import Foundation
import Kernels
import XCTest

/// Kernels against straightforward Double-precision references computed in the test.
final class KernelsTests: XCTestCase {
    /// The vector exp: relative error below 4e-7 over the range the forward pass uses (softmax inputs <= 0,
    /// SiLU arguments up to ±80), and exact 0 far below the range.
    func testVectorExp() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let v = Ops.exp(Ops.V(repeating: x))[0]
            let ref = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(v) - ref) / ref)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 4e-7)
        XCTAssertEqual(Ops.exp(Ops.V(repeating: -200))[0], 0)
    }

    /// `expOfShifted` (no clamps) is `exp` to the bit wherever a log-sum-exp or softmax calls it (x ≤ 88.7),
    /// including far below the range (0), at the clamp edges and at −∞ (a masked score). Tolerance: none.
    func testExpOfShiftedIsExpBelowTheTop() {
        var x: Float = -120
        while x < 88.7 {
            let v = Ops.V((0..<16).map { x + Float($0) * 0.0031 })
            XCTAssertEqual(unsafeBitCast(Ops.expOfShifted(v), to: SIMD16<UInt32>.self), unsafeBitCast(Ops.exp(v), to: SIMD16<UInt32>.self),
                           "at \(x)")
            x += 0.0493
        }
        let edges: [Float] = [-87.3, Float(-87.3).nextDown, Float(-87.3).nextUp, 0, -0, 88.7, -.infinity, -.greatestFiniteMagnitude]
        for edge in edges {
            XCTAssertEqual(Ops.expOfShifted(Ops.V(repeating: edge))[0].bitPattern, Ops.exp(Ops.V(repeating: edge))[0].bitPattern, "at \(edge)")
        }
    }

    /// logSumExp over a vocabulary-sized row vs Double (abs 1e-5 nats).
    func testLogSumExp() {
        var rng = Xoshiro256(seed: 11)
        let x = (0..<49_157).map { _ in Float(rng.nextUnitDouble() * 40 - 20) }
        let m = Double(x.max()!)
        let ref = m + Foundation.log(x.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
        let ours = x.withUnsafeBufferPointer { Ops.logSumExp($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(ours, ref, accuracy: 1e-5)
    }

    /// Softmax sums to 1 and matches Double (abs 1e-6 per entry).
    func testSoftmax() {
        var x: [Float] = (0..<37).map { Float($0 % 7) * 0.9 - 2 }
        let m = Double(x.max()!)
        let e = x.map { Foundation.exp(Double($0) - m) }
        let ref = e.map { $0 / e.reduce(0, +) }
        x.withUnsafeMutableBufferPointer { Ops.softmaxInPlace($0.baseAddress!, count: $0.count) }
        for (a, b) in zip(x, ref) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
    }

    /// RMSNorm vs the formula in Double (rel 1e-6).
    func testRMSNorm() {
        let dim = 37, rows = 3
        let x: [Float] = (0..<(dim * rows)).map { sin(Float($0)) * 3 }
        let w: [Float] = (0..<dim).map { 1 + Float($0) / 50 }
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in out.withUnsafeMutableBufferPointer { op in
            Ops.rmsNorm(xp.baseAddress!, weight: wp.baseAddress!, out: op.baseAddress!, rows: rows, dim: dim, eps: 1e-5)
        } } }
        for r in 0..<rows {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let s = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(dim) + 1e-5).squareRoot()
            for i in 0..<dim { XCTAssertEqual(Double(out[r * dim + i]), row[i] * s * Double(w[i]), accuracy: 1e-6 * abs(row[i] * s * Double(w[i])) + 1e-7) }
        }
    }

    /// SwiGLU vs silu(g)·u in Double (rel 1e-6).
    func testSwiGLU() {
        let width = 35
        let gu: [Float] = (0..<(2 * width)).map { Float($0) * 0.37 - 9 }
        var out = [Float](repeating: 0, count: width)
        gu.withUnsafeBufferPointer { g in out.withUnsafeMutableBufferPointer { o in Ops.swiGLU(g.baseAddress!, out: o.baseAddress!, rows: 1, width: width) } }
        for c in 0..<width {
            let g = Double(gu[c]), u = Double(gu[width + c])
            let ref = g / (1 + Foundation.exp(-g)) * u
            XCTAssertEqual(Double(out[c]), ref, accuracy: 1e-6 * abs(ref) + 1e-7)
        }
    }

    /// OpenBLAS loads (with the core type chosen from cpuid), and sgemm with strides and transposes matches a
    /// naive Double loop (abs 1e-4 for k = 70 products of magnitude < 1).
    func testGemm() throws {
        try BLAS.load()
        XCTAssertNotEqual(BLAS.coreName, "unknown")
        let m = 5, n = 7, k = 70
        var rng = Xoshiro256(seed: 3)
        let a = (0..<(m * (k + 3))).map { _ in Float(rng.nextUnitDouble() - 0.5) }   // [m, k] with lda k+3
        let b = (0..<(n * k)).map { _ in Float(rng.nextUnitDouble() - 0.5) }         // [n, k]
        var c = [Float](repeating: 1, count: m * n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            BLAS.gemm(m: m, n: n, k: k, a: ap.baseAddress!, lda: k + 3, b: bp.baseAddress!, transposeB: true, c: cp.baseAddress!, alpha: 2, beta: 1)
        } } }
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * (k + 3) + p]) * Double(b[j * k + p]) }
                XCTAssertEqual(Double(c[i * n + j]), 2 * s + 1, accuracy: 1e-4)
            }
        }
    }

    /// Every one of the 65,536 half and bfloat16 bit patterns converts exactly (vs Swift's Float16 and the
    /// definition of bfloat16 as the top half of a Float).
    func testHalfAndBFloat16Exhaustive() {
        for bits in 0...UInt16.max {
            let ours = Precision.float(fromHalf: bits)
            let ref = Float(Float16(bitPattern: bits))
            if ref.isNaN { XCTAssertTrue(ours.isNaN) } else { XCTAssertEqual(ours.bitPattern, ref.bitPattern, "half \(bits)") }
            XCTAssertEqual(Precision.float(fromBFloat16: bits).bitPattern, UInt32(bits) << 16)
        }
        XCTAssertEqual(Precision.bfloat16(from: 1.00390625), 0x3F80)  // tie rounds to even
        XCTAssertEqual(Precision.bfloat16(from: 1.01171875), 0x3F82)
    }

    /// xoshiro256** with SplitMix64 seeding is deterministic, and its state round-trips through Codable.
    func testRandomDeterminismAndState() throws {
        var a = Xoshiro256(seed: 42)
        _ = (0..<10).map { _ in a.next() }
        let saved = try JSONEncoder().encode(a)
        var b = try JSONDecoder().decode(Xoshiro256.self, from: saved)
        XCTAssertEqual((0..<100).map { _ in a.next() }, (0..<100).map { _ in b.next() })
        var c = Xoshiro256(seed: 43)
        var d = Xoshiro256(seed: 42)
        XCTAssertNotEqual(c.next(), d.next())
        let u = (0..<10_000).map { _ in d.nextUnitDouble() }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0, +) / 10_000, 0.5, accuracy: 0.02)
    }

    /// RoPE tables: a rotation preserves each pair's norm and position 0 is the identity.
    func testRotary() {
        let table = RotaryTable(headDim: 8, theta: 10_000, positions: 5)
        var x: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]
        let original = x
        x.withUnsafeMutableBufferPointer { table.apply($0.baseAddress!, heads: 1, position: 0) }
        XCTAssertEqual(x, original)
        x.withUnsafeMutableBufferPointer { table.apply($0.baseAddress!, heads: 1, position: 3) }
        for i in 0..<4 {
            let before = original[i] * original[i] + original[i + 4] * original[i + 4]
            XCTAssertEqual(x[i] * x[i] + x[i + 4] * x[i + 4], before, accuracy: 1e-4)
        }
    }
}
