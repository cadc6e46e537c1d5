import Checkpoints
import Kernels

/// The arithmetic of a prepared model's projections (q/k/v, o, gate/up, down). Attention, norms, the residual
/// stream and the output head stay Float32 in every precision.
public enum ComputePrecision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Float32 GEMMs (OpenBLAS): the reference, and the default of every evaluation path.
    case f32
    /// u8 × s8 → s32 GEMMs (oneDNN, VNNI): activations quantized per token (asymmetric, with a zero point),
    /// weights per output row (symmetric), both once per call / once per model. For sampled forwards, where speed
    /// matters more than the last digit of the NLL.
    case int8

    public var description: String { rawValue }
}

/// The dense weights of one decoder layer quantized per output row, computed once per `LanguageModel` so that a
/// masked int8 model only gathers bytes.
struct QuantizedLayerWeights: Sendable {
    /// [heads·hd, hidden], [kvHeads·hd, hidden], [kvHeads·hd, hidden]
    let wq: Int8Matrix, wk: Int8Matrix, wv: Int8Matrix
    /// [hidden, heads·hd]
    let wo: Int8Matrix
    /// [ffn, hidden] each
    let gate: Int8Matrix, up: Int8Matrix
    /// [hidden, ffn]
    let down: Int8Matrix

    init(spec: LayerSpec, weights w: LayerWeights, hidden: Int) {
        wq = Int8Matrix(quantizing: w.wq, rows: spec.queryDim, columns: hidden)
        wk = Int8Matrix(quantizing: w.wk, rows: spec.kvDim, columns: hidden)
        wv = Int8Matrix(quantizing: w.wv, rows: spec.kvDim, columns: hidden)
        wo = Int8Matrix(quantizing: w.wo, rows: hidden, columns: spec.queryDim)
        gate = Int8Matrix(quantizing: w.gate, rows: spec.ffnDim, columns: hidden)
        up = Int8Matrix(quantizing: w.up, rows: spec.ffnDim, columns: hidden)
        down = Int8Matrix(quantizing: w.down, rows: hidden, columns: spec.ffnDim)
    }
}

/// A layer's projections in int8: what `PreparedLayer` holds instead of its Float32 matrices.
struct Int8Projections: Sendable {
    /// [qkvDim, hidden]: kept q rows, then k rows, then v rows.
    let qkv: Int8Matrix
    /// [hidden, queryDim]: the kept heads' columns.
    let o: Int8Matrix
    /// [2·ffnDim, hidden]: kept gate rows, then up rows.
    let gateUp: Int8Matrix
    /// [hidden, ffnDim]: the kept channels' columns.
    let down: Int8Matrix
}
