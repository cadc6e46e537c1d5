import Checkpoints
import Kernels

extension PreparedModel {
    /// Embeddings (× `embeddingScale`) → every layer (RMSNorm, fused q/k/v with biases, per-head q/k norms and RoPE
    /// at the layer's base, `attend`, o_proj, the optional post-attention norm, into the residual; RMSNorm, fused
    /// gate/up, SwiGLU or GELU-tanh GLU, down_proj, the optional post-MLP norm, into the residual) → final norm,
    /// over `tokens.count` rows at
    /// once. Returns the final-normed hidden states [rows, hidden]. The one layer loop behind the batched forward
    /// (`runLayers`) and the packed zero-shot forward (`runPacked`); they differ only in positions and attention.
    /// - Parameters:
    ///   - positions: the RoPE position of every row.
    ///   - observer: sees the activations of every `ProbePoint`.
    ///   - attend: (layer, layer index, q/k/v rows [rows, qkvDim] with RoPE applied, output [rows, queryDim]):
    ///     writes the concatenated head outputs.
    func decoderStack(tokens: [Int], positions: [Int], observer: ForwardObserver?,
                      attend: (PreparedLayer, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
        var x = embedRows(tokens)
        runLayers(layers.indices, on: &x, positions: positions, observer: observer, attend: attend)
        x.withUnsafeMutableBufferPointer { xb in
            rmsNorm(xb.baseAddress!, weight: finalNorm, out: xb.baseAddress!, rows: tokens.count, dim: config.hiddenSize)
        }
        return x
    }

    /// The embedding rows of `tokens` times `config.embeddingScale` (Gemma): the residual stream entering layer 0,
    /// [tokens, hidden].
    func embedRows(_ tokens: [Int]) -> [Float] {
        let d = config.hiddenSize
        var x = [Float](repeating: 0, count: tokens.count * d)
        embedding.withUnsafeBufferPointer { e in
            x.withUnsafeMutableBufferPointer { xb in
                for (i, t) in tokens.enumerated() { (xb.baseAddress! + i * d).update(from: e.baseAddress! + t * d, count: d) }
                if let scale = config.embeddingScale {
                    for i in xb.indices { xb[i] *= scale }
                }
            }
        }
        return x
    }

    /// A RoPE table per head width and kind of layer (a local layer has its own base; `ModelConfig.ropeTheta(layer:)`).
    private struct RoPEKey: Hashable {
        let headDim: Int
        let local: Bool
    }

    /// Decoder layers `range` in place on the residual stream `x` ([rows, hidden]); no final norm.
    func runLayers(_ range: Range<Int>, on x: inout [Float], positions: [Int], observer: ForwardObserver?,
                   attend: (PreparedLayer, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        precondition(x.count == positions.count * config.hiddenSize, "one residual row per position")
        x.withUnsafeMutableBufferPointer { xb in
            runLayers(range, on: xb.baseAddress!, positions: positions, observer: observer, attend: attend)
        }
    }

    /// `runLayers` on the residual stream at `x` ([positions.count, hidden]).
    private func runLayers(_ range: Range<Int>, on x: UnsafeMutablePointer<Float>, positions: [Int], observer: ForwardObserver?,
                           attend: (PreparedLayer, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let d = config.hiddenSize
        let n = positions.count
        let layers = Array(self.layers[range])
        // int8 without an observer: RMSNorm and down_proj's inputs are made row by row where they are quantized.
        let fused = precision == .int8 && observer == nil
        let scratch = ForwardScratch(rows: n, hidden: d, layers: layers, int8: precision == .int8, fused: fused)
        let ropeTables = rotaryTables(range, positions: (positions.max() ?? 0) + 1)

        /// out[n, outputs] = input[n, inputs] · Wᵀ (+ out when `accumulate`) (+ bias per row), through the layer's
        /// int8 weights when it has them, else its Float32 weights: `f32` is W ([outputs, inputs]), or Wᵀ
        /// ([inputs, outputs]) when `f32Transposed`.
        func project(_ input: UnsafePointer<Float>, int8: Int8Matrix?, f32: [Float], f32Transposed: Bool = false, inputs: Int,
                     outputs: Int, bias: [Float]? = nil, out: UnsafeMutablePointer<Float>, accumulate: Bool) {
            if let int8 {
                Int8Linear.apply(input, rows: n, weights: int8, bias: bias, out: out, accumulate: accumulate, scratch: &scratch.int8)
                return
            }
            f32.withUnsafeBufferPointer { w in
                F32GEMM.gemm(m: n, n: outputs, k: inputs, a: input, b: w.baseAddress!, transposeB: !f32Transposed, c: out,
                             beta: accumulate ? 1 : 0)
            }
            bias?.withUnsafeBufferPointer { bb in
                for r in 0..<n { Ops.add(bb.baseAddress!, into: out + r * outputs, count: outputs) }
            }
        }

        /// x += input[n, inputs] · Wᵀ, the sublayer's output into the residual stream. With a post-sublayer norm
        /// (Gemma) the output goes to `scratch.normed` (free at that point) instead, is RMS-normalised in place,
        /// then added.
        func addToResidual(_ input: UnsafePointer<Float>, int8: Int8Matrix?, f32: [Float], f32Transposed: Bool = false, inputs: Int,
                           postNorm: [Float]?) {
            guard let postNorm else {
                project(input, int8: int8, f32: f32, f32Transposed: f32Transposed, inputs: inputs, outputs: d, out: x, accumulate: true)
                return
            }
            let output = scratch.normed
            project(input, int8: int8, f32: f32, f32Transposed: f32Transposed, inputs: inputs, outputs: d, out: output,
                    accumulate: false)
            rmsNorm(output, weight: postNorm, out: output, rows: n, dim: d)
            for r in 0..<n { Ops.add(output + r * d, into: x + r * d, count: d) }
        }

        /// `body` with a producer of RMSNorm(x; norm) rows: `(t, row)` writes row t, normed, into `row`.
        func withNormedRows(_ norm: [Float], _ body: ((Int, UnsafeMutablePointer<Float>) -> Void) -> Void) {
            norm.withUnsafeBufferPointer { w in
                let eps = config.normEpsilon
                body { t, row in Ops.rmsNorm(x + t * d, weight: w.baseAddress!, out: row, rows: 1, dim: d, eps: eps) }
            }
        }

        /// The model's gated activation (SwiGLU or GELU-tanh GLU) of `rows` gate | up rows.
        func gatedUnit(_ gateUp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
            switch config.mlpActivation {
            case .silu: Ops.swiGLU(gateUp, out: out, rows: rows, width: width)
            case .geluTanh: Ops.geluTanhGLU(gateUp, out: out, rows: rows, width: width)
            }
        }

        for (offset, layer) in layers.enumerated() {
            let li = range.lowerBound + offset
            observer?.observe(layer: li, point: .layerInput, values: x, rows: n, width: d)
            if layer.attention {
                if let qkv = layer.int8?.qkv, fused {
                    withNormedRows(layer.attentionNorm) { normed in
                        Int8Linear.apply(rows: n, weights: qkv, bias: layer.bqkv, out: scratch.qkv, accumulate: false,
                                         scratch: &scratch.int8, producing: normed)
                    }
                } else {
                    rmsNorm(x, weight: layer.attentionNorm, out: scratch.normed, rows: n, dim: d)
                    project(scratch.normed, int8: layer.int8?.qkv, f32: layer.wqkv, inputs: d, outputs: layer.qkvDim,
                            bias: layer.bqkv, out: scratch.qkv, accumulate: false)
                }
                normalizeAndRotate(scratch.qkv, layer: layer, rope: ropeTables[ropeKey(li)]!, positions: positions)
                attend(layer, li, scratch.qkv, scratch.attended)
                observer?.observe(layer: li, point: .outputProjectionInput, values: scratch.attended, rows: n, width: layer.queryDim)
                addToResidual(scratch.attended, int8: layer.int8?.o, f32: layer.wo, inputs: layer.queryDim,
                              postNorm: layer.postAttentionNorm)
            }
            observer?.observe(layer: li, point: .mlpInput, values: x, rows: n, width: d)
            if layer.mlp {
                if let int8 = layer.int8, fused, layer.postMLPNorm == nil {
                    // Each row's RMSNorm is made where it is quantized, and each row of down_proj's input from its
                    // gate | up products where it is quantized (Int8Linear's producing apply and multiply): neither
                    // the normed rows nor the Float32 gate | up rows are written out and read back. Same values as
                    // the unfused path.
                    let ffn = layer.ffnDim
                    withNormedRows(layer.mlpNorm) { normed in
                        Int8Linear.multiply(rows: n, weights: int8.gateUp, scratch: &scratch.int8GateUp, producing: normed, then: { gateUp in
                            Int8Linear.apply(rows: n, weights: int8.down, out: x, accumulate: true, scratch: &scratch.int8,
                                             workspace: 2 * ffn) { t, row, space in
                                gateUp.dequantize(row: t, into: space)
                                gatedUnit(space, out: row, rows: 1, width: ffn)
                            }
                        })
                    }
                } else {
                    rmsNorm(x, weight: layer.mlpNorm, out: scratch.normed, rows: n, dim: d)
                    project(scratch.normed, int8: layer.int8?.gateUp, f32: layer.wGateUp, inputs: d, outputs: 2 * layer.ffnDim,
                            out: scratch.gateUp, accumulate: false)
                    gatedUnit(scratch.gateUp, out: scratch.activated, rows: n, width: layer.ffnDim)
                    observer?.observe(layer: li, point: .downProjectionInput, values: scratch.activated, rows: n, width: layer.ffnDim)
                    addToResidual(scratch.activated, int8: layer.int8?.down, f32: layer.wDownT, f32Transposed: true,
                                  inputs: layer.ffnDim, postNorm: layer.postMLPNorm)
                }
            }
            observer?.observe(layer: li, point: .layerOutput, values: x, rows: n, width: d)
        }
    }

    /// The RoPE table of layer `layer`: its head width and whether it is a local (sliding-window) layer.
    private func ropeKey(_ layer: Int) -> RoPEKey {
        RoPEKey(headDim: layers[layer].headDim, local: config.localAttention?.isLocal(layer) == true)
    }

    /// One RoPE table per `RoPEKey` among the attention layers of `range`, covering positions 0..<`positions`.
    private func rotaryTables(_ range: Range<Int>, positions: Int) -> [RoPEKey: RotaryTable] {
        var tables = [RoPEKey: RotaryTable]()
        for li in range where layers[li].attention {
            let key = ropeKey(li)
            if tables[key] != nil { continue }
            // LongRoPE picks its divisors by how far this call's positions reach, as transformers does per forward.
            let scaling = config.ropeScaling(layer: li)
            let inverseFrequencies = RoPEScaling.inverseFrequencies(headDim: key.headDim, theta: config.ropeTheta(layer: li),
                                                                    scaling: scaling, positions: positions)
            tables[key] = RotaryTable(inverseFrequencies: inverseFrequencies, positions: positions, scale: scaling?.rotationScale ?? 1)
        }
        return tables
    }

    /// In place on `qkv` ([positions.count, layer.qkvDim]): the per-head q and k norms when the layer has them
    /// (Qwen3, Gemma 3), then RoPE on every q and k head at each row's position.
    private func normalizeAndRotate(_ qkv: UnsafeMutablePointer<Float>, layer: PreparedLayer, rope: RotaryTable, positions: [Int]) {
        let hd = layer.headDim
        Parallel.forEachChunk(positions.count, minimumPerChunk: 32) { range in
            for r in range {
                let row = qkv + r * layer.qkvDim
                if let qNorm = layer.qNorm, let kNorm = layer.kNorm {
                    // Each q head, then each k head, RMS-normalised on its own; one head per call, because
                    // rows: 1 runs inline (no parallel loop inside this one).
                    for h in 0..<layer.queryHeads {
                        rmsNorm(row + h * hd, weight: qNorm, out: row + h * hd, rows: 1, dim: hd)
                    }
                    for h in layer.queryHeads..<(layer.queryHeads + layer.kvHeads) {
                        rmsNorm(row + h * hd, weight: kNorm, out: row + h * hd, rows: 1, dim: hd)
                    }
                }
                rope.apply(row, heads: layer.queryHeads + layer.kvHeads, position: positions[r])
            }
        }
    }

    /// `Ops.rmsNorm` with a weight array and the model's epsilon; `out` may be `input`.
    private func rmsNorm(_ input: UnsafePointer<Float>, weight: [Float], out: UnsafeMutablePointer<Float>, rows: Int, dim: Int) {
        weight.withUnsafeBufferPointer { w in
            Ops.rmsNorm(input, weight: w.baseAddress!, out: out, rows: rows, dim: dim, eps: config.normEpsilon)
        }
    }
}
