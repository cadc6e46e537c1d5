import Foundation
import Corpora

/// Scores windows of token ids with a causal language model.
public protocol LanguageModelScorer {
    /// For each window (all of the same length W), the negative log-likelihood in nats of tokens 1..<W given
    /// their prefix: W - 1 values, where value t is the NLL of token t + 1 predicted at position t
    /// (`logsumexp(logits) - logit[target]`, in Double). Windows are scored independently (no shared cache).
    func tokenNLL(_ windows: [[Int]]) throws -> [[Double]]
}

/// Where a perplexity run is, for a progress bar.
public struct PerplexityProgress: Sendable, Equatable {
    /// Windows scored so far.
    public let windowsDone: Int
    /// Windows in the run.
    public let windowsTotal: Int
    /// Input tokens (W per window) scored per second so far.
    public let tokensPerSecond: Double
    /// Seconds since the run started.
    public let elapsedSeconds: Double
    /// Estimated seconds to finish, from the rate so far.
    public let etaSeconds: Double
}

/// The result of a perplexity run (paper protocol, spec §4.4 / fixtures README §3). JSON keys are snake_case
/// like the fixtures'.
public struct PerplexityReport: Codable, Sendable, Equatable {
    /// Window length W.
    public var context: Int
    /// Windows scored.
    public var windows: Int
    /// Tokens whose NLL was summed: windows × (W - 1).
    public var predictedTokens: Int
    /// Tokens of the whole tokenized text.
    public var totalTokens: Int
    /// Tokens not in a scored window (remainder and, with a limit, the windows left out).
    public var droppedTokens: Int
    /// Sum of all token NLLs, nats.
    public var totalNLL: Double
    /// Mean over windows of the window's mean token NLL, nats.
    public var meanWindowNLL: Double
    /// exp(mean over windows of the window mean NLL).
    public var pplWindowMean: Double
    /// exp(total NLL / predicted tokens); equal to `pplWindowMean` up to rounding (all windows have W - 1 targets).
    public var pplTokenMean: Double
    /// Windows per scorer call.
    public var batchSize: Int
    /// The official code's aggregation, exp(mean of per-batch mean losses), with batches of `batchSize` windows in
    /// text order (the official DataLoader shuffles, so its batches differ; the last, smaller batch counts fully).
    public var pplBatchMean: Double
    /// Each window's mean token NLL, in text order (nil when not requested).
    public var windowMeanNLL: [Double]?
    /// Wall-clock seconds for scoring.
    public var elapsedSeconds: Double
    /// Input tokens scored per second.
    public var tokensPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case context = "window", windows = "n_windows", predictedTokens = "n_predicted", totalTokens = "n_tokens"
        case droppedTokens = "tokens_dropped", totalNLL = "total_nll", meanWindowNLL = "mean_of_window_mean_nll"
        case pplWindowMean = "ppl_window_mean", pplTokenMean = "ppl_token_mean", batchSize = "batch_size"
        case pplBatchMean = "ppl_batch_mean", windowMeanNLL = "window_mean_nll", elapsedSeconds = "elapsed_seconds"
        case tokensPerSecond = "tokens_per_second"
    }
}

/// `scorer.tokenNLL(batch)` with its shape checked: one row per window, W − 1 values per row (a typed error naming
/// the window, counted from `firstIndex`, otherwise). Shared by both perplexity protocols.
func checkedTokenNLL(_ scorer: LanguageModelScorer, _ batch: [[Int]], firstIndex: Int, unit: String) throws -> [[Double]] {
    let nll = try scorer.tokenNLL(batch)
    guard nll.count == batch.count else {
        throw EvaluationError.scorerShape(what: "tokenNLL \(unit)s", expected: batch.count, got: nll.count)
    }
    for (k, values) in nll.enumerated() where values.count != batch[k].count - 1 {
        throw EvaluationError.scorerShape(what: "tokenNLL \(unit) \(firstIndex + k)", expected: batch[k].count - 1, got: values.count)
    }
    return nll
}

/// Perplexity under the paper protocol: non-overlapping windows of W tokens, remainder dropped, each window scored
/// on its own (its first token is never predicted).
public enum Perplexity {
    /// The aggregate numbers from per-window mean NLLs (pure; what the fixtures store as `window_mean_nll`).
    public struct Aggregate: Sendable, Equatable {
        /// Mean over windows of the window mean NLL.
        public let meanWindowNLL: Double
        /// Sum of all token NLLs.
        public let totalNLL: Double
        /// exp(meanWindowNLL).
        public let pplWindowMean: Double
        /// exp(totalNLL / predicted tokens).
        public let pplTokenMean: Double
        /// exp(mean over consecutive batches of `batchSize` windows of the batch's mean window NLL).
        public let pplBatchMean: Double

        /// Aggregates window means; `predictedPerWindow` = W - 1. Sums in Double, in window order.
        /// `totalNLL`: the exact sum of token NLLs when known (else rebuilt as Σ mean × (W - 1)).
        public init(windowMeanNLL: [Double], predictedPerWindow: Int, batchSize: Int, totalNLL: Double? = nil) {
            let n = windowMeanNLL.count
            let meanOfMeans = windowMeanNLL.reduce(0, +) / Double(n)
            let total = totalNLL ?? windowMeanNLL.reduce(0) { $0 + $1 * Double(predictedPerWindow) }
            var batchMeans: [Double] = []
            var start = 0
            while start < n {
                let batch = windowMeanNLL[start..<min(start + batchSize, n)]
                batchMeans.append(batch.reduce(0, +) / Double(batch.count))
                start += batchSize
            }
            meanWindowNLL = meanOfMeans
            self.totalNLL = total
            pplWindowMean = exp(meanOfMeans)
            pplTokenMean = exp(total / Double(n * predictedPerWindow))
            pplBatchMean = exp(batchMeans.reduce(0, +) / Double(batchMeans.count))
        }
    }

    /// Scores `tokens` (the whole text tokenized once with the model's BOS rule) in windows of `context` tokens.
    /// - Parameters:
    ///   - batchSize: windows per `scorer.tokenNLL` call.
    ///   - limitWindows: score only the first windows (nil = all).
    ///   - keepWindowNLL: store each window's mean NLL in the report.
    ///   - progress: called after each batch.
    public static func evaluate(scorer: LanguageModelScorer, tokens: [Int], context: Int, batchSize: Int = 8,
                                limitWindows: Int? = nil, keepWindowNLL: Bool = true, source: String = "<tokens>",
                                progress: ((PerplexityProgress) -> Void)? = nil) throws -> PerplexityReport {
        let windows = try EvalWindows(tokens: tokens, context: context, limit: limitWindows, source: source)
        return try evaluate(scorer: scorer, windows: windows, batchSize: batchSize, keepWindowNLL: keepWindowNLL,
                            progress: progress)
    }

    /// Scores prepared windows.
    public static func evaluate(scorer: LanguageModelScorer, windows: EvalWindows, batchSize: Int = 8,
                                keepWindowNLL: Bool = true,
                                progress: ((PerplexityProgress) -> Void)? = nil) throws -> PerplexityReport {
        guard batchSize >= 1 else { throw EvaluationError.invalidArgument("batch size \(batchSize) < 1") }
        let w = windows.context
        let total = windows.windows.count
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        var windowMeans: [Double] = []
        windowMeans.reserveCapacity(total)
        var totalNLL = 0.0
        var start = 0
        while start < total {
            let batch = Array(windows.windows[start..<min(start + batchSize, total)])
            let nll = try checkedTokenNLL(scorer, batch, firstIndex: start, unit: "window")
            for (k, values) in nll.enumerated() {
                var sum = 0.0
                for (t, v) in values.enumerated() {
                    guard v.isFinite else { throw EvaluationError.nonFinite(what: "token NLL", index: start + k, position: t) }
                    sum += v
                }
                windowMeans.append(sum / Double(w - 1))
                totalNLL += sum
            }
            start += batch.count
            if let progress {
                let seconds = elapsed()
                let rate = seconds > 0 ? Double(start * w) / seconds : 0
                let eta = start > 0 ? seconds / Double(start) * Double(total - start) : 0
                progress(PerplexityProgress(windowsDone: start, windowsTotal: total, tokensPerSecond: rate,
                                            elapsedSeconds: seconds, etaSeconds: eta))
            }
        }
        let seconds = elapsed()
        let aggregate = Aggregate(windowMeanNLL: windowMeans, predictedPerWindow: w - 1, batchSize: batchSize,
                                  totalNLL: totalNLL)
        return PerplexityReport(
            context: w, windows: total, predictedTokens: windows.predictedTokens, totalTokens: windows.totalTokens,
            droppedTokens: windows.droppedTokens, totalNLL: aggregate.totalNLL, meanWindowNLL: aggregate.meanWindowNLL,
            pplWindowMean: aggregate.pplWindowMean, pplTokenMean: aggregate.pplTokenMean, batchSize: batchSize,
            pplBatchMean: aggregate.pplBatchMean, windowMeanNLL: keepWindowNLL ? windowMeans : nil,
            elapsedSeconds: seconds, tokensPerSecond: seconds > 0 ? Double(windows.tokensUsed) / seconds : 0)
    }
}
