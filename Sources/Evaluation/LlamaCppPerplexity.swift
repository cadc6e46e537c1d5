import Foundation

/// The result of a perplexity run under llama.cpp's `llama-perplexity` protocol. JSON keys are snake_case.
public struct LlamaCppPerplexityReport: Codable, Sendable, Equatable {
    /// Chunk length n_ctx.
    public var context: Int
    /// Chunks scored.
    public var chunks: Int
    /// Tokens whose NLL was summed: chunks × (n_ctx − 1 − n_ctx / 2).
    public var predictedTokens: Int
    /// Tokens of the whole tokenized text (BOS included when the tokenizer adds it).
    public var totalTokens: Int
    /// Sum of the scored token NLLs, nats.
    public var totalNLL: Double
    /// exp(totalNLL / predictedTokens): what llama-perplexity prints as "Final estimate: PPL".
    public var ppl: Double
    /// The ± llama-perplexity prints beside it: ppl × the standard error of the mean token NLL.
    public var pplStandardError: Double
    /// Wall-clock seconds for scoring.
    public var elapsedSeconds: Double

    enum CodingKeys: String, CodingKey {
        case context = "n_ctx", chunks = "n_chunks", predictedTokens = "n_predicted", totalTokens = "n_tokens"
        case totalNLL = "total_nll", ppl, pplStandardError = "ppl_stderr", elapsedSeconds = "elapsed_seconds"
    }
}

/// Perplexity as llama.cpp's `llama-perplexity -c n_ctx` computes it (tools/perplexity/perplexity.cpp,
/// `perplexity()`), so that a number printed by llama.cpp for an exported GGUF can be set beside PolicyPrune's on
/// the same file: the text is tokenized once (BOS first when the vocabulary adds it), cut into
/// ⌊tokens / n_ctx⌋ chunks of n_ctx tokens (remainder dropped), each chunk's first token is replaced by BOS (when
/// BOS is added), each chunk is run on its own, and only the second half is scored: the logits at positions
/// n_ctx/2 … n_ctx−2 against the tokens that follow them.
public enum LlamaCppPerplexity {
    /// Scores `tokens` (the whole text tokenized with the model's BOS rule) in chunks of `context` tokens.
    /// - Parameters:
    ///   - bos: the BOS id written over each chunk's first token, or nil when the vocabulary adds no BOS.
    ///   - chunks: score only the first chunks (llama-perplexity's `--chunks`; nil = all).
    ///   - batchSize: chunks per `scorer.tokenNLL` call.
    public static func evaluate(scorer: LanguageModelScorer, tokens: [Int], context: Int, bos: Int?,
                                chunks limit: Int? = nil, batchSize: Int = 4,
                                progress: ((PerplexityProgress) -> Void)? = nil) throws -> LlamaCppPerplexityReport {
        guard context >= 4 else { throw EvaluationError.invalidArgument("--context \(context) < 4 for the llama.cpp protocol") }
        guard batchSize >= 1 else { throw EvaluationError.invalidArgument("batch size \(batchSize) < 1") }
        if let limit, limit < 1 { throw EvaluationError.invalidArgument("--limit-windows \(limit) < 1") }
        let available = tokens.count / context
        let total = min(available, limit ?? available)
        guard total >= 1 else {
            throw EvaluationError.invalidArgument("\(tokens.count) tokens make no chunk of \(context) (llama-perplexity needs 2 × n_ctx)")
        }
        let first = context / 2
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        var sum = 0.0, sumSquares = 0.0, count = 0
        var start = 0
        while start < total {
            let end = min(start + batchSize, total)
            let batch: [[Int]] = (start..<end).map { i in
                var chunk = Array(tokens[(i * context)..<((i + 1) * context)])
                if let bos { chunk[0] = bos }
                return chunk
            }
            let nll = try checkedTokenNLL(scorer, batch, firstIndex: start, unit: "chunk")
            for (k, values) in nll.enumerated() {
                // values[t] is the NLL of token t+1 predicted at position t: llama.cpp scores positions first ..< n_ctx-1.
                for t in first..<(context - 1) {
                    let v = values[t]
                    guard v.isFinite else { throw EvaluationError.nonFinite(what: "token NLL", index: start + k, position: t) }
                    sum += v
                    sumSquares += v * v
                    count += 1
                }
            }
            start = end
            if let progress {
                let seconds = elapsed()
                progress(PerplexityProgress(windowsDone: start, windowsTotal: total,
                                            tokensPerSecond: seconds > 0 ? Double(start * context) / seconds : 0,
                                            elapsedSeconds: seconds,
                                            etaSeconds: seconds / Double(start) * Double(total - start)))
            }
        }
        let mean = sum / Double(count)
        let ppl = exp(mean)
        // llama-perplexity's uncertainty: sqrt((E[nll²] − E[nll]²) / (n − 1)) on the mean NLL, times ppl.
        let variance = count > 1 ? max(0, sumSquares / Double(count) - mean * mean) / Double(count - 1) : 0
        return LlamaCppPerplexityReport(context: context, chunks: total, predictedTokens: count, totalTokens: tokens.count,
                                        totalNLL: sum, ppl: ppl, pplStandardError: ppl * variance.squareRoot(),
                                        elapsedSeconds: elapsed())
    }
}
