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
        case .q5_0: q5_0(source, destination, blocks)
        case .q5_1: q5_1(source, destination, blocks)
        case .q2_K: q2_K(source, destination, blocks)
        case .q3_K: q3_K(source, destination, blocks)
        case .q4_K: q4_K(source, destination, blocks)
        case .q5_K: q5_K(source, destination, blocks)
        case .q6_K: q6_K(source, destination, blocks)
        case .iq4_nl: iq4_nl(source, destination, blocks)
        case .iq4_xs: iq4_xs(source, destination, blocks)
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

    /// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16] }: 5-bit values minus 16; bit j of the little-endian uint32 `qh` is
    /// the fifth bit of value j. y[j] = (lo(qs[j]) | bit j << 4) - 16, y[j+16] = (hi(qs[j]) | bit j+16 << 4) - 16.
    static func q5_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 22
            let d = half(p, 0)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let qs = (p + 6).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                let h0 = UInt8(truncatingIfNeeded: qh >> j & 1) << 4
                let h1 = UInt8(truncatingIfNeeded: qh >> (j + 16) & 1) << 4
                out[j] = d * Float(Int((qs[j] & 0x0f) | h0) - 16)
                out[j + 16] = d * Float(Int((qs[j] >> 4) | h1) - 16)
            }
        }
    }

    /// block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: as Q5_0 without the offset, y = q * d + m.
    static func q5_1(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 24
            let d = half(p, 0)
            let m = half(p, 2)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let qs = (p + 8).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0..<16 {
                let h0 = UInt8(truncatingIfNeeded: qh >> j & 1) << 4
                let h1 = UInt8(truncatingIfNeeded: qh >> (j + 16) & 1) << 4
                out[j] = d * Float((qs[j] & 0x0f) | h0) + m
                out[j + 16] = d * Float((qs[j] >> 4) | h1) + m
            }
        }
    }

    /// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin } (256 values, 16 sub-blocks of 16): each scale byte
    /// holds a 4-bit scale (low) and a 4-bit min (high); value = d * scale * q - dmin * min with q two bits of qs.
    /// Each half of 128 values reads 32 bytes of qs four times, at shifts 0, 2, 4, 6.
    static func q2_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 84
            let scales = p.assumingMemoryBound(to: UInt8.self)
            var q = (p + 16).assumingMemoryBound(to: UInt8.self)
            let d = half(p, 80)
            let dmin = half(p, 82)
            var out = y + b * 256
            var sub = 0
            for _ in 0..<2 {
                for shift in stride(from: UInt8(0), to: 8, by: 2) {
                    for half16 in 0..<2 {  // two sub-blocks of 16 per shift
                        let sc = scales[sub]
                        let dl = d * Float(sc & 0x0f), ml = dmin * Float(sc >> 4)
                        let qq = q + 16 * half16
                        for l in 0..<16 { out[l] = dl * Float((qq[l] >> shift) & 3) - ml }
                        out += 16; sub += 1
                    }
                }
                q += 32
            }
        }
    }

    /// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d } (256 values, 16 sub-blocks of 16): value =
    /// d * (scale - 32) * (two low bits from qs - (hmask bit clear ? 4 : 0)). The 6-bit scales are packed as
    /// low nibbles in bytes 0..<8 (sub-blocks 0..<8 low, 8..<16 high) and two-bit high parts in bytes 8..<12.
    static func q3_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for b in 0..<n {
            let p = src + b * 110
            let hmask = p.assumingMemoryBound(to: UInt8.self)
            var q = (p + 32).assumingMemoryBound(to: UInt8.self)
            let packed = (p + 96).assumingMemoryBound(to: UInt8.self)
            let d = half(p, 108)
            var out = y + b * 256
            var sub = 0
            var m: UInt8 = 1
            for _ in 0..<2 {
                for shift in stride(from: UInt8(0), to: 8, by: 2) {
                    for half16 in 0..<2 {
                        let low = sub < 8 ? packed[sub] & 0x0f : packed[sub - 8] >> 4
                        let high = (packed[8 + sub % 4] >> (2 * (sub / 4))) & 3
                        let dl = d * Float(Int(low | high << 4) - 32)
                        let qq = q + 16 * half16, hm = hmask + 16 * half16
                        for l in 0..<16 {
                            out[l] = dl * Float(Int((qq[l] >> shift) & 3) - (hm[l] & m != 0 ? 0 : 4))
                        }
                        out += 16; sub += 1
                    }
                    m <<= 1
                }
                q += 32
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

    /// The 16 non-uniform levels of IQ4_NL and IQ4_XS (ggml `kvalues_iq4nl`).
    static let iq4Levels: [Float] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// block_iq4_nl { f16 d; u8 qs[16] }: y[j] = d * levels[lo(qs[j])], y[j+16] = d * levels[hi(qs[j])].
    static func iq4_nl(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        iq4Levels.withUnsafeBufferPointer { levels in
            for b in 0..<n {
                let p = src + b * 18
                let d = half(p, 0)
                let qs = (p + 2).assumingMemoryBound(to: UInt8.self)
                let out = y + b * 32
                for j in 0..<16 {
                    out[j] = d * levels[Int(qs[j] & 0x0f)]
                    out[j + 16] = d * levels[Int(qs[j] >> 4)]
                }
            }
        }
    }

    /// block_iq4_xs { f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128] } (256 values, 8 sub-blocks of 32): 6-bit
    /// scale of sub-block i = nibble i of scales_l | two bits 2i of scales_h << 4, minus 32; values as IQ4_NL.
    static func iq4_xs(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        iq4Levels.withUnsafeBufferPointer { levels in
            for b in 0..<n {
                let p = src + b * 136
                let d = half(p, 0)
                let scalesHigh = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let scalesLow = (p + 4).assumingMemoryBound(to: UInt8.self)
                var qs = (p + 8).assumingMemoryBound(to: UInt8.self)
                var out = y + b * 256
                for sub in 0..<8 {
                    let low = (scalesLow[sub / 2] >> (4 * UInt8(sub % 2))) & 0x0f
                    let high = UInt8(truncatingIfNeeded: scalesHigh >> (2 * sub)) & 3
                    let dl = d * Float(Int(low | high << 4) - 32)
                    for j in 0..<16 {
                        out[j] = dl * levels[Int(qs[j] & 0x0f)]
                        out[j + 16] = dl * levels[Int(qs[j] >> 4)]
                    }
                    out += 32; qs += 16
                }
            }
        }
    }
}
