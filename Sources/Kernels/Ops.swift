import Foundation

/// Element-wise and row-wise kernels of the forward pass, vectorised with SIMD16<Float>. Pointers are raw so the
/// forward pass can run them on slices of its scratch buffers without copies; every function states its shapes.
public enum Ops {
    public typealias V = SIMD16<Float>

    /// Lane-wise `d < 0 ? ifNegative : otherwise`, from the sign bit. The standard library's SIMD comparisons,
    /// `clamped`, `pointwiseMax` and `rounded` are generic lane loops that spill to the stack; these bit operations
    /// compile to plain vector instructions.
    @inlinable @inline(__always)
    public static func select(signOf d: V, ifNegative: V, otherwise: V) -> V {
        let mask = unsafeBitCast(d, to: SIMD16<Int32>.self) &>> 31
        let a = unsafeBitCast(ifNegative, to: SIMD16<Int32>.self)
        let b = unsafeBitCast(otherwise, to: SIMD16<Int32>.self)
        return unsafeBitCast((a & mask) | (b & ~mask), to: V.self)
    }

    /// Lane-wise maximum (for non-NaN inputs).
    @inlinable @inline(__always)
    public static func maximum(_ a: V, _ b: V) -> V { select(signOf: a - b, ifNegative: b, otherwise: a) }

    /// Vectorised e^x (Cephes-style: range reduction by ln 2, degree-6 polynomial); relative error below 4e-7
    /// for x in [-87, 88]; inputs below -87.3 give 0, inputs above 88.7 are clamped.
    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        let low = V(repeating: -87.3), high = V(repeating: 88.7)
        let clamped = select(signOf: high - x, ifNegative: high, otherwise: select(signOf: x - low, ifNegative: low, otherwise: x))
        return select(signOf: x - low, ifNegative: V(repeating: 0), otherwise: expPolynomial(clamped))
    }

    /// `exp(x)` for x ≤ 88.7 (the shifted logits of a log-sum-exp, x − max ≤ 0), the same bits as `exp` there: no
    /// clamping, which only the final select needed below −87.3 (it sets those lanes to 0 from whatever the
    /// polynomial made of them) and no input reaches above. A fifth fewer instructions in the LM head's sums.
    @inlinable @inline(__always)
    public static func expOfShifted(_ x: V) -> V {
        select(signOf: x - V(repeating: -87.3), ifNegative: V(repeating: 0), otherwise: expPolynomial(x))
    }

    /// e^x by range reduction and the polynomial, for x in [−87.3, 88.7] (`exp`'s core).
    @inlinable @inline(__always) @usableFromInline
    static func expPolynomial(_ x: V) -> V {
        // Round to nearest with the 1.5·2^23 trick (generic SIMD rounding is not specialised).
        let magic = V(repeating: 12_582_912)
        let shifted = x * V(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        var r = x - n * V(repeating: 0.693_359_375)
        r = r - n * V(repeating: -2.121_944_4e-4)
        var p = V(repeating: 1.987_569_15e-4)
        p = p * r + V(repeating: 1.398_199_95e-3)
        p = p * r + V(repeating: 8.333_451_9e-3)
        p = p * r + V(repeating: 4.166_579_6e-2)
        p = p * r + V(repeating: 1.666_666_55e-1)
        p = p * r + V(repeating: 5.000_000_1e-1)
        p = p * r * r + r + V(repeating: 1)
        let integer = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        return p * unsafeBitCast((integer &+ 127) &<< 23, to: V.self)
    }

    /// Scalar e^x with the same polynomial as the vector version (used for tails so rows are consistent).
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// RMSNorm of `rows` rows of width `dim`: out = x / sqrt(mean(x²) + eps) * weight. `out` may alias `x`.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, dim: Int, eps: Float) {
        Parallel.forEachChunk(rows, minimumPerChunk: 16) { range in
            for r in range {
                let xr = x + r * dim
                let o = out + r * dim
                var acc = V(repeating: 0)
                var i = 0
                while i + 16 <= dim {
                    let v = UnsafeRawPointer(xr + i).loadUnaligned(as: V.self)
                    acc += v * v
                    i += 16
                }
                var sum = acc.sum()
                while i < dim { sum += xr[i] * xr[i]; i += 1 }
                let scale = 1 / (sum / Float(dim) + eps).squareRoot()
                let s = V(repeating: scale)
                i = 0
                while i + 16 <= dim {
                    let v = UnsafeRawPointer(xr + i).loadUnaligned(as: V.self)
                    let w = UnsafeRawPointer(weight + i).loadUnaligned(as: V.self)
                    UnsafeMutableRawPointer(o + i).storeBytes(of: w * (v * s), as: V.self)
                    i += 16
                }
                while i < dim { o[i] = weight[i] * (xr[i] * scale); i += 1 }
            }
        }
    }

    /// SwiGLU: for each of `rows` rows, `out[c] = silu(gateUp[c]) * gateUp[width + c]` where a row of `gateUp` holds
    /// `[gate | up]` (2·width values, row stride `2 * width`) and `out` rows have stride `width`.
    public static func swiGLU(_ gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        gatedSigmoidUnit(gateUp, out: out, rows: rows, width: width, geluTanh: false)
    }

    /// GeGLU with GELU's tanh approximation (Gemma, torch `gelu(approximate="tanh")`): like `swiGLU` with
    /// `gelu(g) = 0.5·g·(1 + tanh(u))`, u = sqrt(2/π)·(g + 0.044715·g³), computed as the equal `g · sigmoid(2u)`.
    public static func geluTanhGLU(_ gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        gatedSigmoidUnit(gateUp, out: out, rows: rows, width: width, geluTanh: true)
    }

    /// `out = g · sigmoid(z) · up` per element, z = g (SiLU) or 2u (GELU-tanh): both activations are a gate times
    /// a sigmoid, so one loop serves both.
    private static func gatedSigmoidUnit(_ gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, width: Int,
                                         geluTanh: Bool) {
        // 2·sqrt(2/π) and 2·sqrt(2/π)·0.044715
        let c1: Float = 1.595_769_1, c3: Float = 0.071_354_816
        Parallel.forEachChunk(rows, minimumPerChunk: 16) { range in
            for r in range {
                let g = gateUp + r * 2 * width
                let u = g + width
                let o = out + r * width
                var i = 0
                while i + 16 <= width {
                    let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
                    let uv = UnsafeRawPointer(u + i).loadUnaligned(as: V.self)
                    let z = geluTanh ? gv * (V(repeating: c1) + V(repeating: c3) * gv * gv) : gv
                    let activated = gv / (V(repeating: 1) + exp(-z))
                    UnsafeMutableRawPointer(o + i).storeBytes(of: activated * uv, as: V.self)
                    i += 16
                }
                while i < width {
                    let gv = g[i]
                    let z = geluTanh ? gv * (c1 + c3 * gv * gv) : gv
                    o[i] = gv / (1 + Foundation.exp(-z)) * u[i]
                    i += 1
                }
            }
        }
    }

    /// In-place softmax of `x[0..<count]`; entries from `count` to `stride` are left untouched.
    @inlinable
    public static func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
        if count <= 0 { return }
        let m = maximum(of: x, count: count)
        var total = V(repeating: 0)
        var i = 0
        let mv = V(repeating: m)
        while i + 16 <= count {
            let e = expOfShifted(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - mv)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: V.self)
            total += e
            i += 16
        }
        var sum = total.sum()
        while i < count { let e = exp(x[i] - m); x[i] = e; sum += e; i += 1 }
        let inv = 1 / sum
        i = 0
        let iv = V(repeating: inv)
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * iv, as: V.self)
            i += 16
        }
        while i < count { x[i] *= inv; i += 1 }
    }

    /// log Σ exp(x[i]) over `count` values, accumulated in Double across 16-lane blocks:
    /// `maximum(of:)` + log `sumOfExp(shift: maximum)`.
    @inlinable
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        let m = maximum(of: x, count: count)
        return Double(m) + Foundation.log(sumOfExp(x, count: count, shift: m))
    }

    /// The largest of `count` values (−greatestFiniteMagnitude for none).
    @inlinable
    public static func maximum(of x: UnsafePointer<Float>, count: Int) -> Float {
        var mv = V(repeating: -.greatestFiniteMagnitude)
        var i = 0
        while i + 16 <= count {
            mv = maximum(mv, UnsafeRawPointer(x + i).loadUnaligned(as: V.self))
            i += 16
        }
        var m = -Float.greatestFiniteMagnitude
        for lane in 0..<16 where mv[lane] > m { m = mv[lane] }
        while i < count { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// Σ exp(x[i] − shift) over `count` values, `shift` at least their maximum less 88 (callers pass the maximum):
    /// Float within blocks of 1,024, Double across them.
    @inlinable
    public static func sumOfExp(_ x: UnsafePointer<Float>, count: Int, shift m: Float) -> Double {
        let mvec = V(repeating: m)
        var sum = 0.0
        var i = 0
        while i + 16 <= count {
            var block = V(repeating: 0)
            let end = Swift.min(count - 15, i + 16 * 64)
            while i < end {
                block += expOfShifted(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - mvec)
                i += 16
            }
            sum += Double(block.sum())
        }
        while i < count { sum += Foundation.exp(Double(x[i] - m)); i += 1 }
        return sum
    }

    /// out[i] += x[i] for `count` values.
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let b = UnsafeRawPointer(out + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: a + b, as: V.self)
            i += 16
        }
        while i < count { out[i] += x[i]; i += 1 }
    }

    /// out[i] += a · x[i] for `count` values.
    @inlinable
    public static func addScaled(_ x: UnsafePointer<Float>, by a: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
        let av = V(repeating: a)
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            let b = UnsafeRawPointer(out + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: b + av * v, as: V.self)
            i += 16
        }
        while i < count { out[i] += a * x[i]; i += 1 }
    }
}

/// Rotary position embedding in the Hugging Face "rotate-half" convention (the canonical layout): within a head
/// of width hd, element i pairs with i + hd/2, rotated by position · theta^(-2i/hd).
public struct RotaryTable: Sendable {
    /// Head width.
    public let headDim: Int
    /// [positions, headDim / 2]
    public let cos: [Float]
    /// [positions, headDim / 2]
    public let sin: [Float]
    /// Number of positions covered.
    public let positions: Int

    /// Tables for positions `0..<positions`. Inverse frequencies are computed in Float32 like transformers'
    /// `1 / base^(arange(0, d, 2) / d)`; the angles and their cos/sin in Double, then rounded to Float.
    public init(headDim: Int, theta: Float, positions: Int) {
        let invFreq = (0..<(headDim / 2)).map { i in
            Float(1) / Float(Foundation.pow(Double(theta), Double(Float(2 * i) / Float(headDim))))
        }
        self.init(inverseFrequencies: invFreq, positions: positions)
    }

    /// Tables for positions `0..<positions` from given inverse frequencies ([headDim / 2], e.g. after Llama 3.x
    /// scaling): angle `Float(p) · invFreq[i]` in Float32, its cos/sin in Double, rounded to Float, then times
    /// `scale` in Float32 (LongRoPE's attention factor, as transformers multiplies its float32 cos and sin).
    public init(inverseFrequencies invFreq: [Float], positions: Int, scale: Float = 1) {
        let half = invFreq.count
        self.headDim = 2 * half
        self.positions = positions
        var c = [Float](repeating: 0, count: positions * half)
        var s = [Float](repeating: 0, count: positions * half)
        for i in 0..<half {
            for p in 0..<positions {
                let angle = Float(p) * invFreq[i]
                c[p * half + i] = Float(Foundation.cos(Double(angle))) * scale
                s[p * half + i] = Float(Foundation.sin(Double(angle))) * scale
            }
        }
        cos = c
        sin = s
    }

    /// Rotates `heads` heads stored consecutively at `x` (width `headDim` each) for position `position`.
    @inlinable
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = headDim / 2
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                let cp = cb.baseAddress! + position * half
                let sp = sb.baseAddress! + position * half
                for h in 0..<heads {
                    let base = x + h * headDim
                    for i in 0..<half {
                        let x0 = base[i]
                        let x1 = base[i + half]
                        base[i] = x0 * cp[i] - x1 * sp[i]
                        base[i + half] = x1 * cp[i] + x0 * sp[i]
                    }
                }
            }
        }
    }
}

/// Every row of the row-major `[rows, columns]` matrix `m` keeping only the column blocks `blocks` (each `blockSize`
/// consecutive columns), in the order given: the gather behind o_proj's kept heads and down_proj's kept channels,
/// for Float32 and int8 weights alike.
public func gatherColumnBlocks<T>(_ m: [T], rows: Int, columns: Int, blocks: [Int], blockSize: Int, zero: T) -> [T] {
    let kept = blocks.count * blockSize
    // Every element is written below, so the array is not zero-filled first (a second pass over the copy).
    return [T](unsafeUninitializedCapacity: rows * kept) { dst, initialized in
        m.withUnsafeBufferPointer { src in
            blocks.withUnsafeBufferPointer { keptBlocks in
                let s0 = src.baseAddress!, d0 = dst.baseAddress!, index = keptBlocks.baseAddress!
                for r in 0..<rows {
                    let s = s0 + r * columns
                    let d = d0 + r * kept
                    if blockSize == 1 {
                        for j in 0..<kept { (d + j).initialize(to: s[index[j]]) }
                    } else {
                        for j in 0..<blocks.count {
                            (d + j * blockSize).initialize(from: s + index[j] * blockSize, count: blockSize)
                        }
                    }
                }
            }
        }
        initialized = rows * kept
    }
}
