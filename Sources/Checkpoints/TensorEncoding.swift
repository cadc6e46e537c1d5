import Kernels

/// A storage type the writers can produce. Which formats accept which: safetensors F32/F16/BF16; GGUF F32/F16/Q8_0.
public enum WeightDType: String, CaseIterable, Sendable, Codable {
    case f32, f16, bf16
    /// ggml Q8_0: blocks of 32 values, one f16 scale `amax / 127` and 32 signed bytes.
    case q8_0

    /// The safetensors dtype string, or nil when safetensors cannot hold it.
    public var safetensorsName: String? {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return nil
        }
    }

    /// The ggml type id, or nil when the GGUF writer does not produce it.
    public var ggmlType: GGMLType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8_0: return .q8_0
        case .bf16: return nil
        }
    }

    /// Largest relative rounding error of one stored value (half a unit in the last place; for Q8_0 relative to the
    /// block's largest magnitude: half a quantisation step of `amax / 127`, plus the f16 rounding of the scale).
    public var relativeRoundingBound: Double {
        switch self {
        case .f32: return 0x1p-24
        case .f16: return 0x1p-11
        case .bf16: return 0x1p-8
        case .q8_0: return 0.5 / 127 + 0x1p-11
        }
    }

    /// `values` as they read back after being stored in this type (for Q8_0 the count must be a multiple of 32).
    public func roundTrip(_ values: [Float]) -> [Float] {
        switch self {
        case .f32: return values
        case .f16: return values.map { Precision.float(fromHalf: Precision.half(from: $0)) }
        case .bf16: return values.map { Precision.float(fromBFloat16: Precision.bfloat16(from: $0)) }
        case .q8_0:
            precondition(values.count % 32 == 0, "Q8_0 needs whole blocks of 32")
            var out = [Float](repeating: 0, count: values.count)
            for block in stride(from: 0, to: values.count, by: 32) {
                let (scale, quants) = TensorEncoding.quantizeQ8_0Block(values, at: block)
                let d = Precision.float(fromHalf: scale)
                for j in 0..<32 { out[block + j] = d * Float(quants[j]) }
            }
            return out
        }
    }
}

/// Conversion of Float32 tensors to the bytes of a storage type (little-endian).
enum TensorEncoding {
    /// ggml's reference `quantize_row_q8_0`: `d = amax / 127`, `q = round(x / d)` (ties away from zero) with
    /// `x * (1 / d)` as ggml computes it; `d` stored as f16.
    static func quantizeQ8_0Block(_ values: [Float], at start: Int) -> (scale: UInt16, quants: [Int8]) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(values[start + j])) }
        let d = amax / 127
        let inverse: Float = d != 0 ? 1 / d : 0
        let quants = (0..<32).map { j in Int8((values[start + j] * inverse).rounded(.toNearestOrAwayFromZero)) }
        return (Precision.half(from: d), quants)
    }

    /// The bytes of `values` stored as `dtype`.
    static func bytes(_ values: [Float], as dtype: WeightDType) -> [UInt8] {
        switch dtype {
        case .f32:
            return values.withUnsafeBytes { raw in
                #if _endian(little)
                return Array(raw)
                #else
                return values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
                #endif
            }
        case .f16, .bf16:
            var out = [UInt8](repeating: 0, count: 2 * values.count)
            for (i, v) in values.enumerated() {
                let bits = dtype == .f16 ? Precision.half(from: v) : Precision.bfloat16(from: v)
                out[2 * i] = UInt8(bits & 0xff)
                out[2 * i + 1] = UInt8(bits >> 8)
            }
            return out
        case .q8_0:
            precondition(values.count % 32 == 0, "Q8_0 needs whole blocks of 32")
            var out = [UInt8]()
            out.reserveCapacity(values.count / 32 * 34)
            for block in stride(from: 0, to: values.count, by: 32) {
                let (scale, quants) = quantizeQ8_0Block(values, at: block)
                out.append(UInt8(scale & 0xff))
                out.append(UInt8(scale >> 8))
                for q in quants { out.append(UInt8(bitPattern: q)) }
            }
            return out
        }
    }
}
