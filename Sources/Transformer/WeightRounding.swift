import Checkpoints
import Kernels

/// A rounding of the weight matrices that the int8 forward quantizes (every layer's q/k/v, o, gate/up and down
/// projections, and the output head; not the embedding lookup, norms or biases), kept in Float32 otherwise: a
/// Float32 forward on rounded weights shows how far a model's per-window NLL moves under a perturbation of a
/// given size alone, the yardstick for int8's movement (`bench --nll-weight-rounding`).
public enum WeightRounding: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE half precision (10 mantissa bits), round to nearest even: what `WeightDType.f16` stores.
    case fp16
    /// bfloat16 (7 mantissa bits), round to nearest even: what `WeightDType.bf16` stores.
    case bf16
    /// The int8 forward's weights: symmetric s8 per output row (`Int8Matrix`, without `--int8-calibration`'s
    /// smoothing), dequantized. `applied(to:config:)` rounds the dense model, so a mask then keeps each row's dense
    /// scale, as the int8 forward does.
    case int8

    public var description: String { rawValue }

    /// `weights` (shaped by `config`) with every projection matrix and the head rounded. A tied head becomes a
    /// rounded copy of the embedding, which itself stays as it was.
    public func applied(to weights: ModelWeights, config: ModelConfig) -> ModelWeights {
        var w = weights
        let d = config.hiddenSize
        for (i, spec) in config.layers.enumerated() {
            w.layers[i].wq = round(w.layers[i].wq, rows: spec.queryDim, columns: d)
            w.layers[i].wk = round(w.layers[i].wk, rows: spec.kvDim, columns: d)
            w.layers[i].wv = round(w.layers[i].wv, rows: spec.kvDim, columns: d)
            w.layers[i].wo = round(w.layers[i].wo, rows: d, columns: spec.queryDim)
            w.layers[i].gate = round(w.layers[i].gate, rows: spec.ffnDim, columns: d)
            w.layers[i].up = round(w.layers[i].up, rows: spec.ffnDim, columns: d)
            w.layers[i].down = round(w.layers[i].down, rows: d, columns: spec.ffnDim)
        }
        w.head = round(w.head ?? w.tokenEmbedding, rows: config.vocabSize, columns: d)
        return w
    }

    /// One [rows, columns] matrix rounded (an empty one, e.g. a layer without attention, stays empty).
    public func round(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        if m.isEmpty { return m }
        switch self {
        case .fp16: return WeightDType.f16.roundTrip(m)
        case .bf16: return WeightDType.bf16.roundTrip(m)
        case .int8: return Int8Matrix(quantizing: m, rows: rows, columns: columns).dequantized()
        }
    }
}

extension Int8Matrix {
    /// The Float32 matrix these codes stand for, `scales[r] · values[r, c] · smoothing[c]`: the weights the int8
    /// GEMM multiplies, for measuring what the rounding alone does (`WeightRounding.int8`).
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for c in 0..<columns {
                out[r * columns + c] = scales[r] * Float(values[r * columns + c]) * (smoothing?[c] ?? 1)
            }
        }
        return out
    }
}
