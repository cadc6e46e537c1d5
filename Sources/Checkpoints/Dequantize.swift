import Kernels

/// Dequantisation of whole blocks, written from ggml's reference `dequantize_row_*` (ggml-quants.c) and checked
/// against gguf-py `quants.py` in CheckpointsTests. Each function reads `blocks` blocks from `source` and writes
/// `blocks * blockLayout.elements` floats to `destination`. The operation order (scale products first, then
/// `d * q - m`) matches ggml so the results are bit-identical.
enum Dequantize {
    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Precision.float(fromHalf: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// Dispatches on `type`; the caller has validated that `source` holds `blocks` blocks.
    static func blocks(_ type: GGMLType, _ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>, _ blocks: Int) {
        switch type {
        case .f32:
            // memcpy tolerates any alignment of the mapped bytes.
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: blocks * 4)
        case .f16:
            for i in 0..<blocks { destination[i] = half(source, 2 * i) }
        case .bf16:
            for i in 0..<blocks {
                destination[i] = Precision.float(fromBFloat16: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .q8_0: q8_0(source, destination, blocks)
        case .q4_0: q4_0(source, destination, blocks)
        case .q4_1: q4_1(source, destination, blocks)
        case .q4_K: q4_K(source, destination, blocks)
        case .q5_K: q5_K(source, destination, blocks)
        case .q6_K: q6_K(source, destination, blocks)
        default: break  // unsupported types are rejected before dispatch
        }
    }

    /// block_q8_0 { f16 d; int8 qs[32] }: y = qs * d.
    static func q8_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 34
            let d = half(p, 0)
            let qs = (p + 2).assumingMemoryBound(to: Int8.self)
            let out = y + b * 32
            for j in 0..<32 { out[j] = Float(qs[j]) * d }
        }
    }

    /// block_q4_0 { f16 d; u8 qs[16] }: y[j] = (lo(qs[j]) - 8) * d, y[j+16] = (hi(qs[j]) - 8) * d.
    static func q4_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 18
            let d = half(p, 0)
            let qs = (p + 2).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                out[j] = Float(Int(qs[j] & 0x0f) - 8) * d
                out[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
            }
        }
    }

    /// block_q4_1 { f16 d; f16 m; u8 qs[16] }: y[j] = lo(qs[j]) * d + m, y[j+16] = hi(qs[j]) * d + m.
    static func q4_1(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 20
            let d = half(p, 0)
            let m = half(p, 2)
            let qs = (p + 4).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                out[j] = Float(qs[j] & 0x0f) * d + m
                out[j + 16] = Float(qs[j] >> 4) * d + m
            }
        }
    }

    /// ggml `get_scale_min_k4`: 8 six-bit scales and 8 six-bit mins packed into 12 bytes.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }

    /// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] } (256 values, 8 sub-blocks of 32).
    static func q4_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 144
            let d = half(p, 0)
            let dmin = half(p, 2)
            let scales = (p + 4).assumingMemoryBound(to: UInt8.self)
            var q = (p + 16).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            var sub = 0
            for _ in 0..<4 {  // 64 values per step: low nibbles then high nibbles of 32 bytes
                let (sc1, m1) = scaleMinK4(sub, scales)
                let (sc2, m2) = scaleMinK4(sub + 1, scales)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let d2 = d * Float(sc2), min2 = dmin * Float(m2)
                for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0f) - min1 }
                for l in 0..<32 { out[32 + l] = d2 * Float(q[l] >> 4) - min2 }
                out += 64; q += 32; sub += 2
            }
        }
    }

    /// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: 4 low bits from qs, the fifth bit
    /// from qh (bit 2k for the low nibbles of step k, bit 2k+1 for the high nibbles).
    static func q5_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 176
            let d = half(p, 0)
            let dmin = half(p, 2)
            let scales = (p + 4).assumingMemoryBound(to: UInt8.self)
            let qh = (p + 16).assumingMemoryBound(to: UInt8.self)
            var ql = (p + 48).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            var sub = 0
            var u1: UInt8 = 1, u2: UInt8 = 2
            for _ in 0..<4 {
                let (sc1, m1) = scaleMinK4(sub, scales)
                let (sc2, m2) = scaleMinK4(sub + 1, scales)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let d2 = d * Float(sc2), min2 = dmin * Float(m2)
                for l in 0..<32 { out[l] = d1 * Float((ql[l] & 0x0f) + (qh[l] & u1 != 0 ? 16 : 0)) - min1 }
                for l in 0..<32 { out[32 + l] = d2 * Float((ql[l] >> 4) + (qh[l] & u2 != 0 ? 16 : 0)) - min2 }
                out += 64; ql += 32; sub += 2
                u1 <<= 2; u2 <<= 2
            }
        }
    }

    /// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: 6-bit values (4 low bits in ql, 2 high
    /// bits in qh) minus 32, 16 sub-blocks of 16 with int8 scales.
    static func q6_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 210
            var ql = p.assumingMemoryBound(to: UInt8.self)
            var qh = (p + 128).assumingMemoryBound(to: UInt8.self)
            var sc = (p + 192).assumingMemoryBound(to: Int8.self)
            let d = half(p, 208)
            var out = y + b * 256
            for _ in 0..<2 {  // 128 values per step
                for l in 0..<32 {
                    let s = l / 16
                    let q1 = Int8(bitPattern: (ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32
                    let q2 = Int8(bitPattern: (ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32
                    let q3 = Int8(bitPattern: (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32
                    let q4 = Int8(bitPattern: (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32
                    out[l] = d * Float(sc[s]) * Float(q1)
                    out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                    out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                    out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                }
                out += 128; ql += 64; qh += 32; sc += 8
            }
        }
    }
}
