import Foundation
import Corpora

/// Log-likelihood of a continuation given a context, as lm-eval's `loglikelihood` request computes it.
public protocol ContinuationScorer {
    /// The sum over continuation tokens of log p(token | everything before it), in nats (≤ 0), and whether every
    /// continuation token is the argmax prediction. The input is `context + continuation`; the context has at
    /// least one token (see `RequestTokens.encodePair`).
    func continuationLogLikelihood(context: [Int], continuation: [Int]) throws -> (Double, isGreedy: Bool)

    /// All requests of one example (default: one call each); override to batch them.
    func continuationLogLikelihoods(_ requests: [(context: [Int], continuation: [Int])]) throws -> [(Double, isGreedy: Bool)]
}

extension ContinuationScorer {
    /// Scores the requests one by one.
    public func continuationLogLikelihoods(_ requests: [(context: [Int], continuation: [Int])]) throws -> [(Double, isGreedy: Bool)] {
        try requests.map { try continuationLogLikelihood(context: $0.context, continuation: $0.continuation) }
    }
}

/// Token ids of a request, split like lm-eval 0.4.5 `HFLM._encode_pair`.
public enum RequestTokens {
    /// Trailing whitespace of the context moves to the front of the continuation; then
    /// continuation ids = encode(context + continuation) minus its first `encode(context).count` ids, so a token
    /// spanning the boundary belongs to the continuation. `encode` must add no BOS (lm-eval's
    /// `add_special_tokens=False`). An empty context is replaced by `[prefixTokenID]` (lm-eval's
    /// `prefix_token_id`, the BOS or EOS id) and the continuation is encoded alone.
    public static func encodePair(context: String, continuation: String, prefixTokenID: Int? = nil,
                                  encode: (String) throws -> [Int]) throws -> (context: [Int], continuation: [Int]) {
        if context.isEmpty {
            guard let prefixTokenID else { throw EvaluationError.invalidArgument("empty context and no prefix token id") }
            return ([prefixTokenID], try encode(continuation))
        }
        let stripped = PythonString.rstrip(context)
        let spaces = context.unicodeScalars.count - stripped.unicodeScalars.count
        let movedContext = spaces > 0 ? stripped : context
        let movedContinuation = spaces > 0 ? String(context.unicodeScalars.suffix(spaces)) + continuation : continuation
        let whole = try encode(movedContext + movedContinuation)
        let contextIDs = try encode(movedContext)
        return (contextIDs, Array(whole.dropFirst(contextIDs.count)))
    }
}

/// The per-example decision of lm-eval's multiple-choice `process_results`.
public struct MultipleChoiceDecision: Codable, Sendable, Equatable {
    /// `argmax(loglik)` (first maximum, like `np.argmax`).
    public let chosenAcc: Int
    /// `argmax(loglik / len(choice))`, lengths in code points of the `doc_to_choice` strings.
    public let chosenAccNorm: Int
    /// 1 when `chosenAcc == gold`, else 0.
    public let acc: Double
    /// 1 when `chosenAccNorm == gold`, else 0.
    public let accNorm: Double

    /// Decides from the continuation log-likelihoods.
    public init(loglik: [Double], choiceLengths: [Int], gold: Int) {
        chosenAcc = Self.argmax(loglik)
        chosenAccNorm = Self.argmax(zip(loglik, choiceLengths).map { $0 / Double($1) })
        acc = chosenAcc == gold ? 1 : 0
        accNorm = chosenAccNorm == gold ? 1 : 0
    }

    /// Index of the first maximum.
    static func argmax(_ values: [Double]) -> Int {
        var best = 0
        for i in values.indices.dropFirst() where values[i] > values[best] { best = i }
        return best
    }

    enum CodingKeys: String, CodingKey {
        case chosenAcc = "chosen_acc", chosenAccNorm = "chosen_acc_norm", acc, accNorm = "acc_norm"
    }
}

/// One scored example.
public struct ZeroShotExampleResult: Codable, Sendable, Equatable {
    /// Index in the split.
    public let docID: Int
    /// Correct choice.
    public let gold: Int
    /// Continuation log-likelihood per choice.
    public let loglik: [Double]
    /// Whether each continuation is the greedy prediction.
    public let isGreedy: [Bool]
    /// Continuation token count per choice (after `encodePair`).
    public let continuationTokens: [Int]
    /// The acc / acc_norm decision.
    public let decision: MultipleChoiceDecision

    /// Collects one example's scores.
    public init(docID: Int, gold: Int, loglik: [Double], isGreedy: [Bool], continuationTokens: [Int],
                decision: MultipleChoiceDecision) {
        self.docID = docID
        self.gold = gold
        self.loglik = loglik
        self.isGreedy = isGreedy
        self.continuationTokens = continuationTokens
        self.decision = decision
    }

    enum CodingKeys: String, CodingKey {
        case docID = "doc_id", gold, loglik, isGreedy = "is_greedy", continuationTokens = "n_cont_tokens", decision
    }
}

/// A task's zero-shot result. Stderr = sample standard deviation / sqrt(n), lm-eval's `mean_stderr`.
public struct ZeroShotReport: Codable, Sendable, Equatable {
    /// lm-eval task name.
    public let task: String
    /// Split evaluated.
    public let split: String
    /// Examples scored.
    public let examples: Int
    /// Mean acc.
    public let acc: Double
    /// Stderr of acc (nil for fewer than 2 examples).
    public let accStderr: Double?
    /// Mean acc_norm (character-length normalised; computed for every task).
    public let accNorm: Double
    /// Stderr of acc_norm.
    public let accNormStderr: Double?
    /// False for BoolQ and WinoGrande, whose lm-eval configs report only acc.
    public let accNormIsLmEvalMetric: Bool
    /// Wall-clock seconds.
    public let elapsedSeconds: Double
    /// Per-example details (nil when not requested).
    public let results: [ZeroShotExampleResult]?

    enum CodingKeys: String, CodingKey {
        case task, split, examples, acc, accStderr = "acc_stderr", accNorm = "acc_norm", accNormStderr = "acc_norm_stderr"
        case accNormIsLmEvalMetric = "acc_norm_is_lm_eval_metric", elapsedSeconds = "elapsed_seconds", results
    }

    /// Builds the report from per-example results.
    public init(task: String, split: String, accNormIsLmEvalMetric: Bool, results: [ZeroShotExampleResult],
                elapsedSeconds: Double, keepResults: Bool) {
        let accs = results.map(\.decision.acc), norms = results.map(\.decision.accNorm)
        self.task = task
        self.split = split
        self.examples = results.count
        self.acc = ZeroShot.mean(accs)
        self.accStderr = ZeroShot.meanStderr(accs)
        self.accNorm = ZeroShot.mean(norms)
        self.accNormStderr = ZeroShot.meanStderr(norms)
        self.accNormIsLmEvalMetric = accNormIsLmEvalMetric
        self.elapsedSeconds = elapsedSeconds
        self.results = keepResults ? results : nil
    }
}

/// Zero-shot multiple-choice evaluation (lm-eval 0.4.5 semantics, 0-shot).
public enum ZeroShot {
    /// Scores one example: encodes each request with `encodePair`, asks the scorer, decides.
    public static func score(_ example: MultipleChoiceExample, scorer: ContinuationScorer, prefixTokenID: Int? = nil,
                             encode: (String) throws -> [Int]) throws -> ZeroShotExampleResult {
        let requests = try zip(example.contexts, example.continuations).map {
            try RequestTokens.encodePair(context: $0, continuation: $1, prefixTokenID: prefixTokenID, encode: encode)
        }
        let scored = try scorer.continuationLogLikelihoods(requests)
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

    /// Scores a task's examples in order; `progress(done, total)` after each example.
    public static func evaluate(task: ZeroShotTask, examples: [MultipleChoiceExample], scorer: ContinuationScorer,
                                prefixTokenID: Int? = nil, keepResults: Bool = true,
                                encode: (String) throws -> [Int],
                                progress: ((Int, Int) -> Void)? = nil) throws -> ZeroShotReport {
        guard !examples.isEmpty else { throw EvaluationError.invalidArgument("\(task.rawValue): no examples") }
        let started = DispatchTime.now().uptimeNanoseconds
        var results: [ZeroShotExampleResult] = []
        for (i, example) in examples.enumerated() {
            results.append(try score(example, scorer: scorer, prefixTokenID: prefixTokenID, encode: encode))
            progress?(i + 1, examples.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return ZeroShotReport(task: task.rawValue, split: task.split, accNormIsLmEvalMetric: task.lmEvalReportsAccNorm,
                              results: results, elapsedSeconds: seconds, keepResults: keepResults)
    }

    /// Arithmetic mean.
    public static func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(x.count) }

    /// lm-eval `mean_stderr`: sample standard deviation (n - 1) / sqrt(n); nil for n < 2.
    public static func meanStderr(_ x: [Double]) -> Double? {
        guard x.count >= 2 else { return nil }
        let m = mean(x)
        let variance = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
        return (variance / Double(x.count)).squareRoot()
    }
}
