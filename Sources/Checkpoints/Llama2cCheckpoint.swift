import Essentials

/// A llama2.c legacy (version 0) checkpoint, memory-mapped: a 28-byte header of 7 int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) followed by float32 tensors in a fixed
/// order (see `models/stories260K/SOURCE.md`). A negative vocab_size means a separate classifier `wcls` at the end.
/// Tensors are named in run.c's words (`wq.3` = layer 3 of `w->wq`).
public final class Llama2cCheckpoint: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; the mapping is read-only.

    /// The file's path.
    public let path: String
    /// The mapped file.
    public let file: MappedFile
    /// Residual width (`dim`).
    public let dim: Int
    /// SwiGLU width (`hidden_dim`).
    public let hiddenDim: Int
    /// Number of layers (`n_layers`).
    public let layerCount: Int
    /// Query heads (`n_heads`).
    public let heads: Int
    /// KV heads (`n_kv_heads`).
    public let kvHeads: Int
    /// Vocabulary size (absolute value of the header field).
    public let vocabSize: Int
    /// Maximum sequence length (`seq_len`).
    public let seqLen: Int
    /// Whether the classifier is shared with the token embedding (header vocab_size positive).
    public let sharedClassifier: Bool
    /// Tensor name -> (byte offset, shape outermost first), in file order.
    private let layout: [(name: String, offset: Int, shape: [Int])]
    private let index: [String: Int]

    /// Reads and validates the header; the file size must equal the size the header implies (with or without
    /// `wcls`), else `truncated` (too short) or `corrupt` (too long).
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(checkpoint: path)
        let names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
        var header: [Int] = []
        for (i, name) in names.enumerated() {
            header.append(Int(try file.integer(Int32.self, at: 4 * i, "llama2.c header field \(name)")))
        }
        func bad(_ i: Int, _ reason: String) -> CheckpointError {
            .badValue(file: path, key: names[i], value: "\(header[i])", reason: reason)
        }
        for i in [0, 1, 2, 3, 4, 6] where header[i] <= 0 { throw bad(i, "must be positive") }
        if header[5] == 0 { throw bad(5, "must be non-zero") }
        // Bounds that no real checkpoint approaches; they keep the size arithmetic far from overflow.
        for i in 0..<7 where abs(header[i]) > 1 << 24 { throw bad(i, "implausibly large") }
        dim = header[0]; hiddenDim = header[1]; layerCount = header[2]; heads = header[3]; kvHeads = header[4]
        vocabSize = abs(header[5]); sharedClassifier = header[5] > 0; seqLen = header[6]
        guard dim % heads == 0 else { throw bad(3, "dim \(dim) is not a multiple of n_heads") }
        guard heads % kvHeads == 0 else { throw bad(4, "n_heads \(heads) is not a multiple of n_kv_heads") }
        let headSize = dim / heads
        guard headSize % 2 == 0 else { throw bad(3, "head size \(headSize) is odd; RoPE needs pairs") }
        let kvDim = kvHeads * headSize
        // The size the header implies, with overflow-checked arithmetic, before the layout below loops n_layers
        // times: a header claiming 2^24 layers of width 2^24 is refused here, not after 150 million entries.
        let (sizeSharedChecked, sizeSeparateChecked) = try Self.impliedSizes(header: header, kvDim: kvDim, path: path)
        let impliedSize = header[5] > 0 ? sizeSharedChecked : sizeSeparateChecked
        guard impliedSize == file.count else {
            if file.count < impliedSize {
                let classifier = header[5] > 0 ? "classifier shared with the embedding" : "separate classifier wcls (vocab_size < 0)"
                throw CheckpointError.truncated(file: path, what: "llama2.c weights for the header \(header), \(classifier)", needed: impliedSize, available: file.count)
            }
            let hint = file.count == (header[5] > 0 ? sizeSeparateChecked : sizeSharedChecked)
                ? " (the size with\(header[5] > 0 ? "" : "out") wcls: is the vocab_size sign wrong?)" : ""
            throw CheckpointError.corrupt(file: path, reason: "size \(file.count) bytes, header implies \(impliedSize)\(hint)")
        }

        var layout: [(name: String, offset: Int, shape: [Int])] = []
        var offset = 28
        func add(_ name: String, _ shape: [Int]) {
            layout.append((name, offset, shape))
            offset += 4 * shape.reduce(1, *)
        }
        let L = layerCount
        // run.c memory_map_weights order; each per-layer array is L consecutive tensors.
        add("token_embedding_table", [vocabSize, dim])
        for l in 0..<L { add("rms_att_weight.\(l)", [dim]) }
        for l in 0..<L { add("wq.\(l)", [dim, dim]) }
        for l in 0..<L { add("wk.\(l)", [kvDim, dim]) }
        for l in 0..<L { add("wv.\(l)", [kvDim, dim]) }
        for l in 0..<L { add("wo.\(l)", [dim, dim]) }
        for l in 0..<L { add("rms_ffn_weight.\(l)", [dim]) }
        for l in 0..<L { add("w1.\(l)", [hiddenDim, dim]) }
        for l in 0..<L { add("w2.\(l)", [dim, hiddenDim]) }
        for l in 0..<L { add("w3.\(l)", [hiddenDim, dim]) }
        add("rms_final_weight", [dim])
        add("freq_cis_real", [seqLen, headSize / 2])
        add("freq_cis_imag", [seqLen, headSize / 2])
        add("wcls", [vocabSize, dim])
        if sharedClassifier { layout.removeLast() }
        self.layout = layout
        var index: [String: Int] = [:]
        for (i, entry) in layout.enumerated() { index[entry.name] = i }
        self.index = index
    }

    /// Byte sizes of a checkpoint with `header` (without and with `wcls`), or `badValue` naming `n_layers` when
    /// the arithmetic overflows (no file that large can exist).
    static func impliedSizes(header: [Int], kvDim: Int, path: String) throws -> (shared: Int, separate: Int) {
        let dim = header[0], hidden = header[1], layers = header[2], heads = header[3], vocab = abs(header[5]), seq = header[6]
        let headSize = dim / heads
        var total = 28, overflow = false
        func add(_ factors: Int...) {
            var p = 4
            for f in factors {
                let r = p.multipliedReportingOverflow(by: f)
                overflow = overflow || r.overflow
                p = r.partialValue
            }
            let r = total.addingReportingOverflow(p)
            overflow = overflow || r.overflow
            total = r.partialValue
        }
        add(vocab, dim)
        add(layers, dim)                       // rms_att_weight
        add(layers, dim, dim)                  // wq
        add(layers, kvDim, dim); add(layers, kvDim, dim)  // wk, wv
        add(layers, dim, dim)                  // wo
        add(layers, dim)                       // rms_ffn_weight
        add(layers, hidden, dim); add(layers, dim, hidden); add(layers, hidden, dim)  // w1, w2, w3
        add(dim)                               // rms_final_weight
        add(seq, headSize / 2); add(seq, headSize / 2)  // freq_cis_real, freq_cis_imag
        let shared = total
        add(vocab, dim)                        // wcls
        guard !overflow else {
            throw CheckpointError.badValue(file: path, key: "n_layers", value: "\(layers)",
                                           reason: "the header \(header) implies more bytes than any file can hold")
        }
        return (shared, total)
    }

    /// The architecture: run.c's constants are RMSNorm eps 1e-5 and RoPE theta 10000.
    public var config: ModelConfig {
        let spec = LayerSpec(queryHeads: heads, kvHeads: kvHeads, headDim: dim / heads, ffnDim: hiddenDim)
        return ModelConfig(architecture: "llama", hiddenSize: dim, vocabSize: vocabSize,
                           layers: Array(repeating: spec, count: layerCount), normEpsilon: 1e-5, ropeTheta: 10000,
                           tiedEmbeddings: sharedClassifier, contextLength: seqLen)
    }

    /// llama2.c's tensor names for each role.
    static let names = WeightNames(
        tokenEmbedding: "token_embedding_table", finalNorm: "rms_final_weight", head: "wcls",
        layer: { l, t in
            switch t {
            case .attentionNorm: return "rms_att_weight.\(l)"
            case .wq: return "wq.\(l)"
            case .wk: return "wk.\(l)"
            case .wv: return "wv.\(l)"
            case .wo: return "wo.\(l)"
            case .bq: return "bq.\(l)"  // llama2.c has no biases; never expected
            case .bk: return "bk.\(l)"
            case .bv: return "bv.\(l)"
            case .qNorm: return "q_norm.\(l)"
            case .kNorm: return "k_norm.\(l)"
            case .postAttentionNorm: return "post_attention_norm.\(l)"  // never expected
            case .postMLPNorm: return "post_ffn_norm.\(l)"
            case .mlpNorm: return "rms_ffn_weight.\(l)"
            case .gate: return "w1.\(l)"
            case .up: return "w3.\(l)"
            case .down: return "w2.\(l)"
            }
        },
        isIgnorable: { $0 == "freq_cis_real" || $0 == "freq_cis_imag" })
}

extension Llama2cCheckpoint: TensorSource {
    var sourcePath: String { path }
    var tensorNames: [String] { layout.map(\.name) }
    func file(of name: String) -> String { path }
    func shape(of name: String) -> [Int]? { index[name].map { layout[$0].shape } }

    func floats(named name: String) throws -> [Float] {
        guard let i = index[name] else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        let entry = layout[i]
        let count = entry.shape.reduce(1, *)
        let raw = try file.bytes(at: entry.offset, length: 4 * count, "tensor '\(name)'")
        defer { file.releasePages(raw) }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw) }
            initialized = count
        }
    }
}
