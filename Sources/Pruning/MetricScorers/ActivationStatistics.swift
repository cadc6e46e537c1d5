import Transformer

/// Per-input-feature statistics of one projection's input (o_proj or down_proj) over calibration tokens, in Double.
public struct FeatureStatistics: Sendable, Equatable {
    /// Σ over tokens of x_j.
    public var sum: [Double]
    /// Σ over tokens of x_j².
    public var sumOfSquares: [Double]
    /// Tokens seen.
    public var tokens: Int

    /// Zero statistics for `width` features.
    public init(width: Int) {
        sum = [Double](repeating: 0, count: width)
        sumOfSquares = [Double](repeating: 0, count: width)
        tokens = 0
    }

    /// Adds `rows` tokens of `width` features ([rows, width] row-major).
    mutating func add(_ values: UnsafePointer<Float>, rows: Int, width: Int) {
        precondition(width == sum.count, "feature width changed between batches")
        sum.withUnsafeMutableBufferPointer { s in
            sumOfSquares.withUnsafeMutableBufferPointer { q in
                for r in 0..<rows {
                    let row = values + r * width
                    for j in 0..<width {
                        let x = Double(row[j])
                        s[j] += x
                        q[j] += x * x
                    }
                }
            }
        }
        tokens += rows
    }

    /// Wanda's `scaler_row` (spec §3.1 step 3): Σ x_j² divided by the number of sequences.
    public func wandaScale(sequences: Int) -> [Double] {
        sumOfSquares.map { $0 / Double(max(sequences, 1)) }
    }

    /// Population variance over tokens, `Σ(x − x̄)²/N`, from the two sums (Double; clamped at 0 against rounding).
    public var variance: [Double] {
        guard tokens > 0 else { return sum.map { _ in 0 } }
        let n = Double(tokens)
        return zip(sum, sumOfSquares).map { s, q in max(0, q / n - (s / n) * (s / n)) }
    }
}

/// A `ForwardObserver` that accumulates what the metric scorers need for a chosen set of layers: input statistics
/// of o_proj and down_proj, and the block influence `1 − cos(layer input, layer output)` per token.
final class ActivationRecorder: ForwardObserver {
    /// Layers to record (others are ignored).
    let layers: Set<Int>
    let recordProjections: Bool
    let recordBlockInfluence: Bool
    /// Per layer: input statistics of o_proj (width = computed query heads · headDim) and of down_proj.
    private(set) var outputProjection: [Int: FeatureStatistics] = [:]
    private(set) var downProjection: [Int: FeatureStatistics] = [:]
    /// Per layer: Σ over tokens of (1 − cos(input, output)), and the token count.
    private(set) var influenceSum: [Int: Double] = [:]
    private(set) var influenceTokens: [Int: Int] = [:]
    /// The current layer's input, kept until its output arrives ([rows, hidden]).
    private var pendingInput: [Float] = []

    init(layers: Set<Int>, projections: Bool, blockInfluence: Bool) {
        self.layers = layers
        recordProjections = projections
        recordBlockInfluence = blockInfluence
    }

    func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {
        guard layers.contains(layer) else { return }
        switch point {
        case .outputProjectionInput where recordProjections:
            outputProjection[layer, default: FeatureStatistics(width: width)].add(values, rows: rows, width: width)
        case .downProjectionInput where recordProjections:
            downProjection[layer, default: FeatureStatistics(width: width)].add(values, rows: rows, width: width)
        case .layerInput where recordBlockInfluence:
            pendingInput = Array(UnsafeBufferPointer(start: values, count: rows * width))
        case .layerOutput where recordBlockInfluence:
            var total = 0.0
            pendingInput.withUnsafeBufferPointer { input in
                for r in 0..<rows {
                    let a = input.baseAddress! + r * width, b = values + r * width
                    var dot = 0.0, na = 0.0, nb = 0.0
                    for j in 0..<width {
                        let x = Double(a[j]), y = Double(b[j])
                        dot += x * y; na += x * x; nb += y * y
                    }
                    let denominator = (na * nb).squareRoot()
                    // A zero vector has no direction; count it as unchanged (cos = 1).
                    total += 1 - (denominator > 0 ? dot / denominator : 1)
                }
            }
            influenceSum[layer, default: 0] += total
            influenceTokens[layer, default: 0] += rows
        default:
            break
        }
    }
}

extension PreparedModel {
    /// Runs `windows` through the decoder stack in batches of `batchSize`, reporting to `observer`.
    func observe(_ windows: [[Int]], batchSize: Int, observer: ForwardObserver, progress: ((Int) -> Void)? = nil) throws {
        var start = 0
        while start < windows.count {
            let end = min(start + max(batchSize, 1), windows.count)
            try observe(Array(windows[start..<end]), observer: observer)
            progress?(end)
            start = end
        }
    }
}
