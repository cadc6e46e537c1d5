import Kernels

/// What the LM head says about one target token per row of final-normed hidden states.
struct TargetLogProbabilities {
    /// [rows]: log softmax(logits)[target] in nats (≤ 0), Double; 0 for a row without a target.
    var logProbabilities: [Double]
    /// [rows] when asked for, else empty: whether the target is the first argmax of its row's logits (lowest id on
    /// ties, like `torch.argmax`); false for a row without a target.
    var isGreedy: [Bool]
}

extension PreparedModel {
    /// The one blocked LM head with log-softmax, behind perplexity (`tokenNLL`) and continuation scoring
    /// (`scoreContinuations`): logits for `blockRows` rows at a time (one `sgemm` per block into a [blockRows, vocab]
    /// buffer, so the logits of all rows are never held), then, spread over the cores, for each row with a target
    /// logit[target] − `Ops.logSumExp(logits)` and, with `greedy`, whether the target is the argmax. An int8
    /// model's head goes through `Int8Linear.logSoftmaxAtTargets` instead: 1,024 rows × 1,024 vocabulary entries
    /// per integer GEMM (4 MB of products, in cache), reduced with a running log-sum-exp.
    /// - Parameters:
    ///   - hidden: [targets.count, hidden], final-normed.
    ///   - targets: the token scored at each row; nil leaves the row unscored (an f32 head still computes its
    ///     logits, with its block; the int8 head skips them).
    ///   - blockRows: rows per f32 head GEMM. Each caller keeps the block it was measured and pinned with: the rows
    ///     of a block are one GEMM, and a GEMM library may sum a row's products differently for another number of
    ///     rows. The int8 head ignores it (integer sums are exact, so its block changes no logit).
    func targetLogProbabilities(hidden: UnsafePointer<Float>, targets: [Int?], blockRows: Int, greedy: Bool) -> TargetLogProbabilities {
        let rows = targets.count
        let vocab = config.vocabSize
        let d = config.hiddenSize
        var result = TargetLogProbabilities(logProbabilities: [Double](repeating: 0, count: rows),
                                            isGreedy: greedy ? [Bool](repeating: false, count: rows) : [])
        guard rows > 0 else { return result }
        if let int8Head {
            // Vocabulary blocks whose products stay in cache, reduced with a running log-sum-exp (BENCHMARKS.md).
            let targetIDs = targets.map { $0 ?? -1 }
            result.logProbabilities.withUnsafeMutableBufferPointer { logProbabilities in
                result.isGreedy.withUnsafeMutableBufferPointer { isGreedy in
                    Int8Linear.logSoftmaxAtTargets(hidden, rows: rows, weights: int8Head, targets: targetIDs,
                                                   logProbabilities: logProbabilities.baseAddress!,
                                                   isGreedy: greedy ? isGreedy.baseAddress! : nil)
                }
            }
            return result
        }
        let block = min(blockRows, rows)
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: block * vocab)   // [block, vocab]
        logits.initialize(repeating: 0, count: block * vocab)
        defer { logits.deallocate() }
        result.logProbabilities.withUnsafeMutableBufferPointer { logProbabilities in
            result.isGreedy.withUnsafeMutableBufferPointer { isGreedy in
                head.withUnsafeBufferPointer { w in
                    var row0 = 0
                    while row0 < rows {
                        let count = min(block, rows - row0)
                        sgemm(m: count, n: vocab, k: d, a: hidden + row0 * d, b: w.baseAddress!, transposeB: true, c: logits)
                        Parallel.forEachChunk(count, minimumPerChunk: 2) { range in
                            for r in range {
                                guard let target = targets[row0 + r] else { continue }
                                let logit = logits + r * vocab
                                logProbabilities[row0 + r] = Double(logit[target]) - Ops.logSumExp(logit, count: vocab)
                                if greedy {
                                    var best = 0
                                    for j in 1..<vocab where logit[j] > logit[best] { best = j }
                                    isGreedy[row0 + r] = best == target
                                }
                            }
                        }
                        row0 += count
                    }
                }
            }
        }
        return result
    }
}
