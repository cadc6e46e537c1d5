import Checkpoints
import Foundation
import Kernels

/// Errors of the forward pass that a user can cause.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    case raggedBatch(expected: Int, found: Int)
    case emptyInput
    case contextOverflow(requested: Int, capacity: Int)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .tokenOutOfRange(let t, let v): return "token id \(t) is outside the vocabulary 0..<\(v)"
        case .raggedBatch(let e, let f): return "all sequences of a batch must have the same length (\(e) vs \(f))"
        case .emptyInput: return "no tokens to run"
        case .contextOverflow(let r, let c): return "sequence of \(r) positions exceeds the KV cache capacity \(c)"
        case .invalidArgument(let why): return why
        }
    }
}

/// A LLaMA-family causal LM held in memory: config, one Float32 copy of the weights (`FusedLayerWeights`: q/k/v
/// and gate/up stacked as the forward pass uses them), and the dense model, which shares that copy. The canonical
/// per-tensor layout is re-derived on request (`weights`, `layerWeights(_:)`). Immutable after construction;
/// per-call scratch lives in the forward pass, so one instance may serve several threads.
public final class LanguageModel: @unchecked Sendable {
    /// The architecture.
    public let config: ModelConfig
    /// The one copy of the weights.
    let stored: FusedModelWeights
    /// The dense (unmasked) model, ready to run; it shares `stored`'s arrays.
    public let dense: PreparedModel
    /// Guards the int8 weights and the dense int8 model, built on first use.
    private let int8Lock = NSLock()
    private var int8Layers: [QuantizedLayerWeights]?
    /// The output head quantized per vocabulary row, built with `int8Layers`.
    private var int8HeadWeights: Int8Matrix?
    private var int8Dense: PreparedModel?
    private var int8Smoothing: Int8Calibration?

    /// Builds the model; `weights` must match `config` (checked, naming the tensor). The model keeps one copy of
    /// the weights: pass the only reference to `weights` (e.g. `consume`) and the canonical q/k/v and gate/up
    /// tensors are freed layer by layer while they are fused, so loading never holds two copies.
    public init(config: ModelConfig, weights: consuming ModelWeights, file: String = "<memory>") throws {
        try config.validate(weights, file: file)
        try BLAS.load()
        self.config = config
        stored = FusedModelWeights(fusing: consume weights, config: config)
        dense = PreparedModel(config: config, weights: stored, mask: nil)
    }

    /// The weights in the canonical layout (design.md decision 1), re-derived from the one stored copy: wq, wk, wv,
    /// gate and up of every layer are copied out (about two thirds of the layers' bytes), the rest is shared.
    /// Prefer `layerWeights(_:)` to visit layers one at a time.
    public var weights: ModelWeights { stored.canonical }

    /// Layer `layer`'s weights in the canonical layout (`layer` in `config.layers.indices`; a programmer error
    /// otherwise): a copy of its q/k/v and gate/up, the rest shared.
    public func layerWeights(_ layer: Int) -> LayerWeights { stored.layers[layer].canonical }

    /// The model with `mask` applied: only kept structures are gathered and computed.
    public func prepared(mask: StructureMask?) throws -> PreparedModel {
        guard let mask else { return dense }
        try mask.validate(against: config)
        return PreparedModel(config: config, weights: stored, mask: mask)
    }

    /// The model with `mask` applied (nil: dense), its projections computed in `precision`. For `.int8` the dense
    /// weights are quantized once per model (on first use, thread-safe, about 0.1 GB for SmolLM2) and each call
    /// only gathers the kept int8 rows and columns; the dense int8 model is cached like `dense`. Throws
    /// `KernelError.dnnlUnavailable` when int8 is requested without oneDNN, and `MaskError` for a bad mask.
    public func prepared(mask: StructureMask?, precision: ComputePrecision) throws -> PreparedModel {
        switch precision {
        case .f32:
            return try prepared(mask: mask)
        case .int8:
            try DNNL.load()
            if let mask { try mask.validate(against: config) }
            int8Lock.lock()
            let layers = quantizedLayers()
            let head = int8HeadWeights
            guard mask == nil else {
                int8Lock.unlock()   // masked models are gathered concurrently
                // On the OpenMP team, like the int8 forward that comes next and the one before: libdispatch's
                // workers would wait for the cores that the team's threads spin on after each region.
                return Parallel.withOpenMPTeam {
                    PreparedModel(config: config, weights: stored, mask: mask, quantized: layers, quantizedHead: head)
                }
            }
            defer { int8Lock.unlock() }
            if let int8Dense { return int8Dense }
            let model = PreparedModel(config: config, weights: stored, mask: nil, quantized: layers, quantizedHead: head)
            int8Dense = model
            return model
        }
    }

    /// The calibration smoothing the int8 projections (nil: plain per-token activation quantization).
    public var int8Calibration: Int8Calibration? {
        int8Lock.lock(); defer { int8Lock.unlock() }
        return int8Smoothing
    }

    /// Smooths the int8 projections with `calibration` (from `measureInt8Calibration`; nil: none). Drops the int8
    /// weights quantized so far: models prepared earlier keep theirs, later ones use the new smoothing.
    public func useInt8Calibration(_ calibration: Int8Calibration?) throws {
        if let calibration {
            let fits = calibration.layers.count == config.layers.count && zip(calibration.layers, config.layers).allSatisfy { c, spec in
                c.qkvInput.count == config.hiddenSize && c.gateUpInput.count == config.hiddenSize
                    && c.oInput.count == spec.queryDim && c.downInput.count == spec.ffnDim
            }
            guard fits else { throw ModelError.invalidArgument("int8 calibration does not match the model's layer shapes") }
        }
        int8Lock.lock(); defer { int8Lock.unlock() }
        int8Smoothing = calibration
        int8Layers = nil
        int8HeadWeights = nil
        int8Dense = nil
    }

    /// Measures the calibration on `windows` and uses it: `useInt8Calibration(measureInt8Calibration(on:alpha:))`.
    public func calibrateInt8(on windows: [[Int]], alpha: Float = 0.5) throws {
        try useInt8Calibration(try measureInt8Calibration(on: windows, alpha: alpha))
    }

    /// The dense layers quantized per output row; call with `int8Lock` held.
    private func quantizedLayers() -> [QuantizedLayerWeights] {
        if let int8Layers { return int8Layers }
        var built = [QuantizedLayerWeights?](repeating: nil, count: config.layers.count)
        for i in config.layers.indices {   // each matrix is quantized in parallel over its rows; one layer copied out at a time
            built[i] = QuantizedLayerWeights(spec: config.layers[i], weights: layerWeights(i), hidden: config.hiddenSize,
                                             calibration: int8Smoothing, layer: i)
        }
        let layers = built.map { $0! }
        int8Layers = layers
        // The head is never masked or smoothed: its input is the final-normed residual stream.
        int8HeadWeights = Int8Matrix(quantizing: stored.head ?? stored.tokenEmbedding, rows: config.vocabSize, columns: config.hiddenSize)
        return layers
    }
}

/// A model ready to run: its layers fused and (if masked) gathered. Cheap to share across threads.
public struct PreparedModel: @unchecked Sendable {
    /// The unmasked architecture this model came from.
    public let config: ModelConfig
    /// The arithmetic of the projections.
    public let precision: ComputePrecision
    let layers: [PreparedLayer]
    /// [vocab, hidden]
    let embedding: [Float]
    /// [vocab, hidden]; the embedding when tied.
    let head: [Float]
    /// [hidden]
    let finalNorm: [Float]
    /// int8 models: `head` quantized per vocabulary row, so the sampled forwards' head is an int8 GEMM too.
    let int8Head: Int8Matrix?

    init(config: ModelConfig, weights: FusedModelWeights, mask: StructureMask?, quantized: [QuantizedLayerWeights]? = nil,
         quantizedHead: Int8Matrix? = nil) {
        self.config = config
        precision = quantized == nil ? .f32 : .int8
        var prepared = [PreparedLayer?](repeating: nil, count: config.layers.count)
        prepared.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Parallel.forEach(config.layers.count) { i in
                (base + i).initialize(to: PreparedLayer(fused: weights.layers[i], quantized: quantized?[i], mask: mask?.layers[i]))
            }
        }
        layers = prepared.map { $0! }
        embedding = weights.tokenEmbedding
        head = weights.head ?? weights.tokenEmbedding
        finalNorm = weights.finalNorm
        int8Head = quantized == nil ? nil : quantizedHead
    }

    /// The per-layer shapes actually computed (a masked model is a non-uniform list).
    public var effectiveLayers: [LayerSpec] {
        layers.map {
            LayerSpec(queryHeads: $0.queryHeads, kvHeads: $0.kvHeads, headDim: $0.headDim, ffnDim: $0.ffnDim,
                      hasAttention: $0.attention, hasMLP: $0.mlp)
        }
    }

    /// Multiply-add count of one forward pass over `tokens` positions with a context of `context` (attention
    /// scores and values over the full square, as computed), excluding the head when `includeHead` is false.
    public func flops(batch: Int, sequence: Int, includeHead: Bool = true) -> Double {
        let n = Double(batch * sequence)
        let d = Double(config.hiddenSize)
        var total = 0.0
        for l in layers {
            if l.attention {
                total += 2 * n * d * Double(l.qkvDim + l.queryDim)
                total += 2 * 2 * Double(batch) * Double(l.queryHeads) * Double(sequence * sequence) * Double(l.headDim)
            }
            if l.mlp { total += 2 * n * d * Double(3 * l.ffnDim) }
        }
        if includeHead { total += 2 * n * d * Double(config.vocabSize) }
        return total
    }
}
