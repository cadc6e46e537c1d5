/// Anything that holds named tensors: a GGUF file, a llama2.c checkpoint, one or several safetensors files.
/// Shapes are outermost first (`[out, in]` for a matrix).
protocol TensorSource {
    /// The file named in errors.
    var sourcePath: String { get }
    /// Every tensor name in the source.
    var tensorNames: [String] { get }
    /// The file holding `name` (differs from `sourcePath` for sharded checkpoints).
    func file(of name: String) -> String
    /// Shape of `name`, outermost first, or nil when absent.
    func shape(of name: String) -> [Int]?
    /// Tensor `name` as Float32 in its stored row-major element order.
    func floats(named name: String) throws -> [Float]
}

/// A tensor's role in a LLaMA-family decoder layer.
enum LayerTensor: CaseIterable {
    case attentionNorm, wq, wk, wv, wo, bq, bk, bv, qNorm, kNorm, postAttentionNorm, mlpNorm, gate, up, down, postMLPNorm
}

/// One weight-name table: how a format names each tensor of `ModelWeights`.
struct WeightNames {
    var tokenEmbedding: String
    var finalNorm: String
    var head: String
    var layer: (Int, LayerTensor) -> String
    /// Tensors the format stores that carry nothing the model needs (llama2.c's RoPE tables, old HF inv_freq).
    var isIgnorable: (String) -> Bool = { _ in false }
    /// Where the family stores q/k/v and gate/up stacked in one tensor each (Phi-3), or nil for separate tensors.
    var fused: FusedProjections? = nil
    /// What the format's RMSNorm weights leave out of the factor the model multiplies by: Gemma's Hugging Face
    /// norms compute x̂ · (1 + w) and store w, so its table has 1; the canonical weight is the factor itself
    /// (stored + offset), which is what llama.cpp's converter writes to GGUF. 0 for every other table.
    var normWeightOffset: Float = 0

    /// A norm weight as stored in this format, from its canonical factor.
    func storedNorm(_ factor: [Float]) -> [Float] {
        normWeightOffset == 0 ? factor : factor.map { $0 - normWeightOffset }
    }

    /// The canonical factor of a norm weight stored in this format (Float32 `1 + w`, as `Gemma3RMSNorm` computes it).
    func canonicalNorm(_ stored: [Float]) -> [Float] {
        normWeightOffset == 0 ? stored : stored.map { $0 + normWeightOffset }
    }

    /// This table with q/k/v and gate/up read from and written to the stacked tensors `fused` names.
    func fusing(_ fused: FusedProjections) -> WeightNames {
        var names = self
        names.fused = fused
        return names
    }
}

/// The stacked projections of a layer (Phi-3's `qkv_proj` / `attn_qkv` and `gate_up_proj` / fused `ffn_up`): rows
/// q, then k, then v, [queryDim + 2 kvDim, hidden]; rows gate, then up, [2 ffnDim, hidden]. They are split into
/// the canonical q/k/v and gate/up at load, so pruning sees the same structures as for every other family, and
/// stacked again at export.
struct FusedProjections {
    /// The stacked q/k/v tensor of layer N.
    var qkv: (Int) -> String
    /// The stacked gate/up tensor of layer N.
    var gateUp: (Int) -> String
}

/// Row order of the q/k projections in a file.
enum RoPERowOrder {
    /// Hugging Face: within each head, the first half of the rows pairs with the second half.
    case rotateHalf
    /// llama2.c / GGUF (llama arch): within each head, rows 2i and 2i+1 form a pair.
    case adjacentPairs
}

enum WeightAssembly {
    /// Reads every tensor `config` implies from `source`, checking that none is missing, extra or mis-shaped,
    /// and returns them in the canonical layout (q/k rows converted to the rotate-half order).
    static func assemble(_ source: TensorSource, config: ModelConfig, names: WeightNames, order: RoPERowOrder) throws -> ModelWeights {
        let hidden = config.hiddenSize
        var expected: [String: [Int]] = [names.tokenEmbedding: [config.vocabSize, hidden], names.finalNorm: [hidden]]
        if !config.tiedEmbeddings { expected[names.head] = [config.vocabSize, hidden] }
        for (i, spec) in config.layers.enumerated() {
            if spec.hasAttention {
                expected[names.layer(i, .attentionNorm)] = [hidden]
                if let fused = names.fused {
                    expected[fused.qkv(i)] = [spec.queryDim + 2 * spec.kvDim, hidden]
                } else {
                    expected[names.layer(i, .wq)] = [spec.queryDim, hidden]
                    expected[names.layer(i, .wk)] = [spec.kvDim, hidden]
                    expected[names.layer(i, .wv)] = [spec.kvDim, hidden]
                }
                expected[names.layer(i, .wo)] = [hidden, spec.queryDim]
                if config.attentionBias {
                    expected[names.layer(i, .bq)] = [spec.queryDim]
                    expected[names.layer(i, .bk)] = [spec.kvDim]
                    expected[names.layer(i, .bv)] = [spec.kvDim]
                }
                if config.queryKeyNorm {
                    expected[names.layer(i, .qNorm)] = [spec.headDim]
                    expected[names.layer(i, .kNorm)] = [spec.headDim]
                }
                if config.postSublayerNorms { expected[names.layer(i, .postAttentionNorm)] = [hidden] }
            }
            if spec.hasMLP {
                expected[names.layer(i, .mlpNorm)] = [hidden]
                if let fused = names.fused {
                    expected[fused.gateUp(i)] = [2 * spec.ffnDim, hidden]
                } else {
                    expected[names.layer(i, .gate)] = [spec.ffnDim, hidden]
                    expected[names.layer(i, .up)] = [spec.ffnDim, hidden]
                }
                expected[names.layer(i, .down)] = [hidden, spec.ffnDim]
                if config.postSublayerNorms { expected[names.layer(i, .postMLPNorm)] = [hidden] }
            }
        }
        for name in source.tensorNames where expected[name] == nil && !names.isIgnorable(name) {
            throw CheckpointError.unexpectedTensor(file: source.file(of: name), tensor: name)
        }
        // Check every shape before reading any data, in a fixed order so the error is deterministic.
        for name in expected.keys.sorted() {
            let want = expected[name]!
            guard let found = source.shape(of: name) else { throw CheckpointError.missingTensor(file: source.sourcePath, tensor: name) }
            // A vector may be stored as [n] or [1, n]; anything else must match exactly.
            if found != want && !(want.count == 1 && found == [1] + want) {
                throw CheckpointError.shapeMismatch(file: source.file(of: name), tensor: name, expected: "\(want)", found: "\(found)")
            }
        }

        func read(_ name: String) throws -> [Float] { try source.floats(named: name) }
        func readNorm(_ name: String) throws -> [Float] { names.canonicalNorm(try read(name)) }
        func readRoPE(_ name: String, heads: Int, headDim: Int) throws -> [Float] {
            let w = try read(name)
            return order == .adjacentPairs ? permuteToRotateHalf(w, heads: heads, headDim: headDim) : w
        }
        var layers: [LayerWeights] = []
        layers.reserveCapacity(config.layers.count)
        for (i, spec) in config.layers.enumerated() {
            var w = LayerWeights(attentionNorm: [], wq: [], wk: [], wv: [], wo: [], mlpNorm: [], gate: [], up: [], down: [])
            if spec.hasAttention {
                w.attentionNorm = try readNorm(names.layer(i, .attentionNorm))
                if let fused = names.fused {
                    // Whole row blocks of one [q; k; v] matrix; the stacking families use NeoX RoPE (no permutation).
                    let parts = split(try read(fused.qkv(i)), rows: [spec.queryDim, spec.kvDim, spec.kvDim], columns: hidden)
                    w.wq = parts[0]; w.wk = parts[1]; w.wv = parts[2]
                } else {
                    w.wq = try readRoPE(names.layer(i, .wq), heads: spec.queryHeads, headDim: spec.headDim)
                    w.wk = try readRoPE(names.layer(i, .wk), heads: spec.kvHeads, headDim: spec.headDim)
                    w.wv = try read(names.layer(i, .wv))
                }
                w.wo = try read(names.layer(i, .wo))
                if config.attentionBias {
                    w.bq = try readRoPE(names.layer(i, .bq), heads: spec.queryHeads, headDim: spec.headDim)
                    w.bk = try readRoPE(names.layer(i, .bk), heads: spec.kvHeads, headDim: spec.headDim)
                    w.bv = try read(names.layer(i, .bv))
                }
                if config.queryKeyNorm {
                    // One weight per element of a head, in rotate-half order already: it scales a whole head before
                    // RoPE, and only the NeoX-order families (qwen3) carry it.
                    w.qNorm = try readNorm(names.layer(i, .qNorm))
                    w.kNorm = try readNorm(names.layer(i, .kNorm))
                }
                if config.postSublayerNorms { w.postAttentionNorm = try readNorm(names.layer(i, .postAttentionNorm)) }
            }
            if spec.hasMLP {
                w.mlpNorm = try readNorm(names.layer(i, .mlpNorm))
                if let fused = names.fused {
                    let parts = split(try read(fused.gateUp(i)), rows: [spec.ffnDim, spec.ffnDim], columns: hidden)
                    w.gate = parts[0]; w.up = parts[1]
                } else {
                    w.gate = try read(names.layer(i, .gate))
                    w.up = try read(names.layer(i, .up))
                }
                w.down = try read(names.layer(i, .down))
                if config.postSublayerNorms { w.postMLPNorm = try readNorm(names.layer(i, .postMLPNorm)) }
            }
            layers.append(w)
        }
        let weights = ModelWeights(tokenEmbedding: try read(names.tokenEmbedding), layers: layers,
                                   finalNorm: try readNorm(names.finalNorm),
                                   head: config.tiedEmbeddings ? nil : try read(names.head))
        try config.validate(weights, file: source.sourcePath)
        return weights
    }

    /// The consecutive row blocks of a row-major matrix with `columns` columns, `rows[k]` rows each (the caller
    /// checked the shape: `m.count == rows.sum * columns`).
    static func split(_ m: [Float], rows: [Int], columns: Int) -> [[Float]] {
        var start = 0
        return rows.map { r in
            defer { start += r * columns }
            return Array(m[start..<(start + r * columns)])
        }
    }

    /// Reorders the rows of a q or k projection (or bias) from the adjacent-pairs RoPE order to rotate-half:
    /// within each head of width `headDim`, new row `c * (headDim/2) + i` = old row `2i + c`.
    /// `w` is `[heads * headDim, columns]` row-major (columns = 1 for a bias).
    static func permuteToRotateHalf(_ w: [Float], heads: Int, headDim: Int) -> [Float] {
        permuteRoPERows(w, heads: heads, headDim: headDim, toRotateHalf: true)
    }

    /// The inverse of `permuteToRotateHalf` (rotate-half, the canonical order, to GGUF's adjacent pairs).
    static func permuteToAdjacentPairs(_ w: [Float], heads: Int, headDim: Int) -> [Float] {
        permuteRoPERows(w, heads: heads, headDim: headDim, toRotateHalf: false)
    }

    /// Row `2i + c` of the adjacent-pairs order is row `c * (headDim/2) + i` of the rotate-half order; this moves
    /// rows one way or the other.
    private static func permuteRoPERows(_ w: [Float], heads: Int, headDim: Int, toRotateHalf: Bool) -> [Float] {
        let rows = heads * headDim
        guard rows > 0, w.count % rows == 0, headDim % 2 == 0 else { return w }
        let columns = w.count / rows
        let half = headDim / 2
        return [Float](unsafeUninitializedCapacity: w.count) { dst, initialized in
            w.withUnsafeBufferPointer { src in
                for h in 0..<heads {
                    for c in 0..<2 {
                        for i in 0..<half {
                            let adjacent = (h * headDim + 2 * i + c) * columns
                            let rotateHalf = (h * headDim + c * half + i) * columns
                            let (from, to) = toRotateHalf ? (adjacent, rotateHalf) : (rotateHalf, adjacent)
                            (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: columns)
                        }
                    }
                }
            }
            initialized = w.count
        }
    }
}

extension GGUFFile: TensorSource {
    var sourcePath: String { path }
    var tensorNames: [String] { tensorInfos.map(\.name) }
    func file(of name: String) -> String { path }
    func shape(of name: String) -> [Int]? { tensorInfo(named: name)?.shape }
}
