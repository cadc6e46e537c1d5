import Corpora
import Dispatch
import Kernels
import Transformer

/// Scores lm-eval `loglikelihood` requests with a (possibly masked) model, as lm-eval 0.4.5 `HFLM` does:
/// the input is `(context + continuation)` truncated to its last `maxLength + 1` tokens, and the summed
/// log-probabilities of the continuation tokens are returned with whether each was the argmax.
/// The requests of one example share their context: it runs once (see `PreparedModel.scoreContinuations`).
public struct ModelContinuationScorer: ContinuationScorer, Sendable {
    /// The default cap on `maxLength`: longer windows cost quadratic attention for no benefit on these tasks.
    public static let defaultMaxLengthCap = 2048

    /// The model that scores.
    public let model: PreparedModel
    /// lm-eval's `max_length`: the most tokens fed to the model at once.
    public let maxLength: Int

    /// A scorer for `model`; `maxLength` defaults to the model's context length capped at `defaultMaxLengthCap`.
    public init(model: PreparedModel, maxLength: Int? = nil) throws {
        let length = maxLength ?? min(model.config.contextLength, Self.defaultMaxLengthCap)
        guard length >= 1 else { throw EvaluationError.invalidArgument("max length must be at least 1, got \(length)") }
        self.model = model
        self.maxLength = length
    }

    /// One request (see `continuationLogLikelihoods`).
    public func continuationLogLikelihood(context: [Int], continuation: [Int]) throws -> (Double, isGreedy: Bool) {
        try continuationLogLikelihoods([(context: context, continuation: continuation)])[0]
    }

    /// All requests of one example, the shared context run once. An empty continuation scores (0, greedy).
    public func continuationLogLikelihoods(_ requests: [(context: [Int], continuation: [Int])]) throws -> [(Double, isGreedy: Bool)] {
        try continuationLogLikelihoods(examples: [requests])[0]
    }

    /// The requests of several examples in one packed forward pass (each example's shared context once).
    public func continuationLogLikelihoods(examples: [[(context: [Int], continuation: [Int])]]) throws -> [[(Double, isGreedy: Bool)]] {
        let groups = try examples.map { try $0.map(request) }
        return try model.scoreContinuations(groups).map { $0.map { ($0.logLikelihood, isGreedy: $0.isGreedy) } }
    }

    /// lm-eval's truncation: `(context_enc + continuation_enc)[-(max_length + 1):]`, the continuation scored.
    func request(_ r: (context: [Int], continuation: [Int])) throws -> ContinuationRequest {
        guard r.continuation.count <= maxLength else {
            throw EvaluationError.invalidArgument(
                "continuation of \(r.continuation.count) tokens is longer than the maximum length \(maxLength)")
        }
        guard !r.context.isEmpty || r.continuation.isEmpty else {
            throw EvaluationError.invalidArgument("a continuation needs at least one context token")
        }
        return ContinuationRequest(tokens: Array((r.context + r.continuation).suffix(maxLength + 1)), scoredCount: r.continuation.count)
    }
}

extension ZeroShot {
    /// Scores a task's examples with a model, packing consecutive examples into forward passes of about
    /// `tokensPerPass` positions (a pass holds at least one example). Tokenisation runs in parallel ahead of the
    /// model; results equal `evaluate` with the same scorer, example by example. `progress(done, total)` after
    /// each pass.
    public static func evaluateBatched(task: ZeroShotTask, examples: [MultipleChoiceExample], scorer: ModelContinuationScorer,
                                       tokensPerPass: Int = 1024, prefixTokenID: Int? = nil, keepResults: Bool = true,
                                       encode: @escaping @Sendable (String) throws -> [Int],
                                       progress: ((Int, Int) -> Void)? = nil) throws -> ZeroShotReport {
        guard !examples.isEmpty else { throw EvaluationError.invalidArgument("\(task.rawValue): no examples") }
        guard tokensPerPass >= 1 else { throw EvaluationError.invalidArgument("tokens per pass must be at least 1, got \(tokensPerPass)") }
        let started = DispatchTime.now().uptimeNanoseconds
        var results: [ZeroShotExampleResult] = []
        results.reserveCapacity(examples.count)
        let chunk = 64   // examples tokenised at a time
        var chunkStart = 0
        while chunkStart < examples.count {
            let slice = Array(examples[chunkStart..<min(examples.count, chunkStart + chunk)])
            let requests = try tokenize(slice, prefixTokenID: prefixTokenID, encode: encode)
            var i = 0
            while i < slice.count {
                // Take examples while the pass stays within budget (estimated: longest request + other continuations).
                var end = i, budget = 0
                while end < slice.count {
                    let cost = estimatedPositions(requests[end], maxLength: scorer.maxLength)
                    if end > i && budget + cost > tokensPerPass { break }
                    budget += cost
                    end += 1
                }
                let scored = try scorer.continuationLogLikelihoods(examples: Array(requests[i..<end]))
                for (k, e) in (i..<end).enumerated() {
                    results.append(try result(slice[e], requests: requests[e], scored: scored[k]))
                }
                i = end
                progress?(chunkStart + i, examples.count)
            }
            chunkStart += slice.count
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return ZeroShotReport(task: task.rawValue, split: task.split, accNormIsLmEvalMetric: task.lmEvalReportsAccNorm,
                              results: results, elapsedSeconds: seconds, keepResults: keepResults)
    }

    /// `encodePair` for every request of every example, examples spread over the cores.
    static func tokenize(_ examples: [MultipleChoiceExample], prefixTokenID: Int?,
                         encode: @escaping @Sendable (String) throws -> [Int]) throws -> [[(context: [Int], continuation: [Int])]] {
        var out = [Result<[(context: [Int], continuation: [Int])], Error>](repeating: .success([]), count: examples.count)
        out.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            Parallel.forEach(examples.count) { i in
                base[i] = Result {
                    try zip(examples[i].contexts, examples[i].continuations).map {
                        try RequestTokens.encodePair(context: $0, continuation: $1, prefixTokenID: prefixTokenID, encode: encode)
                    }
                }
            }
        }
        return try out.map { try $0.get() }
    }

    /// Positions a packed pass spends on one example: its longest request, plus the other continuations.
    static func estimatedPositions(_ requests: [(context: [Int], continuation: [Int])], maxLength: Int) -> Int {
        let longest = requests.map { min($0.context.count + $0.continuation.count, maxLength + 1) }.max() ?? 0
        return longest + requests.map(\.continuation.count).reduce(0, +) - (requests.map(\.continuation.count).max() ?? 0)
    }

    /// One example's result from its scores (the checks of `score`).
    static func result(_ example: MultipleChoiceExample, requests: [(context: [Int], continuation: [Int])],
                       scored: [(Double, isGreedy: Bool)]) throws -> ZeroShotExampleResult {
        guard scored.count == requests.count else {
            throw EvaluationError.scorerShape(what: "continuation log-likelihoods of example \(example.docID)",
                                              expected: requests.count, got: scored.count)
        }
        let loglik = scored.map(\.0)
        if let bad = loglik.firstIndex(where: { !$0.isFinite }) {
            throw EvaluationError.nonFinite(what: "continuation log-likelihood", index: example.docID, position: bad)
        }
        return ZeroShotExampleResult(
            docID: example.docID, gold: example.gold, loglik: loglik, isGreedy: scored.map(\.isGreedy),
            continuationTokens: requests.map(\.continuation.count),
            decision: MultipleChoiceDecision(loglik: loglik, choiceLengths: example.choiceLengths, gold: example.gold))
    }
}
