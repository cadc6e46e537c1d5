/// Limits a header's counts and sizes must meet before they size an allocation or bound a loop (issue 16).
/// A hostile header can claim any value; these checks turn an impossible one into a `badValue` error that names
/// the key, the value and the limit, instead of a multi-gigabyte allocation, a billion-iteration loop or an
/// arithmetic-overflow trap.

/// The header keys behind each `ModelConfig` field, in the format's own words (so errors name what the user sees).
public struct ConfigKeys: Sendable {
    /// Layer count (`llama.block_count`, `num_hidden_layers`, `n_layers`).
    public var layers: String
    /// Residual width.
    public var hidden: String
    /// Query heads.
    public var heads: String
    /// KV heads.
    public var kvHeads: String
    /// Head width.
    public var headDim: String
    /// SwiGLU width.
    public var ffn: String
    /// Vocabulary size.
    public var vocab: String
    /// Context length.
    public var context: String

    /// The keys of one format.
    public init(layers: String, hidden: String, heads: String, kvHeads: String, headDim: String, ffn: String,
                vocab: String, context: String) {
        self.layers = layers; self.hidden = hidden; self.heads = heads; self.kvHeads = kvHeads
        self.headDim = headDim; self.ffn = ffn; self.vocab = vocab; self.context = context
    }
}

extension ModelConfig {
    /// Rejects a layer count that cannot be real before anything is sized by it: a layer holds at least one tensor
    /// (its attention or MLP norm) or one entry of a per-layer array, so `count` is at most `limit`, the number of
    /// tensors (plus per-layer array entries) the file actually holds.
    /// - Throws: `CheckpointError.badValue` naming `key`, the value and the limit.
    public static func checkLayerCount(_ count: Int, key: String, limit: Int, file: String) throws {
        guard count > 0 else {
            throw CheckpointError.badValue(file: file, key: key, value: "\(count)", reason: "must be positive")
        }
        guard count <= limit else {
            throw CheckpointError.badValue(file: file, key: key, value: "\(count)",
                                           reason: "exceeds the limit \(limit) set by the tensors and per-layer entries the file holds")
        }
    }

    /// Checks every size this config implies against what the file can hold, with overflow-checked arithmetic:
    /// every dimension positive (or zero for an absent sublayer), the context length in 1...UInt32.max, every
    /// tensor's element count and the total at most `maxElements` (the file's bytes times the densest encoding's
    /// elements per byte). Call it after reading a header and before sizing anything by the config.
    /// - Throws: `CheckpointError.badValue` naming the key, the value and the limit.
    public func checkFits(file: String, maxElements: Int, keys: ConfigKeys) throws {
        func bad(_ key: String, _ value: Int, _ reason: String) -> CheckpointError {
            .badValue(file: file, key: key, value: "\(value)", reason: reason)
        }
        guard hiddenSize > 0 else { throw bad(keys.hidden, hiddenSize, "must be positive") }
        guard vocabSize > 0 else { throw bad(keys.vocab, vocabSize, "must be positive") }
        guard contextLength > 0, contextLength <= Int(UInt32.max) else {
            throw bad(keys.context, contextLength, "must be in 1...\(UInt32.max)")
        }
        guard !layers.isEmpty else { throw bad(keys.layers, 0, "must be positive") }
        let limit = "the file (\(maxElements) elements at most)"
        /// `a * b`, or an error naming `key` when it overflows or exceeds the file.
        func product(_ a: Int, _ b: Int, key: String, value: Int) throws -> Int {
            let (p, overflow) = a.multipliedReportingOverflow(by: b)
            guard !overflow, p <= maxElements else { throw bad(key, value, "implies a tensor larger than \(limit)") }
            return p
        }
        // The embedding: the width is named, since the vocabulary is usually pinned by the embedding tensor's rows.
        let (embedding, embeddingOverflow) = vocabSize.multipliedReportingOverflow(by: hiddenSize)
        guard !embeddingOverflow, embedding <= maxElements else {
            throw bad(keys.hidden, hiddenSize, "with \(keys.vocab) \(vocabSize) implies an embedding larger than \(limit)")
        }
        var total = embedding
        func add(_ n: Int, key: String, value: Int) throws {
            let (t, overflow) = total.addingReportingOverflow(n)
            guard !overflow, t <= maxElements else { throw bad(key, value, "implies more weights than \(limit)") }
            total = t
        }
        if !tiedEmbeddings { try add(total, key: keys.vocab, value: vocabSize) }
        for (i, spec) in layers.enumerated() {
            guard spec.queryHeads >= 0 else { throw bad(keys.heads, spec.queryHeads, "layer \(i): must not be negative") }
            guard spec.kvHeads >= 0 else { throw bad(keys.kvHeads, spec.kvHeads, "layer \(i): must not be negative") }
            guard spec.ffnDim >= 0 else { throw bad(keys.ffn, spec.ffnDim, "layer \(i): must not be negative") }
            guard spec.headDim > 0 else { throw bad(keys.headDim, spec.headDim, "must be positive") }
            if spec.hasAttention {
                let queryDim = try product(spec.queryHeads, spec.headDim, key: keys.heads, value: spec.queryHeads)
                let kvDim = try product(spec.kvHeads, spec.headDim, key: keys.kvHeads, value: spec.kvHeads)
                let q = try product(queryDim, hiddenSize, key: keys.heads, value: spec.queryHeads)
                let kv = try product(kvDim, hiddenSize, key: keys.kvHeads, value: spec.kvHeads)
                try add(q, key: keys.heads, value: spec.queryHeads)
                try add(q, key: keys.heads, value: spec.queryHeads)
                try add(kv, key: keys.kvHeads, value: spec.kvHeads)
                try add(kv, key: keys.kvHeads, value: spec.kvHeads)
                try add(hiddenSize, key: keys.hidden, value: hiddenSize)
            }
            if spec.hasMLP {
                let f = try product(spec.ffnDim, hiddenSize, key: keys.ffn, value: spec.ffnDim)
                for _ in 0..<3 { try add(f, key: keys.ffn, value: spec.ffnDim) }
                try add(hiddenSize, key: keys.hidden, value: hiddenSize)
            }
        }
    }
}
