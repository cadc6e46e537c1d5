import Checkpoints
import Foundation
import Kernels

/// What sets the int8 projections' SmoothQuant smoothing (Xiao et al. 2023): each projection input channel's
/// largest |activation| on calibration windows under the dense Float32 model. Channel j of a projection with
/// weight columns W[:, j] gets `s_j = a_j^α / max|W[:, j]|^(1−α)`; activations are divided by s_j before they are
/// quantized per token and the weight columns multiplied by it, so outlier channels stop stretching every token's
/// quantization grid.
public struct Int8Calibration: Codable, Sendable, Equatable {
    /// Migration strength α in [0, 1]: 0 leaves the activations alone, 1 moves all of their range into the weights.
    public var alpha: Float
    /// Calibration windows and tokens it was measured on.
    public var windows: Int
    public var tokens: Int
    /// Per decoder layer.
    public var layers: [Layer]

    /// One layer's per-channel activation maxima (max |x| over all calibration tokens).
    public struct Layer: Codable, Sendable, Equatable {
        /// [hidden]: RMSNorm output entering q/k/v.
        public var qkvInput: [Float]
        /// [queryDim]: concatenated head outputs entering o_proj.
        public var oInput: [Float]
        /// [hidden]: RMSNorm output entering gate/up.
        public var gateUpInput: [Float]
        /// [ffnDim]: silu(gate) · up entering down_proj.
        public var downInput: [Float]
    }

    /// Smoothing multipliers 1/s_j for activations with maxima `activation` entering weights whose columns have
    /// maxima `weight`; 1 where either is zero.
    func multipliers(activation: [Float], weight: [Float]) -> [Float] {
        zip(activation, weight).map { a, w in
            guard a > 0, w > 0, a.isFinite, w.isFinite else { return 1 }
            let s = Float.pow(a, alpha) / Float.pow(w, 1 - alpha)
            return s > 1e-6 && s < 1e6 ? 1 / s : 1
        }
    }
}

extension Float {
    static func pow(_ x: Float, _ y: Float) -> Float { Float(Foundation.pow(Double(x), Double(y))) }
}

/// Collects `Int8Calibration.Layer` maxima from a dense Float32 forward pass.
final class CalibrationObserver: ForwardObserver {
    let config: ModelConfig
    /// The model's stored layers (for their norm vectors).
    let weights: [FusedLayerWeights]
    var layers: [Int8Calibration.Layer]

    init(config: ModelConfig, weights: [FusedLayerWeights]) {
        self.config = config
        self.weights = weights
        layers = config.layers.map {
            Int8Calibration.Layer(qkvInput: [Float](repeating: 0, count: config.hiddenSize), oInput: [Float](repeating: 0, count: $0.queryDim),
                                  gateUpInput: [Float](repeating: 0, count: config.hiddenSize), downInput: [Float](repeating: 0, count: $0.ffnDim))
        }
    }

    func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {
        switch point {
        case .layerInput where config.layers[layer].hasAttention:
            normedMaxima(values, rows: rows, width: width, norm: weights[layer].attentionNorm, into: &layers[layer].qkvInput)
        case .mlpInput where config.layers[layer].hasMLP:
            normedMaxima(values, rows: rows, width: width, norm: weights[layer].mlpNorm, into: &layers[layer].gateUpInput)
        case .outputProjectionInput:
            maxima(values, rows: rows, width: width, into: &layers[layer].oInput)
        case .downProjectionInput:
            maxima(values, rows: rows, width: width, into: &layers[layer].downInput)
        default:
            break
        }
    }

    private func maxima(_ x: UnsafePointer<Float>, rows: Int, width: Int, into m: inout [Float]) {
        for r in 0..<rows { for c in 0..<width { m[c] = Swift.max(m[c], abs(x[r * width + c])) } }
    }

    /// Maxima of RMSNorm(x) · norm, the projection's actual input.
    private func normedMaxima(_ x: UnsafePointer<Float>, rows: Int, width: Int, norm: [Float], into m: inout [Float]) {
        for r in 0..<rows {
            let row = x + r * width
            var squares: Float = 0
            for c in 0..<width { squares += row[c] * row[c] }
            let inverse = 1 / (squares / Float(width) + config.normEpsilon).squareRoot()
            for c in 0..<width { m[c] = Swift.max(m[c], abs(row[c] * inverse * norm[c])) }
        }
    }
}

extension LanguageModel {
    /// Measures the per-channel activation maxima of every projection input on `windows` (equal-length token
    /// windows) with the dense Float32 model: the calibration behind `calibrateInt8(on:alpha:)`.
    public func measureInt8Calibration(on windows: [[Int]], alpha: Float = 0.5) throws -> Int8Calibration {
        guard alpha >= 0 && alpha <= 1 else { throw ModelError.invalidArgument("int8 smoothing alpha must be in [0, 1], got \(alpha)") }
        let observer = CalibrationObserver(config: config, weights: stored.layers)
        for start in stride(from: 0, to: windows.count, by: 8) {
            try dense.observe(Array(windows[start..<min(windows.count, start + 8)]), observer: observer)
        }
        return Int8Calibration(alpha: alpha, windows: windows.count, tokens: windows.reduce(0) { $0 + $1.count }, layers: observer.layers)
    }
}

/// Per-column maxima of |m| ([rows, columns]) over several matrices with the same columns.
func columnMaxima(_ matrices: [[Float]], columns: Int) -> [Float] {
    var out = [Float](repeating: 0, count: columns)
    for m in matrices {
        m.withUnsafeBufferPointer { p in
            for r in 0..<(m.count / max(1, columns)) {
                for c in 0..<columns { out[c] = Swift.max(out[c], abs(p[r * columns + c])) }
            }
        }
    }
    return out
}
