import Essentials
import Foundation
import Kernels
import XCTest

/// The int8 projection kernel (`Int8Linear`, `Int8Matrix`) on small hand-made matrices against Float32 products.
final class Int8KernelTests: XCTestCase {
    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = Xoshiro256(seed: seed)
        return (0..<count).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53)) * 2 - 1 }
    }

    static func reference(_ x: [Float], _ w: [Float], rows: Int, inputs: Int, outputs: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * outputs)
        for t in 0..<rows { for j in 0..<outputs {
            var s: Double = 0
            for c in 0..<inputs { s += Double(x[t * inputs + c]) * Double(w[j * inputs + c]) }
            out[t * outputs + j] = Float(s)
        } }
        return out
    }

    /// Relative Frobenius error ‖a − b‖ / ‖b‖.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let num = zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        let den = b.reduce(0.0) { $0 + Double($1 * $1) }
        return (num / den).squareRoot()
    }

    /// Per-token u8 activations × per-row s8 weights reproduce the Float32 product to about 8-bit precision; the
    /// zero point is removed exactly (inputs all positive, all negative, and mixed), an outlier activation 500× the
    /// others is carried in Float32, bias and accumulate work. Tolerance: relative Frobenius error 1.5e-2 — two 8-bit
    /// roundings (≈ 0.4 % each for uniform data, summed over 96 products) with a margin.
    func testApplyMatchesFloatProduct() throws {
        try DNNL.load()
        let rows = 37, inputs = 100, outputs = 45
        var x = Self.values(rows * inputs, seed: 1)
        for c in 0..<inputs { x[c] = abs(x[c]) + 0.5; x[inputs + c] = -abs(x[inputs + c]) - 0.5 }   // one-signed rows
        x[5 * inputs + 7] = 500                                                                          // an outlier
        let w = Self.values(outputs * inputs, seed: 2)
        let bias = Self.values(outputs, seed: 3)
        let matrix = Int8Matrix(quantizing: w, rows: outputs, columns: inputs)
        var scratch = Int8Scratch(rows: rows, inputs: inputs, outputs: outputs)
        var out = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
            Int8Linear.apply(xp.baseAddress!, rows: rows, weights: matrix, bias: bias, out: op.baseAddress!, accumulate: false, scratch: &scratch)
        } }
        var expected = Self.reference(x, w, rows: rows, inputs: inputs, outputs: outputs)
        for t in 0..<rows { for j in 0..<outputs { expected[t * outputs + j] += bias[j] } }
        XCTAssertLessThan(Self.relativeError(out, expected), 1.5e-2)
        let outlierRow = Array(out[(5 * outputs)..<(6 * outputs)]), expectedRow = Array(expected[(5 * outputs)..<(6 * outputs)])
        XCTAssertLessThan(Self.relativeError(outlierRow, expectedRow), 1.5e-2, "the outlier's token keeps its precision")

        // accumulate: out += x · wᵀ
        let before = out
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
            Int8Linear.apply(xp.baseAddress!, rows: rows, weights: matrix, out: op.baseAddress!, accumulate: true, scratch: &scratch)
        } }
        let added = zip(out, before).map { $0 - $1 }
        XCTAssertLessThan(Self.relativeError(added, Self.reference(x, w, rows: rows, inputs: inputs, outputs: outputs)), 1.5e-2)
    }

    /// The producing `apply` (inputs made as they are quantized) computes exactly what `apply` computes: same bits,
    /// outliers included. So does `apply` on the OpenMP team (`Parallel.withOpenMPTeam`). Tolerance: none.
    func testRowPathsAndOpenMPTeamMatchApplyBitForBit() throws {
        try DNNL.load()
        let rows = 150, inputs = 100, outputs = 70
        var x = Self.values(rows * inputs, seed: 11)
        for t in stride(from: 0, to: rows, by: 7) { x[t * inputs + (t % inputs)] = 300 }    // outliers on every 7th token
        let w = Self.values(outputs * inputs, seed: 12)
        let matrix = Int8Matrix(quantizing: w, rows: outputs, columns: inputs)
        func applied(team: Bool) -> [Float] {
            var scratch = Int8Scratch(rows: rows, inputs: inputs, outputs: outputs)
            var out = [Float](repeating: 0, count: rows * outputs)
            let run = {
                x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
                    Int8Linear.apply(xp.baseAddress!, rows: rows, weights: matrix, out: op.baseAddress!, accumulate: false, scratch: &scratch)
                } }
            }
            if team { Parallel.withOpenMPTeam(run) } else { run() }
            return out
        }
        let expected = applied(team: false)
        XCTAssertEqual(applied(team: true), expected, "on the OpenMP team")
        var produced = [Float](repeating: 0, count: rows * outputs)
        var scratch = Int8Scratch(rows: rows, inputs: inputs, outputs: outputs)
        x.withUnsafeBufferPointer { xp in produced.withUnsafeMutableBufferPointer { op in
            Int8Linear.apply(rows: rows, weights: matrix, out: op.baseAddress!, accumulate: false, scratch: &scratch) { t, row in
                row.update(from: xp.baseAddress! + t * inputs, count: inputs)
            }
        } }
        XCTAssertEqual(produced, expected, "producing apply")
        // multiply keeps the products; each row dequantized from them, inside a second producing apply's workspace
        // (down_proj's inputs made from gate | up), is apply's row.
        var rowsFromProducts = [Float](repeating: 0, count: rows * outputs)
        var second = Int8Scratch(rows: rows, inputs: outputs, outputs: 1)
        let one = Int8Matrix(quantizing: [Float](repeating: 0.5, count: outputs), rows: 1, columns: outputs)
        var ignored = [Float](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { xp in rowsFromProducts.withUnsafeMutableBufferPointer { rp in ignored.withUnsafeMutableBufferPointer { ip in
            Int8Linear.multiply(rows: rows, weights: matrix, scratch: &scratch, producing: { t, row in
                row.update(from: xp.baseAddress! + t * inputs, count: inputs)
            }, then: { products in
                XCTAssertEqual(products.width, outputs)
                Int8Linear.apply(rows: rows, weights: one, out: ip.baseAddress!, accumulate: false, scratch: &second,
                                 workspace: outputs) { t, row, space in
                    products.dequantize(row: t, into: space)
                    (rp.baseAddress! + t * outputs).update(from: space, count: outputs)
                    row.update(from: space, count: outputs)
                }
            })
        } } }
        XCTAssertEqual(rowsFromProducts, expected, "multiply, then dequantize(row:)")
    }

    /// A token whose squares all underflow comes out finite and tiny; a token with a NaN input (and more large
    /// values than outlier slots; both once sent the quantizer's widening loop round forever) comes out NaN in every output, and the other tokens are what they are without
    /// it; the blocked head gives that token a NaN log-probability.
    func testNaNTokenComesOutNaNWithoutHanging() throws {
        try DNNL.load()
        let rows = 8, inputs = 64, outputs = 24
        var x = Self.values(rows * inputs, seed: 31)
        let w = Self.values(outputs * inputs, seed: 32)
        let matrix = Int8Matrix(quantizing: w, rows: outputs, columns: inputs)
        func applied(_ x: [Float]) -> [Float] {
            var scratch = Int8Scratch(rows: rows, inputs: inputs, outputs: outputs)
            var out = [Float](repeating: 0, count: rows * outputs)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { op in
                Int8Linear.apply(xp.baseAddress!, rows: rows, weights: matrix, out: op.baseAddress!, accumulate: false, scratch: &scratch)
            } }
            return out
        }
        // A token of values whose squares all underflow, more than 16 of them negative: its limit was 0 forever.
        var tiny = x
        for c in 0..<inputs { tiny[2 * inputs + c] = (c % 2 == 0 ? -1e-24 : 2e-24) * Float(c + 1) }
        XCTAssertTrue(applied(tiny)[(2 * outputs)..<(3 * outputs)].allSatisfy { $0.isFinite && abs($0) < 1e-18 }, "tiny token")
        let clean = applied(x)
        x[3 * inputs + 5] = .nan
        for c in 20..<44 { x[3 * inputs + c] = 1e4 }
        let dirty = applied(x)
        for t in 0..<rows {
            let row = Array(dirty[(t * outputs)..<((t + 1) * outputs)])
            if t == 3 { XCTAssertTrue(row.allSatisfy(\.isNaN), "token 3") } else { XCTAssertEqual(row, Array(clean[(t * outputs)..<((t + 1) * outputs)])) }
        }
        var logProbabilities = [Double](repeating: 0, count: rows)
        x.withUnsafeBufferPointer { xp in logProbabilities.withUnsafeMutableBufferPointer { lp in
            Int8Linear.logSoftmaxAtTargets(xp.baseAddress!, rows: rows, weights: matrix, targets: [Int](repeating: 1, count: rows),
                                           logProbabilities: lp.baseAddress!, isGreedy: nil)
        } }
        XCTAssertTrue(logProbabilities[3].isNaN)
        XCTAssertTrue(logProbabilities.enumerated().allSatisfy { $0.offset == 3 || $0.element.isFinite })
    }

    /// The int8 head's blocked log-softmax (`logSoftmaxAtTargets`) equals log-softmax over `apply`'s logits
    /// (`Ops.logSumExp`) for every block shape, including blocks that split the outputs unevenly, with outliers, and
    /// finds the first argmax. Tolerance: 1e-6 absolute on the log-probability: the target logit is the same Float,
    /// and only the log-sum-exp changes, by the order of its Float partial sums (relative error of a sum of up to
    /// 1,024 terms ≲ 1e-7) and the rescaling of the running sum in Double.
    func testBlockedLogSoftmaxMatchesApply() throws {
        try DNNL.load()
        let rows = 40, inputs = 64, outputs = 300
        var x = Self.values(rows * inputs, seed: 21)
        for t in stride(from: 0, to: rows, by: 5) { x[t * inputs + 3] = 200 }
        var w = Self.values(outputs * inputs, seed: 22)
        for c in 0..<inputs { w[250 * inputs + c] = w[40 * inputs + c] }                 // outputs 40 and 250 tie
        let matrix = Int8Matrix(quantizing: w, rows: outputs, columns: inputs)
        var scratch = Int8Scratch(rows: rows, inputs: inputs, outputs: outputs)
        var logits = [Float](repeating: 0, count: rows * outputs)
        x.withUnsafeBufferPointer { xp in logits.withUnsafeMutableBufferPointer { op in
            Int8Linear.apply(xp.baseAddress!, rows: rows, weights: matrix, out: op.baseAddress!, accumulate: false, scratch: &scratch)
        } }
        var targets = (0..<rows).map { ($0 * 37) % outputs }
        targets[3] = -1
        var expected = [Double](repeating: 0, count: rows), argmax = [Int](repeating: 0, count: rows)
        logits.withUnsafeBufferPointer { l in
            for t in 0..<rows {
                let row = l.baseAddress! + t * outputs
                var best = 0
                for j in 1..<outputs where row[j] > row[best] { best = j }
                argmax[t] = best
                if t == 7 { targets[t] = best }
                expected[t] = Double(row[max(0, targets[t])]) - Ops.logSumExp(row, count: outputs)
            }
        }
        for (blockRows, blockOutputs) in [(128, 8192), (7, 64), (1, 299), (16, 1)] {
            var got = [Double](repeating: 99, count: rows)
            var greedy = [Bool](repeating: false, count: rows)
            x.withUnsafeBufferPointer { xp in got.withUnsafeMutableBufferPointer { g in greedy.withUnsafeMutableBufferPointer { gr in
                Int8Linear.logSoftmaxAtTargets(xp.baseAddress!, rows: rows, weights: matrix, targets: targets, blockRows: blockRows,
                                               blockOutputs: blockOutputs, logProbabilities: g.baseAddress!, isGreedy: gr.baseAddress!)
            } } }
            for t in 0..<rows where targets[t] >= 0 {
                XCTAssertEqual(got[t], expected[t], accuracy: 1e-6, "token \(t), blocks \(blockRows) x \(blockOutputs)")
                XCTAssertEqual(greedy[t], argmax[t] == targets[t], "token \(t), blocks \(blockRows) x \(blockOutputs)")
            }
            XCTAssertEqual(got[3], 99, "a row without a target is left alone")
            XCTAssertTrue(greedy[7], "the argmax target is greedy")
        }
    }

    /// On the OpenMP team every chunk runs once, on at most `Parallel.threads` threads.
    func testOpenMPTeamRunsEveryChunkOnce() throws {
        try DNNL.load()
        XCTAssertTrue(Parallel.openMPTeamAvailable, "Debian's oneDNN uses OpenMP, so the team must be there")
        let count = 1000
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: count)
        Parallel.withOpenMPTeam {
            Parallel.forEachChunk(count) { range in for i in range { hits[i] += 1 } }
        }
        XCTAssertEqual((0..<count).filter { hits[$0] != 1 }, [])
    }

    /// Gathering rows and columns of the quantized dense matrix equals quantizing the gathered Float32 matrix for
    /// rows (same per-row scales, exactly), and keeps the dense row scales for columns; smoothing only rescales.
    func testGatherAndSmoothing() {
        let w = Self.values(6 * 8, seed: 4)
        let m = Int8Matrix(quantizing: w, rows: 6, columns: 8)
        let stacked = Int8Matrix.stackingRowBlocks([(m, [2, 0], 2), (m, [5], 1)])
        let rows = [4, 5, 0, 1, 5]
        let direct = Int8Matrix(quantizing: rows.flatMap { w[($0 * 8)..<(($0 + 1) * 8)] }, rows: 5, columns: 8)
        XCTAssertEqual(stacked.values, direct.values)
        XCTAssertEqual(stacked.scales, direct.scales)
        XCTAssertEqual(stacked.rowSums, direct.rowSums)
        let columns = m.keepingColumnBlocks([3, 1], blockSize: 2)
        XCTAssertEqual(columns.columns, 4)
        XCTAssertEqual(columns.scales, m.scales)
        for r in 0..<6 {
            XCTAssertEqual(Array(columns.values[(r * 4)..<(r * 4 + 4)]), [6, 7, 2, 3].map { m.values[r * 8 + $0] })
            XCTAssertEqual(columns.rowSums[r], [6, 7, 2, 3].reduce(Int32(0)) { $0 + Int32(m.values[r * 8 + $1]) })
        }
        // Smoothing by 2 on every column halves the weights before quantization: same codes, half the scales.
        let smoothed = Int8Matrix(quantizing: w, rows: 6, columns: 8, smoothing: [Float](repeating: 2, count: 8))
        XCTAssertEqual(smoothed.values, m.values)
        for (a, b) in zip(smoothed.scales, m.scales) { XCTAssertEqual(a, b / 2, accuracy: 1e-7) }
    }

    /// The error a user sees without oneDNN names the library and the package to install.
    func testMissingLibraryMessage() {
        let text = KernelError.dnnlUnavailable("libdnnl.so.2: cannot open shared object file").description
        XCTAssertTrue(text.contains("libdnnl.so.2") && text.contains("apt-get install libdnnl-dev"), text)
    }
}
