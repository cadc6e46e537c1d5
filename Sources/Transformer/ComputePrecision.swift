import Checkpoints
import Kernels

/// The arithmetic of a prepared model's projections (q/k/v, o, gate/up, down, and in `tokenNLL` the output head).
/// Attention, norms and the residual stream stay Float32 in every precision.
public enum ComputePrecision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Float32 GEMMs (OpenBLAS): the reference, and the default of every evaluation path.
    case f32
    /// u8 × s8 → s32 GEMMs (oneDNN, VNNI): activations quantized per token (asymmetric, with a zero point),
    /// weights per output row (symmetric), both once per call / once per model; the output head too (per
    /// vocabulary row). For sampled forwards, where speed matters more than the last digit of the NLL.
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

    /// Quantizes one layer; with `calibration` (this layer's activation maxima) each projection is smoothed first.
    init(spec: LayerSpec, weights w: LayerWeights, hidden: Int, calibration: Int8Calibration?, layer: Int) {
        var qkvSmoothing: [Float]?, oSmoothing: [Float]?, gateUpSmoothing: [Float]?, downSmoothing: [Float]?
        if let calibration {
            let a = calibration.layers[layer]
            qkvSmoothing = calibration.multipliers(activation: a.qkvInput, weight: columnMaxima([w.wq, w.wk, w.wv], columns: hidden))
            oSmoothing = calibration.multipliers(activation: a.oInput, weight: columnMaxima([w.wo], columns: spec.queryDim))
            gateUpSmoothing = calibration.multipliers(activation: a.gateUpInput, weight: columnMaxima([w.gate, w.up], columns: hidden))
            downSmoothing = calibration.multipliers(activation: a.downInput, weight: columnMaxima([w.down], columns: spec.ffnDim))
        }
        wq = Int8Matrix(quantizing: w.wq, rows: spec.queryDim, columns: hidden, smoothing: qkvSmoothing)
        wk = Int8Matrix(quantizing: w.wk, rows: spec.kvDim, columns: hidden, smoothing: qkvSmoothing)
        wv = Int8Matrix(quantizing: w.wv, rows: spec.kvDim, columns: hidden, smoothing: qkvSmoothing)
        wo = Int8Matrix(quantizing: w.wo, rows: hidden, columns: spec.queryDim, smoothing: oSmoothing)
        gate = Int8Matrix(quantizing: w.gate, rows: spec.ffnDim, columns: hidden, smoothing: gateUpSmoothing)
        up = Int8Matrix(quantizing: w.up, rows: spec.ffnDim, columns: hidden, smoothing: gateUpSmoothing)
        down = Int8Matrix(quantizing: w.down, rows: hidden, columns: spec.ffnDim, smoothing: downSmoothing)
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
