import Checkpoints
import Foundation
import Kernels

/// Keys and values of earlier positions, per layer, for incremental decoding of one sequence.
public struct KVCache: Sendable {
    /// Positions stored so far.
    public internal(set) var count: Int = 0
    /// Maximum positions.
    public let capacity: Int
    /// Per layer: [capacity, kvDim] keys and values (RoPE already applied to keys).
    var keys: [[Float]]
    var values: [[Float]]

    /// An empty cache for `model` holding up to `capacity` positions.
    public init(model: PreparedModel, capacity: Int) {
        self.capacity = capacity
        keys = model.layers.map { [Float](repeating: 0, count: capacity * $0.kvDim) }
        values = model.layers.map { [Float](repeating: 0, count: capacity * $0.kvDim) }
    }
}

/// Where a `ForwardObserver` sees activations inside decoder layer `layer`.
public enum ProbePoint: Sendable, Equatable {
    /// The residual stream entering the layer ([rows, hidden]).
    case layerInput
    /// The concatenated head outputs entering o_proj ([rows, kept query heads · headDim]).
    case outputProjectionInput
    /// The residual stream entering the MLP sublayer ([rows, hidden]).
    case mlpInput
    /// act(gate) · up (SiLU or GELU-tanh) entering down_proj ([rows, kept channels]).
    case downProjectionInput
    /// The residual stream leaving the layer ([rows, hidden]).
    case layerOutput
}

/// Receives activations during a forward pass (for metric scorers: Wanda-sp statistics, block influence).
/// Called on the forward pass's thread, in layer order; `values` is valid only during the call.
public protocol ForwardObserver: AnyObject {
    func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int)
}

extension PreparedModel {
    /// Runs the decoder stack over equal-length windows for its side effects on `observer` (no head, no loss).
    public func observe(_ windows: [[Int]], observer: ForwardObserver) throws {
        let (flat, batch, length) = try flatten(windows)
        _ = runLayers(tokens: flat, batch: batch, length: length, cache: nil, observer: observer)
    }

    /// The residual stream entering layer 0 for equal-length windows: the embedding rows, [batch · length, hidden].
    public func embed(_ windows: [[Int]]) throws -> [Float] {
        embedRows(try flatten(windows).0)
    }

    /// Runs decoder layers `range` in place on `hidden` ([batch · length, hidden]: equal-length windows of
    /// `length` tokens from position 0), reporting to `observer`; no final norm. Running consecutive ranges one
    /// after another computes exactly what one pass over their union computes, so a layer-by-layer procedure
    /// (Wanda-sp's official order) need not re-run the layers below.
    public func applyLayers(_ range: Range<Int>, to hidden: inout [Float], batch: Int, length: Int,
                            observer: ForwardObserver? = nil) {
        precondition(range.lowerBound >= 0 && range.upperBound <= layers.count, "layer range inside the model")
        let positions = (0..<(batch * length)).map { $0 % length }
        runLayers(range, on: &hidden, positions: positions, observer: observer) { layer, index, qkv, out in
            attend(layer: layer, layerIndex: index, qkv: qkv, out: out, batch: batch, length: length, cache: nil)
        }
    }

    /// Per-token negative log-likelihood (nats, Double) of each sequence under the model: for a window of W tokens,
    /// W-1 values, entry t being -log p(token[t+1] | token[0...t]). All windows must have the same length.
    /// Logits are computed in row blocks and never held for the whole batch.
    public func tokenNLL(_ windows: [[Int]]) throws -> [[Double]] {
        try tokenNLL(windows, observer: nil)
    }

    /// `tokenNLL` that also reports activations to `observer`.
    public func tokenNLL(_ windows: [[Int]], observer: ForwardObserver?) throws -> [[Double]] {
        guard usesOpenMPTeam else { return try tokenNLLOnThisPool(windows, observer: observer) }
        return try Parallel.withOpenMPTeam { try tokenNLLOnThisPool(windows, observer: observer) }
    }

    /// Whether this model's forwards run their own parallel loops on oneDNN's OpenMP team: when all their GEMMs run
    /// on oneDNN (int8 models; Float32 ones when `F32GEMM` sends every shape there), unless
    /// `POLICYPRUNE_POOL=dispatch` (for comparison: BENCHMARKS.md).
    var usesOpenMPTeam: Bool {
        Self.openMPTeamAllowed && (precision == .int8 ? Self.int8UsesDNNLSgemm : F32GEMM.onlyDNNL)
    }

    private static let openMPTeamAllowed: Bool = ProcessInfo.processInfo.environment["POLICYPRUNE_POOL"] != "dispatch"

    private func tokenNLLOnThisPool(_ windows: [[Int]], observer: ForwardObserver?) throws -> [[Double]] {
        let (flat, batch, length) = try flatten(windows)
        let hidden = runLayers(tokens: flat, batch: batch, length: length, cache: nil, observer: observer)
        var result = [[Double]](repeating: [Double](repeating: 0, count: max(0, length - 1)), count: batch)
        if length < 2 { return result }
        // Row n predicts flat[n + 1], except the last row of each window.
        let targets: [Int?] = (0..<(batch * length)).map { n in n % length == length - 1 ? nil : flat[n + 1] }
        // Up to 256 × vocab logits (50 MB for 49,152): 64-row GEMMs ran at only 60 % of the sgemm rate.
        let scored = hidden.withUnsafeBufferPointer { h in
            targetLogProbabilities(hidden: h.baseAddress!, targets: targets, blockRows: 256, greedy: false)
        }
        for b in 0..<batch {
            for t in 0..<(length - 1) {
                // 0 − log p, not −log p: where the target holds all the mass, log p is +0 and the NLL stays +0.
                result[b][t] = 0 - scored.logProbabilities[b * length + t]
            }
        }
        return result
    }

    /// Logits at every position, [batch][length * vocab] (row-major per sequence). Materialises all logits:
    /// use for short inputs and tests; `tokenNLL` for evaluation.
    public func logits(_ sequences: [[Int]]) throws -> [[Float]] {
        let (flat, batch, length) = try flatten(sequences)
        let hidden = runLayers(tokens: flat, batch: batch, length: length, cache: nil)
        return projectToVocabulary(hidden, rows: batch * length).chunked(length * config.vocabSize)
    }

    /// Runs `tokens` (one sequence) after the positions already in `cache`, appends their keys and values, and
    /// returns the logits of the last new position ([vocab]).
    public func extend(_ tokens: [Int], cache: inout KVCache) throws -> [Float] {
        guard !tokens.isEmpty else { throw ModelError.emptyInput }
        for t in tokens where t < 0 || t >= config.vocabSize {
            throw ModelError.tokenOutOfRange(token: t, vocabularySize: config.vocabSize)
        }
        if cache.count + tokens.count > cache.capacity {
            throw ModelError.contextOverflow(requested: cache.count + tokens.count, capacity: cache.capacity)
        }
        let hidden = runLayers(tokens: tokens, batch: 1, length: tokens.count, cache: &cache)
        let last = Array(hidden[((tokens.count - 1) * config.hiddenSize)...])
        return projectToVocabulary(last, rows: 1)
    }

    private func flatten(_ sequences: [[Int]]) throws -> ([Int], Int, Int) {
        guard let first = sequences.first, !first.isEmpty else { throw ModelError.emptyInput }
        var flat = [Int]()
        flat.reserveCapacity(sequences.count * first.count)
        for s in sequences {
            if s.count != first.count { throw ModelError.raggedBatch(expected: first.count, found: s.count) }
            for t in s where t < 0 || t >= config.vocabSize {
                throw ModelError.tokenOutOfRange(token: t, vocabularySize: config.vocabSize)
            }
            flat.append(contentsOf: s)
        }
        return (flat, sequences.count, first.count)
    }

    /// hidden [rows, d] (final-normed) → logits [rows, vocab].
    private func projectToVocabulary(_ hidden: [Float], rows: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * config.vocabSize)
        hidden.withUnsafeBufferPointer { h in
            head.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { o in
                    sgemm(m: rows, n: config.vocabSize, k: config.hiddenSize, a: h.baseAddress!,
                              b: w.baseAddress!, transposeB: true, c: o.baseAddress!)
                }
            }
        }
        return out
    }

    /// The decoder stack: embeddings → layers → final norm. Returns [batch·length, hidden]. With a cache
    /// (batch 1), positions start at `cache.count` and attention also covers the cached positions.
    func runLayers(tokens: [Int], batch: Int, length: Int, cache: UnsafeMutablePointer<KVCache>?,
                   observer: ForwardObserver? = nil) -> [Float] {
        let start = cache?.pointee.count ?? 0
        let positions = (0..<(batch * length)).map { start + $0 % length }
        let x = decoderStack(tokens: tokens, positions: positions, observer: observer) { layer, index, qkv, out in
            attend(layer: layer, layerIndex: index, qkv: qkv, out: out, batch: batch, length: length, cache: cache)
        }
        if let cache { cache.pointee.count += length }
        return x
    }

    /// Causal grouped-query attention for one layer. `qkv` rows hold [q heads | k heads | v heads] with RoPE
    /// applied; writes the concatenated head outputs to `out` ([n, queryDim]). With a cache, new keys/values
    /// are appended first and queries attend to all cached positions up to their own (within the layer's sliding
    /// window, if it has one: the cache keeps every position, the window only limits the softmax).
    private func attend(layer: PreparedLayer, layerIndex: Int, qkv: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>,
                        batch: Int, length: Int, cache: UnsafeMutablePointer<KVCache>?) {
        let hd = layer.headDim
        let stride = layer.qkvDim
        let scale = attentionScale(headDim: hd)
        let window = config.attentionWindow(layer: layerIndex)
        let start = cache?.pointee.count ?? 0
        let keysTotal = start + length
        var scores = [Float](repeating: 0, count: length * keysTotal)   // [length, keysTotal] for one head
        let work: (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, Int) -> Void = { kBase, kStride, vBase, vStride, b in
            scores.withUnsafeMutableBufferPointer { sb in
                let s = sb.baseAddress!
                for h in 0..<layer.queryHeads {
                    let grp = layer.queryGroups[h]
                    let q = qkv + b * length * stride + h * hd
                    sgemm(m: length, n: keysTotal, k: hd, a: q, lda: stride, b: kBase + grp * hd, ldb: kStride,
                              transposeB: true, c: s, alpha: scale)
                    Parallel.forEachChunk(length, minimumPerChunk: 32) { range in
                        for t in range { Self.causalSoftmax(s + t * keysTotal, visible: start + t + 1, keys: keysTotal, window: window) }
                    }
                    sgemm(m: length, n: hd, k: keysTotal, a: s, b: vBase + grp * hd, ldb: vStride, transposeB: false,
                              c: out + b * length * layer.queryDim + h * hd, ldc: layer.queryDim)
                }
            }
        }
        if let cache {
            let kvd = layer.kvDim
            cache.pointee.keys[layerIndex].withUnsafeMutableBufferPointer { kc in
                cache.pointee.values[layerIndex].withUnsafeMutableBufferPointer { vc in
                    for t in 0..<length {
                        let row = qkv + t * stride
                        (kc.baseAddress! + (start + t) * kvd).update(from: row + layer.queryDim, count: kvd)
                        (vc.baseAddress! + (start + t) * kvd).update(from: row + layer.queryDim + kvd, count: kvd)
                    }
                    work(kc.baseAddress!, kvd, vc.baseAddress!, kvd, 0)
                }
            }
        } else if precision == .int8 && Self.int8UsesDNNLSgemm {
            attendPerHead(layer: layer, window: window, qkv: qkv, out: out, batch: batch, length: length)
        } else {
            for b in 0..<batch {
                let base = qkv + b * length * stride
                work(base + layer.queryDim, stride, base + layer.queryDim + layer.kvDim, stride, b)
            }
        }
    }

    /// One query's row of attention scores ([keys]) turned into its weights: softmax over the `visible` keys the
    /// query may see (all up to its own position, within the sliding `window` if any: the keys more than
    /// `window - 1` positions back are hidden), zero elsewhere.
    @inline(__always)
    private static func causalSoftmax(_ row: UnsafeMutablePointer<Float>, visible: Int, keys: Int, window: Int?) {
        let first = window.map { max(0, visible - $0) } ?? 0
        if first > 0 { row.update(repeating: 0, count: first) }
        Ops.softmaxInPlace(row + first, count: visible - first)
        if visible < keys { (row + visible).update(repeating: 0, count: keys - visible) }
    }

    /// `attend` without a cache, each (sequence, head) pair on one core with oneDNN's sgemm on the calling thread:
    /// the int8 forward's attention. Its GEMMs (length × length × headDim) are too small to split over the cores,
    /// and sgemm calls that each wake oneDNN's OpenMP team cost more than the arithmetic (BENCHMARKS.md).
    private func attendPerHead(layer: PreparedLayer, window: Int?, qkv: UnsafeMutablePointer<Float>,
                               out: UnsafeMutablePointer<Float>, batch: Int, length: Int) {
        let hd = layer.headDim
        let stride = layer.qkvDim
        let scale = attentionScale(headDim: hd)
        let pairs = batch * layer.queryHeads
        Parallel.forEachChunk(pairs) { range in
            let s = UnsafeMutablePointer<Float>.allocate(capacity: length * length)   // [length, length] for one head
            defer { s.deallocate() }
            for pair in range {
                let b = pair / layer.queryHeads, h = pair % layer.queryHeads
                let grp = layer.queryGroups[h]
                let base = qkv + b * length * stride
                DNNL.serialSgemm(m: length, n: length, k: hd, a: base + h * hd, lda: stride,
                                 b: base + layer.queryDim + grp * hd, ldb: stride, transposeB: true, c: s, alpha: scale)
                for t in 0..<length { Self.causalSoftmax(s + t * length, visible: t + 1, keys: length, window: window) }
                DNNL.serialSgemm(m: length, n: hd, k: length, a: s, b: base + layer.queryDim + layer.kvDim + grp * hd,
                                 ldb: stride, transposeB: false, c: out + b * length * layer.queryDim + h * hd,
                                 ldc: layer.queryDim)
            }
        }
    }
}

extension PreparedModel {
    /// The factor on q·k: `config.attentionScale`, else 1/sqrt(head width).
    func attentionScale(headDim: Int) -> Float {
        config.attentionScale ?? 1 / Float(headDim).squareRoot()
    }

    /// The Float32 GEMM of this model's attention and head (`BLAS.gemm`'s contract): `F32GEMM` for f32 models (OpenBLAS
    /// unless it runs below the CPU's kernels), oneDNN's sgemm for int8 ones, so that an int8 forward runs on one
    /// thread pool (OpenBLAS's idle workers spin for a while after each call, next to the OpenMP team of the int8 GEMM
    /// that follows).
    @inline(__always)
    func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int? = nil, b: UnsafePointer<Float>, ldb: Int? = nil,
               transposeB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0) {
        if precision == .int8 && Self.int8UsesDNNLSgemm {
            DNNL.sgemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc, alpha: alpha, beta: beta)
        } else {
            F32GEMM.gemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc, alpha: alpha, beta: beta)
        }
    }

    /// Whether int8 models run their Float32 GEMMs on oneDNN (default) or OpenBLAS (`POLICYPRUNE_INT8_SGEMM=openblas`,
    /// for comparison: BENCHMARKS.md "int8 forwards").
    static let int8UsesDNNLSgemm: Bool = ProcessInfo.processInfo.environment["POLICYPRUNE_INT8_SGEMM"] != "openblas"
}

extension Array {
    /// Splits into consecutive pieces of `size` elements.
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
