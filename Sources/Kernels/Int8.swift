import Foundation
/// A weight matrix quantized symmetrically per output row to Int8: `w[r, c] · smoothing⁻¹[c] ≈ scales[r] · values[r, c]`,
/// with `scales[r] = max_c |w[r, c] / smoothing[c]| / 127`. Gathering rows or columns (a masked model) keeps each
/// row's scale, so the dense weights are quantized once and every mask only copies bytes.
///
/// `smoothing` (SmoothQuant, Xiao et al. 2023) moves per-channel activation outliers into the weights: the
/// activations are multiplied by `smoothing[c]` before they are quantized and the weight columns were divided by
/// it, so the product is unchanged while the activations' range shrinks.
public struct Int8Matrix: Sendable {
    /// Output rows.
    public let rows: Int
    /// Input columns.
    public let columns: Int
    /// [rows, columns], row-major.
    public let values: [Int8]
    /// [rows]: the dequantization scale of each row.
    public let scales: [Float]
    /// [rows]: Σ_c values[r, c], which removes the activations' zero point from the integer product.
    public let rowSums: [Int32]
    /// [columns] or nil: the factor each input channel is multiplied by before it is quantized.
    public let smoothing: [Float]?

    /// Quantizes `weights` ([rows, columns], row-major) per row, columns divided by `smoothing` ([columns]) when
    /// given; an all-zero row gets scale 1 and zeros.
    public init(quantizing weights: [Float], rows: Int, columns: Int, smoothing: [Float]? = nil) {
        precondition(weights.count == rows * columns, "Int8Matrix: \(weights.count) values for \(rows) x \(columns)")
        precondition(smoothing == nil || smoothing!.count == columns, "Int8Matrix: smoothing needs one factor per column")
        let divisors = smoothing ?? [Float](repeating: 1, count: columns)
        var q = [Int8](repeating: 0, count: rows * columns)
        var s = [Float](repeating: 1, count: rows)
        weights.withUnsafeBufferPointer { w in
            q.withUnsafeMutableBufferPointer { qb in
                s.withUnsafeMutableBufferPointer { sb in
                    let wp = w.baseAddress!, qp = qb.baseAddress!, sp = sb.baseAddress!
                    divisors.withUnsafeBufferPointer { dv in
                    let dp = dv.baseAddress!
                    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
                        var smoothed = [Float](repeating: 0, count: columns)
                        for r in range {
                            let row = wp + r * columns
                            var largest: Float = 0
                            for c in 0..<columns {
                                smoothed[c] = row[c] / dp[c]
                                largest = Swift.max(largest, Swift.abs(smoothed[c]))
                            }
                            guard largest > 0 else { continue }
                            sp[r] = largest / 127
                            let inverse = 127 / largest
                            let out = qp + r * columns
                            // Round to nearest with the 1.5·2^23 trick: the low byte of the sum's bits is the integer.
                            for c in 0..<columns {
                                out[c] = Int8(truncatingIfNeeded: (smoothed[c] * inverse + 12_582_912).bitPattern)
                            }
                        }
                    }
                    }
                }
            }
        }
        self.init(rows: rows, columns: columns, values: q, scales: s, smoothing: smoothing)
    }

    /// Wraps already quantized rows; computes the row sums.
    public init(rows: Int, columns: Int, values: [Int8], scales: [Float], smoothing: [Float]? = nil) {
        precondition(values.count == rows * columns, "Int8Matrix: \(values.count) values for \(rows) x \(columns)")
        var sums = [Int32](repeating: 0, count: rows)
        values.withUnsafeBufferPointer { v in
            for r in 0..<rows {
                var total: Int32 = 0
                let row = v.baseAddress! + r * columns
                for c in 0..<columns { total &+= Int32(row[c]) }
                sums[r] = total
            }
        }
        self.init(rows: rows, columns: columns, values: values, scales: scales, rowSums: sums, smoothing: smoothing)
    }

    /// Wraps quantized rows whose sums are known (rows gathered from a matrix keep theirs).
    init(rows: Int, columns: Int, values: [Int8], scales: [Float], rowSums: [Int32], smoothing: [Float]?) {
        precondition(values.count == rows * columns && scales.count == rows && rowSums.count == rows, "Int8Matrix: inconsistent shapes")
        precondition(smoothing == nil || smoothing!.count == columns, "Int8Matrix: smoothing needs one factor per column")
        self.smoothing = smoothing
        self.rows = rows
        self.columns = columns
        self.values = values
        self.scales = scales
        self.rowSums = rowSums
    }

    /// A matrix with no rows.
    public static func empty(columns: Int) -> Int8Matrix { Int8Matrix(rows: 0, columns: columns, values: [], scales: []) }

    /// The rows of blocks `blocks` (each `blockSize` consecutive rows) of every piece, stacked in order; all pieces
    /// have the same columns and smoothing. Builds fused q/k/v (head blocks) and gate/up (channel rows) from the
    /// dense matrices.
    public static func stackingRowBlocks(_ pieces: [(matrix: Int8Matrix, blocks: [Int], blockSize: Int)]) -> Int8Matrix {
        let columns = pieces.first?.matrix.columns ?? 0
        let smoothing = pieces.first?.matrix.smoothing
        var values = [Int8]()
        var scales = [Float]()
        var sums = [Int32]()
        let total = pieces.reduce(0) { $0 + $1.blocks.count * $1.blockSize }
        values.reserveCapacity(total * columns)
        scales.reserveCapacity(total)
        sums.reserveCapacity(total)
        for (m, blocks, size) in pieces {
            precondition(m.columns == columns && m.smoothing == smoothing, "stackingRowBlocks: columns or smoothing differ")
            for b in blocks {
                let rows = (b * size)..<((b + 1) * size)
                values.append(contentsOf: m.values[(rows.lowerBound * columns)..<(rows.upperBound * columns)])
                scales.append(contentsOf: m.scales[rows])
                sums.append(contentsOf: m.rowSums[rows])   // whole rows: their sums are the dense rows' sums
            }
        }
        return Int8Matrix(rows: total, columns: columns, values: values, scales: scales, rowSums: sums, smoothing: smoothing)
    }

    /// Every row keeping only column blocks `blocks` (each `blockSize` consecutive columns), in order: o_proj's kept
    /// heads, down_proj's kept channels. Row scales stay those of the dense rows.
    public func keepingColumnBlocks(_ blocks: [Int], blockSize: Int) -> Int8Matrix {
        let kept = blocks.count * blockSize
        if kept == columns && blocks == Array(0..<blocks.count) { return self }
        let out = gatherColumnBlocks(values, rows: rows, columns: columns, blocks: blocks, blockSize: blockSize, zero: Int8(0))
        let keptSmoothing = smoothing.map { f in blocks.flatMap { f[($0 * blockSize)..<(($0 + 1) * blockSize)] } }
        return Int8Matrix(rows: rows, columns: kept, values: out, scales: scales, smoothing: keptSmoothing)
    }
}

/// Scratch buffers of the int8 projections for inputs of up to `rows` × `inputs` and outputs of up to `outputs`.
public struct Int8Scratch {
    /// [rows, inputs]: the quantized activations.
    var activations: [UInt8]
    /// [rows, outputs]: the integer products.
    var products: [Int32]
    /// [rows]: each token's scale and zero point.
    var scales: [Float]
    var zeroPoints: [Int32]
    /// [rows, Int8Linear.maximumOutliers]: each token's outlier columns and the part of their value beyond the
    /// quantization range; [rows]: how many.
    var outlierColumns: [Int32]
    var outlierExcess: [Float]
    var outlierCounts: [Int32]

    /// Room for `rows` tokens of up to `inputs` input and `outputs` output features.
    public init(rows: Int, inputs: Int, outputs: Int) {
        activations = [UInt8](repeating: 0, count: rows * inputs)
        products = [Int32](repeating: 0, count: rows * outputs)
        scales = [Float](repeating: 0, count: rows)
        zeroPoints = [Int32](repeating: 0, count: rows)
        outlierColumns = [Int32](repeating: 0, count: rows * Int8Linear.maximumOutliers)
        outlierExcess = [Float](repeating: 0, count: rows * Int8Linear.maximumOutliers)
        outlierCounts = [Int32](repeating: 0, count: rows)
    }
}

/// Int8 projections: activations quantized per token (asymmetric u8 with a zero point), weights per output row
/// (symmetric s8), products summed in Int32 by oneDNN and dequantized to Float.
///
/// A token's few outlier activations (|x| above `outlierThreshold` × the token's RMS; SwiGLU outputs reach
/// hundreds of times the RMS on some tokens) would otherwise stretch its grid until the other channels get a
/// handful of levels. They are clipped to the threshold before quantization and their excess is added back in
/// Float32 against the int8 weight columns (LLM.int8()'s decomposition, per token): a few multiply-adds per
/// outlier and output.
public enum Int8Linear {
    /// The activation code range: 0...255, or 0...127 on CPUs without VNNI, where oneDNN's u8 × s8 kernels add
    /// pairs of products in 16 bits and 255 · 127 · 2 would saturate.
    public static let activationLevels: Int32 = DNNL.cpuHasVNNI ? 255 : 127
    /// Activations beyond this many times their token's RMS are outliers.
    public static let outlierThreshold: Float = 6
    /// At most this many outliers per token: when more exceed the threshold, it is doubled for that token.
    public static let maximumOutliers = 16

    /// `out[t, j] = Σ_c x[t, c] · w[j, c] (+ bias[j])`, or `+=` into `out` when `accumulate`; `x` is [rows, w.columns],
    /// `out` [rows, w.rows] with row stride `ldOut` (default w.rows). Requires `DNNL.load()`.
    public static func apply(_ x: UnsafePointer<Float>, rows: Int, weights w: Int8Matrix, bias: [Float]? = nil,
                             out: UnsafeMutablePointer<Float>, ldOut: Int? = nil, accumulate: Bool, scratch: inout Int8Scratch) {
        run(rows: rows, weights: w, scratch: &scratch, quantize: { tokens in
            quantizeRows(x, rows: rows, for: w, into: tokens)
        }, finish: { tokens, products in
            finishApply(tokens, products: products, rows: rows, weights: w, bias: bias, out: out, ldOut: ldOut, accumulate: accumulate)
        })
    }

    /// `quantizeRows` of `x` ([rows, w.columns]) with `w`'s smoothing, if any.
    static func quantizeRows(_ x: UnsafePointer<Float>, rows: Int, for w: Int8Matrix, into tokens: QuantizedTokens) {
        if let smoothing = w.smoothing {
            smoothing.withUnsafeBufferPointer { f in quantizeRows(x, rows: rows, width: w.columns, smoothing: f.baseAddress!, into: tokens) }
        } else {
            quantizeRows(x, rows: rows, width: w.columns, smoothing: nil, into: tokens)
        }
    }

    /// `apply` to inputs that are made row by row as they are quantized: `produce(t, row)` writes token t's
    /// `w.columns` inputs into `row` (a per-thread buffer, valid during the call; called concurrently for different
    /// t). The same codes as `apply` on the produced rows, without writing them all out and reading them back: for
    /// an input that only this projection reads (RMSNorm before q/k/v and gate/up, the gated unit before down_proj).
    public static func apply(rows: Int, weights w: Int8Matrix, bias: [Float]? = nil, out: UnsafeMutablePointer<Float>,
                             ldOut: Int? = nil, accumulate: Bool, scratch: inout Int8Scratch,
                             producing produce: (Int, UnsafeMutablePointer<Float>) -> Void) {
        apply(rows: rows, weights: w, bias: bias, out: out, ldOut: ldOut, accumulate: accumulate, scratch: &scratch,
              workspace: 0) { t, row, _ in produce(t, row) }
    }

    /// The producing `apply` with `workspace` more Floats per thread: `produce(t, row, space)` may use `space`
    /// ([workspace], valid during the call) for what it makes the row from (the down projection's gate | up row).
    public static func apply(rows: Int, weights w: Int8Matrix, bias: [Float]? = nil, out: UnsafeMutablePointer<Float>,
                             ldOut: Int? = nil, accumulate: Bool, scratch: inout Int8Scratch, workspace: Int,
                             producing produce: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        run(rows: rows, weights: w, scratch: &scratch, quantize: { tokens in
            quantizeProduced(rows: rows, for: w, into: tokens, workspace: workspace, produce)
        }, finish: { tokens, products in
            finishApply(tokens, products: products, rows: rows, weights: w, bias: bias, out: out, ldOut: ldOut, accumulate: accumulate)
        })
    }

    /// The quantization and integer GEMM of the producing `apply`, without the dequantization: `body` gets the
    /// products, from which it dequantizes the rows it needs one at a time (`Int8Products.dequantize(row:into:)`,
    /// the same bits as `apply`'s rows), while they are in cache, instead of all of them being written out as
    /// Float32 and read back. `scratch` must not be the one `body` quantizes into. With no rows or no outputs there
    /// is nothing to multiply and `body` is not called.
    public static func multiply(rows: Int, weights w: Int8Matrix, scratch: inout Int8Scratch,
                                producing produce: (Int, UnsafeMutablePointer<Float>) -> Void, then body: (Int8Products) -> Void) {
        run(rows: rows, weights: w, scratch: &scratch, quantize: { tokens in
            quantizeProduced(rows: rows, for: w, into: tokens, workspace: 0) { t, row, _ in produce(t, row) }
        }, finish: { tokens, products in
            w.values.withUnsafeBufferPointer { wv in
            w.scales.withUnsafeBufferPointer { ws in
            w.rowSums.withUnsafeBufferPointer { rs in
                let table = OutlierColumns(rows: rows, width: w.rows, tokens: tokens, weightValues: wv.baseAddress!, columns: w.columns,
                                           rowScales: ws.baseAddress!)
                body(Int8Products(tokens: tokens, products: products, width: w.rows, rowScales: ws.baseAddress!,
                                  rowSums: rs.baseAddress!, outliers: table))
            } } }
        })
    }

    /// The integer products of `multiply`, with what dequantizes them: valid inside its `body` only.
    public struct Int8Products {
        let tokens: QuantizedTokens
        let products: UnsafePointer<Int32>
        /// Outputs per row.
        public let width: Int
        let rowScales: UnsafePointer<Float>
        let rowSums: UnsafePointer<Int32>
        let outliers: OutlierColumns

        /// Row `t` of the projection's output, dequantized with its outliers into `o` ([width]).
        @inline(__always)
        public func dequantize(row t: Int, into o: UnsafeMutablePointer<Float>) {
            dequantizeRow(products + t * width, width: width, scale: tokens.scales[t], zeroPoint: tokens.zeroPoints[t],
                          rowScales: rowScales, rowSums: rowSums, bias: nil, out: o, accumulate: false)
            if !outliers.isEmpty { outliers.add(token: t, tokens: tokens, into: o) }
        }
    }

    /// Makes each row with `produce(t, row, space)` and quantizes it, `w`'s smoothing applied.
    private static func quantizeProduced(rows: Int, for w: Int8Matrix, into tokens: QuantizedTokens, workspace: Int,
                                         _ produce: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let k = w.columns
        func quantize(_ factors: UnsafePointer<Float>?) {
            Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: max(1, k + workspace))
                defer { row.deallocate() }
                let space = row + k
                if let factors {
                    for r in range { produce(r, row, space); quantizeRow(r, row, width: k, factors: factors, into: tokens) }
                } else {
                    for r in range { produce(r, row, space); quantizeRow(r, row, width: k, factors: nil, into: tokens) }
                }
            }
        }
        if let smoothing = w.smoothing { smoothing.withUnsafeBufferPointer { quantize($0.baseAddress!) } } else { quantize(nil) }
    }

    /// `dequantize` of `apply`'s products into `out`.
    private static func finishApply(_ tokens: QuantizedTokens, products: UnsafePointer<Int32>, rows: Int, weights w: Int8Matrix,
                                    bias: [Float]?, out: UnsafeMutablePointer<Float>, ldOut: Int?, accumulate: Bool) {
        w.values.withUnsafeBufferPointer { wv in
            w.scales.withUnsafeBufferPointer { ws in
                w.rowSums.withUnsafeBufferPointer { rs in
                    dequantize(products, rows: rows, width: w.rows, tokens: tokens, weightValues: wv.baseAddress!, columns: w.columns,
                               rowScales: ws.baseAddress!, rowSums: rs.baseAddress!, bias: bias,
                               out: out, ldOut: ldOut ?? w.rows, accumulate: accumulate)
                }
            }
        }
    }

    /// Quantizes with `quantize` into the scratch, then the integer GEMM, then `finish` with the products.
    private static func run(rows: Int, weights w: Int8Matrix, scratch: inout Int8Scratch, quantize: (QuantizedTokens) -> Void,
                            finish: (QuantizedTokens, UnsafePointer<Int32>) -> Void) {
        let k = w.columns, n = w.rows
        precondition(scratch.activations.count >= rows * k && scratch.products.count >= rows * n && scratch.scales.count >= rows,
                     "Int8Linear: scratch too small")
        if rows == 0 || n == 0 { return }
        scratch.activations.withUnsafeMutableBufferPointer { qa in
        scratch.products.withUnsafeMutableBufferPointer { pr in
        scratch.scales.withUnsafeMutableBufferPointer { ts in
        scratch.zeroPoints.withUnsafeMutableBufferPointer { tz in
        scratch.outlierColumns.withUnsafeMutableBufferPointer { oc in
        scratch.outlierExcess.withUnsafeMutableBufferPointer { oe in
        scratch.outlierCounts.withUnsafeMutableBufferPointer { on in
            let tokens = QuantizedTokens(values: qa.baseAddress!, scales: ts.baseAddress!, zeroPoints: tz.baseAddress!,
                                         outlierColumns: oc.baseAddress!, outlierExcess: oe.baseAddress!, outlierCounts: on.baseAddress!)
            quantize(tokens)
            w.values.withUnsafeBufferPointer { wv in
                DNNL.gemmU8S8S32(m: rows, n: n, k: k, a: qa.baseAddress!, b: wv.baseAddress!, c: pr.baseAddress!)
            }
            finish(tokens, pr.baseAddress!)
        } } } } } } }
    }

    /// Quantized activations of `rows` tokens: codes [rows, width], per-token scale and zero point, and outliers
    /// ([rows, maximumOutliers] columns and excess, [rows] counts).
    public struct QuantizedTokens {
        public let values: UnsafeMutablePointer<UInt8>
        public let scales: UnsafeMutablePointer<Float>
        public let zeroPoints: UnsafeMutablePointer<Int32>
        public let outlierColumns: UnsafeMutablePointer<Int32>
        public let outlierExcess: UnsafeMutablePointer<Float>
        public let outlierCounts: UnsafeMutablePointer<Int32>

        public init(values: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>, zeroPoints: UnsafeMutablePointer<Int32>,
                    outlierColumns: UnsafeMutablePointer<Int32>, outlierExcess: UnsafeMutablePointer<Float>,
                    outlierCounts: UnsafeMutablePointer<Int32>) {
            self.values = values; self.scales = scales; self.zeroPoints = zeroPoints
            self.outlierColumns = outlierColumns; self.outlierExcess = outlierExcess; self.outlierCounts = outlierCounts
        }
    }

    /// Quantizes each row of `x` ([rows, width]; times `smoothing` ([width]) per column when given) to u8 with its own
    /// scale and zero point over [lo, hi] = [min(x, 0), max(x, 0)] clipped to ± `outlierThreshold` · RMS(x):
    /// `scale = (hi − lo) / levels`, `zero = round(−lo / scale)`, `q = clamp(round(x / scale) + zero, 0, levels)`;
    /// what clipping cut off is recorded as outliers.
    public static func quantizeRows(_ x: UnsafePointer<Float>, rows: Int, width: Int, smoothing: UnsafePointer<Float>?,
                                    into tokens: QuantizedTokens) {
        // Two copies of the row loop, with and without the per-column factors (times 1 would be exact too, but it
        // costs a load and a multiply per element and pass).
        Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
            if let smoothing {
                for r in range { quantizeRow(r, x + r * width, width: width, factors: smoothing, into: tokens) }
            } else {
                for r in range { quantizeRow(r, x + r * width, width: width, factors: nil, into: tokens) }
            }
        }
    }

    /// Row `r` of `x` times `factors` (when given), loaded 16 lanes at `c`.
    @inline(__always)
    private static func load16(_ row: UnsafePointer<Float>, _ factors: UnsafePointer<Float>?, _ c: Int) -> Ops.V {
        let v = UnsafeRawPointer(row + c).loadUnaligned(as: Ops.V.self)
        guard let factors else { return v }
        return v * UnsafeRawPointer(factors + c).loadUnaligned(as: Ops.V.self)
    }

    /// Element `c` of a row times `factors[c]` (when given).
    @inline(__always)
    private static func load1(_ row: UnsafePointer<Float>, _ factors: UnsafePointer<Float>?, _ c: Int) -> Float {
        guard let factors else { return row[c] }
        return row[c] * factors[c]
    }

    /// `a` where `d` is negative, else `b` (non-NaN lanes): the lane-halving reductions of `quantizeRow`, whose
    /// stdlib `pointwiseMin`/`pointwiseMax` on SIMD8 and SIMD4 were out-of-line calls costing 2 % of an int8 step.
    @inline(__always)
    private static func select(signOf d: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        let m = unsafeBitCast(d, to: SIMD8<Int32>.self) &>> 31
        return unsafeBitCast((unsafeBitCast(a, to: SIMD8<Int32>.self) & m) | (unsafeBitCast(b, to: SIMD8<Int32>.self) & ~m),
                             to: SIMD8<Float>.self)
    }

    @inline(__always)
    private static func select(signOf d: SIMD4<Float>, _ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
        let m = unsafeBitCast(d, to: SIMD4<Int32>.self) &>> 31
        return unsafeBitCast((unsafeBitCast(a, to: SIMD4<Int32>.self) & m) | (unsafeBitCast(b, to: SIMD4<Int32>.self) & ~m),
                             to: SIMD4<Float>.self)
    }

    /// `quantizeRows` for token `r`, whose inputs are `row` ([width]).
    @inline(__always)
    private static func quantizeRow(_ r: Int, _ row: UnsafePointer<Float>, width: Int, factors: UnsafePointer<Float>?,
                                    into tokens: QuantizedTokens) {
        typealias V = Ops.V
        let levels = Float(activationLevels)
        var lo = V(repeating: 0), hi = V(repeating: 0), squares = V(repeating: 0)
        var c = 0
        while c + 16 <= width {
            let v = load16(row, factors, c)
            lo = Ops.select(signOf: v - lo, ifNegative: v, otherwise: lo)
            hi = Ops.maximum(hi, v)
            squares += v * v
            c += 16
        }
        // The extremes are the same in any order: halve the lanes (a scalar loop over sixteen cost a fifth of the pass).
        let lo8 = select(signOf: lo.lowHalf - lo.highHalf, lo.lowHalf, lo.highHalf)
        let hi8 = select(signOf: hi.highHalf - hi.lowHalf, hi.lowHalf, hi.highHalf)
        let lo4 = select(signOf: lo8.lowHalf - lo8.highHalf, lo8.lowHalf, lo8.highHalf)
        let hi4 = select(signOf: hi8.highHalf - hi8.lowHalf, hi8.lowHalf, hi8.highHalf)
        var low = Swift.min(Swift.min(lo4[0], lo4[1]), Swift.min(lo4[2], lo4[3]))
        var high = Swift.max(Swift.max(hi4[0], hi4[1]), Swift.max(hi4[2], hi4[3]))
        var sumSquares = squares.sum()
        while c < width {
            let v = load1(row, factors, c)
            low = Swift.min(low, v); high = Swift.max(high, v); sumSquares += v * v
            c += 1
        }
        if sumSquares.isNaN {
            // A NaN input: no grid holds it, and the widening loop below would never end. The token's scale is NaN,
            // so each of its outputs is NaN and its loss says so (a typed error upstream) instead of a hang.
            tokens.outlierCounts[r] = 0
            tokens.scales[r] = .nan
            tokens.zeroPoints[r] = 0
            (tokens.values + r * width).update(repeating: 0, count: width)
            return
        }
        var limit = outlierThreshold * (sumSquares / Float(width)).squareRoot()
        // Squares that all underflow (|x| ≲ 1e-23) leave a zero limit, which doubling never raises: no clipping then.
        if !(limit > 0) { limit = Swift.max(-low, high) }
        var outliers: Int32 = 0
        var scale: Float = 1, zero: Float = 0
        while true {
            let clippedLow = Swift.max(low, -limit), clippedHigh = Swift.min(high, limit)
            let span = clippedHigh - clippedLow
            scale = span > 0 ? span / levels : 1
            zero = Swift.min(levels, Swift.max(0, (-clippedLow / scale).rounded()))
            outliers = 0
            if low >= -limit && high <= limit { break }
            // The representable range after rounding the zero point; anything beyond is an outlier's excess.
            let lowest = -zero * scale, highest = (levels - zero) * scale
            var fits = true
            // Sixteen lanes at a time find the blocks that hold an outlier; only those are scanned one by one.
            let lowestV = V(repeating: lowest), highestV = V(repeating: highest)
            var block = 0
            scan: while block < width {
                let end = Swift.min(width, block + 16)
                if end - block == 16 {
                    let v = load16(row, factors, block)
                    if !any((v .< lowestV) .| (v .> highestV)) { block = end; continue }
                }
                for j in block..<end {
                let v = load1(row, factors, j)
                if v < lowest || v > highest {
                    if Int(outliers) == maximumOutliers { fits = false; break }
                    let slot = r * maximumOutliers + Int(outliers)
                    tokens.outlierColumns[slot] = Int32(j)
                    tokens.outlierExcess[slot] = v - (v < lowest ? lowest : highest)
                    outliers += 1
                }
                }
                block = end
                if !fits { break scan }
            }
            if fits { break }
            limit *= 2
        }
        tokens.outlierCounts[r] = outliers
        tokens.scales[r] = scale
        tokens.zeroPoints[r] = Int32(zero)
        let inverse = 1 / scale
        let o = tokens.values + r * width
        // x / scale + zero, clamped to [0, levels], rounded with the 1.5·2^23 trick.
        let inverseV = V(repeating: inverse), zeroV = V(repeating: zero), levelsV = V(repeating: levels)
        let magic = V(repeating: 12_582_912), nothing = V(repeating: 0)
        var j = 0
        while j + 16 <= width {
            var v = load16(row, factors, j)
            v = v * inverseV + zeroV
            v = Ops.select(signOf: v, ifNegative: nothing, otherwise: v)
            v = Ops.select(signOf: levelsV - v, ifNegative: levelsV, otherwise: v)
            let bits = unsafeBitCast(v + magic, to: SIMD16<UInt32>.self)
            UnsafeMutableRawPointer(o + j).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: bits), as: SIMD16<UInt8>.self)
            j += 16
        }
        while j < width {
            var v = load1(row, factors, j) * inverse + zero
            v = v < 0 ? 0 : v
            v = v > levels ? levels : v
            o[j] = UInt8(truncatingIfNeeded: (v + 12_582_912).bitPattern)
            j += 1
        }
    }

    /// `out[t, j] (+)= tokenScale[t] · rowScales[j] · (products[t, j] − zeroPoint[t] · rowSums[j]) (+ bias[j])`, plus
    /// each outlier's excess times the weight column it multiplies (`weightValues` [width, columns] · `rowScales`).
    public static func dequantize(_ products: UnsafePointer<Int32>, rows: Int, width: Int, tokens: QuantizedTokens,
                                  weightValues: UnsafePointer<Int8>, columns: Int,
                                  rowScales: UnsafePointer<Float>, rowSums: UnsafePointer<Int32>, bias: [Float]?,
                                  out: UnsafeMutablePointer<Float>, ldOut: Int, accumulate: Bool) {
        // The outlier columns first, so that each row is dequantized and corrected in one pass, while it is in cache.
        let table = OutlierColumns(rows: rows, width: width, tokens: tokens, weightValues: weightValues, columns: columns,
                                   rowScales: rowScales)
        func run(_ b: UnsafePointer<Float>?) {
            Parallel.forEachChunk(rows, minimumPerChunk: 32) { range in
                for t in range {
                    let o = out + t * ldOut
                    dequantizeRow(products + t * width, width: width, scale: tokens.scales[t], zeroPoint: tokens.zeroPoints[t],
                                  rowScales: rowScales, rowSums: rowSums, bias: b, out: o, accumulate: accumulate)
                    if !table.isEmpty { table.add(token: t, tokens: tokens, into: o) }
                }
            }
        }
        if let bias {
            precondition(bias.count >= width, "dequantize: bias shorter than the output")
            bias.withUnsafeBufferPointer { run($0.baseAddress) }
        } else {
            run(nil)
        }
    }

    /// One token's row of `dequantize` without its outliers: `o[j] (+)= s · rowScales[j] · (p[j] − z · rowSums[j]) (+ b[j])`.
    @inline(__always)
    static func dequantizeRow(_ p: UnsafePointer<Int32>, width: Int, scale s: Float, zeroPoint z: Int32,
                              rowScales: UnsafePointer<Float>, rowSums: UnsafePointer<Int32>, bias b: UnsafePointer<Float>?,
                              out o: UnsafeMutablePointer<Float>, accumulate: Bool) {
        switch (accumulate, b) {
        case (true, nil): for j in 0..<width { o[j] += s * rowScales[j] * Float(p[j] &- z &* rowSums[j]) }
        case (true, let b?): for j in 0..<width { o[j] += s * rowScales[j] * Float(p[j] &- z &* rowSums[j]) + b[j] }
        case (false, nil): for j in 0..<width { o[j] = s * rowScales[j] * Float(p[j] &- z &* rowSums[j]) }
        case (false, let b?): for j in 0..<width { o[j] = s * rowScales[j] * Float(p[j] &- z &* rowSums[j]) + b[j] }
        }
    }

    /// The weight columns that some token's outlier multiplies, dequantized into contiguous rows of `width`
    /// (`rowScales ⊙ W[:, c]`), so that each outlier (c, e) of token t costs one `Ops.addScaled`:
    /// `out[t, :] += e · column c`. Only the tokens that have outliers are touched: about half the tokens have one
    /// or two, so a dense product over every token (an sgemm with k = the outlier columns) would do a hundred times
    /// the arithmetic.
    final class OutlierColumns {
        /// [columns]: the row of `dequantized` holding weight column c, or −1.
        private let slotOfColumn: [Int32]
        /// [used columns, width].
        private let dequantized: UnsafeMutablePointer<Float>
        private let width: Int
        /// Whether no token has an outlier.
        let isEmpty: Bool

        /// The columns used by the outliers of tokens `0..<rows`.
        init(rows: Int, width: Int, tokens: QuantizedTokens, weightValues: UnsafePointer<Int8>, columns: Int,
             rowScales: UnsafePointer<Float>) {
            var slotOfColumn = [Int32](repeating: -1, count: columns)
            var used = [Int32]()
            for t in 0..<rows {
                for i in 0..<Int(tokens.outlierCounts[t]) {
                    let c = Int(tokens.outlierColumns[t * maximumOutliers + i])
                    if slotOfColumn[c] < 0 { slotOfColumn[c] = Int32(used.count); used.append(Int32(c)) }
                }
            }
            let u = used.count
            self.slotOfColumn = slotOfColumn
            self.width = width
            isEmpty = u == 0
            // Wᵤ [u, width]: row i is weight column used[i], dequantized.
            let dequantized = UnsafeMutablePointer<Float>.allocate(capacity: max(1, u * width))
            self.dequantized = dequantized
            if u == 0 { return }
            used.withUnsafeBufferPointer { usedColumns in
                Parallel.forEachChunk(width, minimumPerChunk: 256) { range in
                    // 64 weight rows at a time (L1), written column by column: contiguous stores, not u streams.
                    var tile = range.lowerBound
                    while tile < range.upperBound {
                        let end = Swift.min(range.upperBound, tile + 64)
                        for i in 0..<u {
                            let c = Int(usedColumns[i])
                            let target = dequantized + i * width
                            for j in tile..<end { target[j] = rowScales[j] * Float(weightValues[j * columns + c]) }
                        }
                        tile = end
                    }
                }
            }
        }

        deinit { dequantized.deallocate() }

        /// `o[:] += e · column c` for each outlier (c, e) of token `t`, in the order they were found.
        @inline(__always)
        func add(token t: Int, tokens: QuantizedTokens, into o: UnsafeMutablePointer<Float>) {
            add(token: t, tokens: tokens, into: o, outputs: 0..<width)
        }

        /// `add` for the outputs `outputs` only: `o` holds those, `o[j − outputs.lowerBound]`.
        @inline(__always)
        func add(token t: Int, tokens: QuantizedTokens, into o: UnsafeMutablePointer<Float>, outputs: Range<Int>) {
            for i in 0..<Int(tokens.outlierCounts[t]) {
                let slot = t * maximumOutliers + i
                let column = dequantized + Int(slotOfColumn[Int(tokens.outlierColumns[slot])]) * width + outputs.lowerBound
                Ops.addScaled(column, by: tokens.outlierExcess[slot], into: o, count: outputs.count)
            }
        }
    }

    /// Per-token log-softmax at a target over the outputs of `x · Wᵀ` (the int8 LM head): for every token t with
    /// `targets[t] >= 0`, `logProbabilities[t] = logit[target] − log Σ_j exp(logit[j])`, and with `isGreedy`
    /// whether the target is the first largest logit. The logits are those of `apply` (same codes, products,
    /// dequantization and outliers, bit for bit), made `blockRows` tokens × `blockOutputs` outputs per integer GEMM
    /// so that the products stay in cache, and reduced block by block with a running maximum and a running sum
    /// rescaled when the maximum grows (the log-sum-exp of a row is therefore not `Ops.logSumExp`'s to the last bit,
    /// only to rounding). Each GEMM call packs both of its operands: square blocks (1,024 × 1,024, 4 MB of
    /// products) pack a quarter of the bytes that 128 × 8,192 blocks did, which packed the whole head again for
    /// every 128 tokens. Requires `DNNL.load()`.
    public static func logSoftmaxAtTargets(_ x: UnsafePointer<Float>, rows: Int, weights w: Int8Matrix, targets: [Int],
                                           blockRows: Int = 1024, blockOutputs: Int = 1024,
                                           logProbabilities: UnsafeMutablePointer<Double>, isGreedy: UnsafeMutablePointer<Bool>?) {
        let k = w.columns, n = w.rows
        precondition(targets.count == rows && targets.allSatisfy { $0 < n }, "logSoftmaxAtTargets: one target below \(n) per row")
        if rows == 0 || n == 0 { return }
        let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: rows * k)
        let scales = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let zeroPoints = UnsafeMutablePointer<Int32>.allocate(capacity: rows)
        let outlierColumns = UnsafeMutablePointer<Int32>.allocate(capacity: rows * maximumOutliers)
        let outlierExcess = UnsafeMutablePointer<Float>.allocate(capacity: rows * maximumOutliers)
        let outlierCounts = UnsafeMutablePointer<Int32>.allocate(capacity: rows)
        // Per token: running maximum, running Σ exp(logit − maximum), target logit, best logit and its index.
        let runningMax = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let runningSum = UnsafeMutablePointer<Double>.allocate(capacity: rows)
        let targetLogit = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let best = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        let bestIndex = UnsafeMutablePointer<Int>.allocate(capacity: rows)
        defer {
            codes.deallocate(); scales.deallocate(); zeroPoints.deallocate()
            outlierColumns.deallocate(); outlierExcess.deallocate(); outlierCounts.deallocate()
            runningMax.deallocate(); runningSum.deallocate(); targetLogit.deallocate(); best.deallocate(); bestIndex.deallocate()
        }
        runningMax.initialize(repeating: -.infinity, count: rows)
        runningSum.initialize(repeating: 0, count: rows)
        targetLogit.initialize(repeating: 0, count: rows)
        best.initialize(repeating: -.infinity, count: rows)
        bestIndex.initialize(repeating: -1, count: rows)
        let tokens = QuantizedTokens(values: codes, scales: scales, zeroPoints: zeroPoints, outlierColumns: outlierColumns,
                                     outlierExcess: outlierExcess, outlierCounts: outlierCounts)
        quantizeRows(x, rows: rows, for: w, into: tokens)
        let rowBlock = max(1, min(blockRows, rows)), outputBlock = max(1, min(blockOutputs, n))
        let products = UnsafeMutablePointer<Int32>.allocate(capacity: rowBlock * outputBlock)
        defer { products.deallocate() }
        w.values.withUnsafeBufferPointer { wv in
        w.scales.withUnsafeBufferPointer { ws in
        w.rowSums.withUnsafeBufferPointer { rs in
            // One table for all tokens: built per row block (the same columns dequantized again for each block) the
            // step measured slower, 0.39-0.45 s against 0.36-0.37 s. At most `columns` × `n` Floats, the size of one Float32 copy of the head; on
            // SmolLM2 about 40 of 576 columns (8 MB).
            let table = OutlierColumns(rows: rows, width: n, tokens: tokens, weightValues: wv.baseAddress!, columns: k,
                                       rowScales: ws.baseAddress!)
            // Outputs outermost: each block of the weights (outputBlock × k bytes) stays in cache while every row
            // block multiplies it, instead of the whole head streaming from memory once per row block. Each token
            // still sees the output blocks in ascending order, so the results are the same either way.
            var j0 = 0
            while j0 < n {
                let width = min(outputBlock, n - j0)
                var row0 = 0
                while row0 < rows {
                    let count = min(rowBlock, rows - row0)
                    DNNL.gemmU8S8S32(m: count, n: width, k: k, a: codes + row0 * k, b: wv.baseAddress! + j0 * k, c: products,
                                     ldc: width)
                    Parallel.forEachChunk(count, minimumPerChunk: 2) { range in
                        let logits = UnsafeMutablePointer<Float>.allocate(capacity: width)
                        defer { logits.deallocate() }
                        for r in range {
                            let t = row0 + r
                            guard targets[t] >= 0 else { continue }
                            dequantizeRow(products + r * width, width: width, scale: scales[t], zeroPoint: zeroPoints[t],
                                          rowScales: ws.baseAddress! + j0, rowSums: rs.baseAddress! + j0, bias: nil, out: logits,
                                          accumulate: false)
                            if !table.isEmpty { table.add(token: t, tokens: tokens, into: logits, outputs: j0..<(j0 + width)) }
                            let target = targets[t]
                            if target >= j0 && target < j0 + width { targetLogit[t] = logits[target - j0] }
                            let m = Ops.maximum(of: logits, count: width)
                            if isGreedy != nil && m > best[t] {
                                var i = 0
                                while i < width - 1 && logits[i] != m { i += 1 }
                                best[t] = m; bestIndex[t] = j0 + i
                            }
                            if m > runningMax[t] {
                                let rescale = runningMax[t] == -.infinity ? 0 : Foundation.exp(Double(runningMax[t]) - Double(m))
                                runningSum[t] = runningSum[t] * rescale + Ops.sumOfExp(logits, count: width, shift: m)
                                runningMax[t] = m
                            } else {
                                runningSum[t] += Ops.sumOfExp(logits, count: width, shift: m) * Foundation.exp(Double(m) - Double(runningMax[t]))
                            }
                        }
                    }
                    row0 += count
                }
                j0 += width
            }
        } } }
        for t in 0..<rows where targets[t] >= 0 {
            logProbabilities[t] = Double(targetLogit[t]) - (Double(runningMax[t]) + Foundation.log(runningSum[t]))
            isGreedy?[t] = bestIndex[t] == targets[t]
        }
    }
}
