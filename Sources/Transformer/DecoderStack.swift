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
        let d = config.hiddenSize
        x.withUnsafeMutableBufferPointer { xb in
            finalNorm.withUnsafeBufferPointer { w in
                Ops.rmsNorm(xb.baseAddress!, weight: w.baseAddress!, out: xb.baseAddress!, rows: tokens.count, dim: d, eps: config.normEpsilon)
            }
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
        let d = config.hiddenSize
        let n = positions.count
        precondition(x.count == n * d, "one residual row per position")
        let layers = Array(self.layers[range])
        let maxQKV = layers.map(\.qkvDim).max() ?? 0
        let maxQ = layers.map(\.queryDim).max() ?? 0
        let maxFF = layers.map(\.ffnDim).max() ?? 0
        var normed = [Float](repeating: 0, count: n * d)          // [n, d]
        var qkv = [Float](repeating: 0, count: n * maxQKV)         // [n, qkvDim]
        var attended = [Float](repeating: 0, count: n * maxQ)      // [n, queryDim]
        var gateUp = [Float](repeating: 0, count: n * 2 * maxFF)   // [n, 2·ffn]
        var activated = [Float](repeating: 0, count: n * maxFF)    // [n, ffn]
        // int8 projections: quantized activations [n, widest input] and Int32 products [n, widest output].
        var int8Scratch = Int8Scratch(rows: precision == .int8 ? n : 0, inputs: max(d, maxQ, maxFF),
                                      outputs: max(maxQKV, d, 2 * maxFF))
        let maxPosition = (positions.max() ?? 0) + 1
        var ropeTables = [RoPEKey: RotaryTable]()
        func ropeKey(_ offset: Int) -> RoPEKey {
            RoPEKey(headDim: layers[offset].headDim, local: config.localAttention?.isLocal(range.lowerBound + offset) == true)
        }
        for offset in layers.indices where layers[offset].attention {
            let key = ropeKey(offset), li = range.lowerBound + offset
            if ropeTables[key] != nil { continue }
            // LongRoPE picks its divisors by how far this call's positions reach, as transformers does per forward.
            let scaling = config.ropeScaling(layer: li)
            let invFreq = RoPEScaling.inverseFrequencies(headDim: key.headDim, theta: config.ropeTheta(layer: li),
                                                         scaling: scaling, positions: maxPosition)
            ropeTables[key] = RotaryTable(inverseFrequencies: invFreq, positions: maxPosition, scale: scaling?.rotationScale ?? 1)
        }
        /// out[n, outputs] = input[n, inputs] · Wᵀ (+ out when `accumulate`) (+ bias per row), through the layer's
        /// int8 weights when it has them, else its Float32 weights.
        func project(_ input: UnsafePointer<Float>, int8: Int8Matrix?, f32: [Float], inputs: Int, outputs: Int,
                     bias: [Float]? = nil, out: UnsafeMutablePointer<Float>, accumulate: Bool) {
            if let int8 {
                Int8Linear.apply(input, rows: n, weights: int8, bias: bias, out: out, accumulate: accumulate, scratch: &int8Scratch)
                return
            }
            f32.withUnsafeBufferPointer { w in
                F32GEMM.gemm(m: n, n: outputs, k: inputs, a: input, b: w.baseAddress!, transposeB: true, c: out, beta: accumulate ? 1 : 0)
            }
            bias?.withUnsafeBufferPointer { bb in
                for r in 0..<n { Ops.add(bb.baseAddress!, into: out + r * outputs, count: outputs) }
            }
        }

        /// x += input[n, inputs] · Wᵀ, the sublayer's output into the residual stream. With a post-sublayer norm
        /// (Gemma) the output goes to `scratch` ([n, d], free at that point) instead, is RMS-normalised in place,
        /// then added.
        func addToResidual(_ input: UnsafePointer<Float>, int8: Int8Matrix?, f32: [Float], inputs: Int, postNorm: [Float]?,
                           x: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
            guard let postNorm else {
                project(input, int8: int8, f32: f32, inputs: inputs, outputs: d, out: x, accumulate: true)
                return
            }
            project(input, int8: int8, f32: f32, inputs: inputs, outputs: d, out: scratch, accumulate: false)
            postNorm.withUnsafeBufferPointer { w in
                Ops.rmsNorm(scratch, weight: w.baseAddress!, out: scratch, rows: n, dim: d, eps: config.normEpsilon)
            }
            for r in 0..<n { Ops.add(scratch + r * d, into: x + r * d, count: d) }
        }

        x.withUnsafeMutableBufferPointer { xb in
            normed.withUnsafeMutableBufferPointer { nb in
                qkv.withUnsafeMutableBufferPointer { qb in
                    attended.withUnsafeMutableBufferPointer { ab in
                        gateUp.withUnsafeMutableBufferPointer { gb in
                            activated.withUnsafeMutableBufferPointer { actb in
                                positions.withUnsafeBufferPointer { pos in
                                    let xp = xb.baseAddress!, np = nb.baseAddress!, qp = qb.baseAddress!
                                    let ap = ab.baseAddress!, gp = gb.baseAddress!, actp = actb.baseAddress!
                                    for (offset, layer) in layers.enumerated() {
                                        let li = range.lowerBound + offset
                                        observer?.observe(layer: li, point: .layerInput, values: xp, rows: n, width: d)
                                        if layer.attention {
                                            layer.attentionNorm.withUnsafeBufferPointer { w in
                                                Ops.rmsNorm(xp, weight: w.baseAddress!, out: np, rows: n, dim: d, eps: config.normEpsilon)
                                            }
                                            project(np, int8: layer.int8?.qkv, f32: layer.wqkv, inputs: d, outputs: layer.qkvDim,
                                                    bias: layer.bqkv, out: qp, accumulate: false)
                                            let rope = ropeTables[ropeKey(offset)]!
                                            let hd = layer.headDim
                                            Parallel.forEachChunk(n, minimumPerChunk: 32) { range in
                                                for r in range {
                                                    if let qn = layer.qNorm, let kn = layer.kNorm {
                                                        // Qwen3: each q head, then each k head, RMS-normalised
                                                        // on its own before RoPE; one head per call, because
                                                        // rows: 1 runs inline (no parallel loop in this one).
                                                        let row = qp + r * layer.qkvDim
                                                        qn.withUnsafeBufferPointer { w in
                                                            for h in 0..<layer.queryHeads {
                                                                Ops.rmsNorm(row + h * hd, weight: w.baseAddress!, out: row + h * hd, rows: 1, dim: hd, eps: config.normEpsilon)
                                                            }
                                                        }
                                                        kn.withUnsafeBufferPointer { w in
                                                            for h in layer.queryHeads..<(layer.queryHeads + layer.kvHeads) {
                                                                Ops.rmsNorm(row + h * hd, weight: w.baseAddress!, out: row + h * hd, rows: 1, dim: hd, eps: config.normEpsilon)
                                                            }
                                                        }
                                                    }
                                                    rope.apply(qp + r * layer.qkvDim, heads: layer.queryHeads + layer.kvHeads, position: pos[r])
                                                }
                                            }
                                            attend(layer, li, qp, ap)
                                            observer?.observe(layer: li, point: .outputProjectionInput, values: ap, rows: n, width: layer.queryDim)
                                            // `normed` is free once q/k/v are projected.
                                            addToResidual(ap, int8: layer.int8?.o, f32: layer.wo, inputs: layer.queryDim,
                                                          postNorm: layer.postAttentionNorm, x: xp, scratch: np)
                                        }
                                        observer?.observe(layer: li, point: .mlpInput, values: xp, rows: n, width: d)
                                        if layer.mlp {
                                            layer.mlpNorm.withUnsafeBufferPointer { w in
                                                Ops.rmsNorm(xp, weight: w.baseAddress!, out: np, rows: n, dim: d, eps: config.normEpsilon)
                                            }
                                            project(np, int8: layer.int8?.gateUp, f32: layer.wGateUp, inputs: d, outputs: 2 * layer.ffnDim,
                                                    out: gp, accumulate: false)
                                            switch config.mlpActivation {
                                            case .silu: Ops.swiGLU(gp, out: actp, rows: n, width: layer.ffnDim)
                                            case .geluTanh: Ops.geluTanhGLU(gp, out: actp, rows: n, width: layer.ffnDim)
                                            }
                                            observer?.observe(layer: li, point: .downProjectionInput, values: actp, rows: n, width: layer.ffnDim)
                                            addToResidual(actp, int8: layer.int8?.down, f32: layer.wDown, inputs: layer.ffnDim,
                                                          postNorm: layer.postMLPNorm, x: xp, scratch: np)
                                        }
                                        observer?.observe(layer: li, point: .layerOutput, values: xp, rows: n, width: d)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
