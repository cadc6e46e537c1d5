import Kernels

/// A token sequence whose last `scoredCount` tokens are scored given everything before them
/// (an lm-eval `loglikelihood` request after tokenisation and truncation).
public struct ContinuationRequest: Sendable, Equatable {
    /// Context then continuation, token ids.
    public var tokens: [Int]
    /// How many trailing tokens are the continuation (0, or less than tokens.count).
    public var scoredCount: Int

    /// A request scoring the last `scoredCount` of `tokens`.
    public init(tokens: [Int], scoredCount: Int) {
        self.tokens = tokens
        self.scoredCount = scoredCount
    }
}

/// A request whose continuation does not leave at least one token of context.
public struct ContinuationRequestError: Error, CustomStringConvertible, Equatable {
    /// The requested continuation length.
    public let scoredCount: Int
    /// The request's total token count.
    public let tokenCount: Int

    /// Names both counts.
    public var description: String {
        "cannot score the last \(scoredCount) of \(tokenCount) tokens: the continuation needs at least one token before it"
    }
}

/// The score of one continuation.
public struct ContinuationScore: Sendable, Equatable {
    /// Σ log p(token | all tokens before it) over the continuation, nats (≤ 0); 0 for an empty continuation.
    public var logLikelihood: Double
    /// Whether every continuation token is the argmax prediction (lowest id on ties, like `torch.argmax`).
    public var isGreedy: Bool
    /// log p of each continuation token, in order.
    public var tokenLogProbabilities: [Double]
}

extension PreparedModel {
    /// Scores groups of continuations; the requests of a group may share a prefix (the choices of one
    /// multiple-choice example), and all groups run in one packed forward pass.
    ///
    /// Each group's longest common prefix of model inputs (each request's tokens without its last one) is one
    /// segment of the pass, computed once; each request adds only its remaining tokens as a segment attending to
    /// that prefix. No padding: every GEMM covers exactly the distinct positions. Log-softmax is computed only at
    /// the positions that predict continuation tokens, in 64-row blocks, so full logits are never held.
    public func scoreContinuations(_ groups: [[ContinuationRequest]]) throws -> [[ContinuationScore]] {
        for r in groups.joined() {
            guard r.scoredCount == 0 || (r.scoredCount > 0 && r.scoredCount < r.tokens.count) else {
                throw ContinuationRequestError(scoredCount: r.scoredCount, tokenCount: r.tokens.count)
            }
            for t in r.tokens where t < 0 || t >= config.vocabSize {
                throw ModelError.tokenOutOfRange(token: t, vocabularySize: config.vocabSize)
            }
        }
        var scores = groups.map { $0.map { _ in ContinuationScore(logLikelihood: 0, isGreedy: true, tokenLogProbabilities: []) } }
        var tokens: [Int] = []
        var segments: [PackedSegment] = []
        func addSegment(_ piece: ArraySlice<Int>, parent: Int?) -> Int {
            segments.append(PackedSegment(start: tokens.count, length: piece.count, parent: parent))
            tokens.append(contentsOf: piece)
            return segments.count - 1
        }
        // Per scored position: the packed row whose hidden state predicts it, its target, and its request.
        var rows: [Int] = [], targets: [Int] = [], owners: [(group: Int, request: Int)] = []
        for (g, group) in groups.enumerated() {
            let active = group.indices.filter { group[$0].scoredCount > 0 }
            guard let first = active.first else { continue }
            let inputs = active.map { group[$0].tokens.dropLast() }
            var prefix = inputs[0].count
            for input in inputs.dropFirst() {
                var same = 0
                while same < min(prefix, input.count) && input[input.startIndex + same] == inputs[0][inputs[0].startIndex + same] { same += 1 }
                prefix = same
            }
            let root = prefix > 0 ? addSegment(group[first].tokens[..<prefix], parent: nil) : nil
            for (a, input) in zip(active, inputs) {
                let request = group[a]
                let own = input.count > prefix ? addSegment(input[(input.startIndex + prefix)...], parent: root) : nil
                for t in (input.count - request.scoredCount)..<input.count {
                    rows.append(t < prefix ? segments[root!].start + t : segments[own!].start + (t - prefix))
                    targets.append(request.tokens[t + 1])
                    owners.append((g, a))
                }
            }
        }
        guard !rows.isEmpty else { return scores }

        let hidden = runPacked(tokens: tokens, segments: segments)   // [tokens.count, d]
        let d = config.hiddenSize
        var gathered = [Float]()   // [rows, d]: the hidden states of the scored rows
        gathered.reserveCapacity(rows.count * d)
        for r in rows { gathered.append(contentsOf: hidden[(r * d)..<((r + 1) * d)]) }
        // 64-row head blocks, over the scored rows only.
        let scored = gathered.withUnsafeBufferPointer { h in
            targetLogProbabilities(hidden: h.baseAddress!, targets: targets, blockRows: 64, greedy: true)
        }
        for (i, owner) in owners.enumerated() {
            scores[owner.group][owner.request].logLikelihood += scored.logProbabilities[i]
            scores[owner.group][owner.request].isGreedy = scores[owner.group][owner.request].isGreedy && scored.isGreedy[i]
            scores[owner.group][owner.request].tokenLogProbabilities.append(scored.logProbabilities[i])
        }
        return scores
    }
}
