import Essentials

/// Non-overlapping evaluation windows over a tokenized text (spec §4.4): windows of `context` tokens with stride
/// `context`, the remainder after the last full window dropped, optionally only the first `limit` windows.
public struct EvalWindows: Sendable, Equatable {
    /// Tokens per window (W). Each window predicts W - 1 tokens: its first token is context only.
    public let context: Int
    /// [windows][context] token ids, in text order.
    public let windows: [[Int]]
    /// Tokens in the whole text.
    public let totalTokens: Int
    /// Tokens after the last full window of the whole text (`totalTokens % context`).
    public let remainderTokens: Int

    /// Cuts `tokens` into windows. Throws when `context < 2` or the text is shorter than one window.
    /// - Parameter source: names the data in errors.
    public init(tokens: [Int], context: Int, limit: Int? = nil, source: String = "<tokens>") throws {
        guard context >= 2 else { throw CorpusError.invalidArgument("window length \(context) < 2 (nothing to predict)") }
        if let limit, limit < 1 { throw CorpusError.invalidArgument("window limit \(limit) < 1") }
        guard tokens.count >= context else { throw CorpusError.tooShort(file: source, tokens: tokens.count, needed: context) }
        let full = tokens.count / context
        let count = min(full, limit ?? full)
        self.context = context
        self.windows = (0..<count).map { Array(tokens[($0 * context)..<(($0 + 1) * context)]) }
        self.totalTokens = tokens.count
        self.remainderTokens = tokens.count % context
    }

    /// Tokens inside the windows used.
    public var tokensUsed: Int { windows.count * context }
    /// Tokens whose NLL is computed (W - 1 per window).
    public var predictedTokens: Int { windows.count * (context - 1) }
    /// Tokens of the text not in any used window (the remainder, plus whole windows cut off by `limit`).
    public var droppedTokens: Int { totalTokens - tokensUsed }
}

/// Calibration samples from documents (C4 train), tokenized by a closure so this module needs no model.
public enum Calibration {
    /// The blocks of the official data pipeline (spec §4.1): each document tokenized on its own with the model's
    /// BOS rule (`encode`), documents concatenated within groups of `documentsPerGroup` (HF `map` batches of 1,000)
    /// and cut into `length`-token blocks, each group's remainder dropped. Blocks in document order.
    public static func blocks(documents: [String], length: Int, documentsPerGroup: Int = 1000,
                              encode: (String) throws -> [Int]) throws -> [[Int]] {
        guard length >= 1 else { throw CorpusError.invalidArgument("block length \(length) < 1") }
        guard documentsPerGroup >= 1 else { throw CorpusError.invalidArgument("documents per group \(documentsPerGroup) < 1") }
        var blocks: [[Int]] = []
        var start = 0
        while start < documents.count {
            let end = min(start + documentsPerGroup, documents.count)
            var ids: [Int] = []
            for d in documents[start..<end] { ids += try encode(d) }
            for b in 0..<(ids.count / length) { blocks.append(Array(ids[(b * length)..<((b + 1) * length)])) }
            start = end
        }
        return blocks
    }

    /// `count` blocks of `length` tokens: all blocks (see `blocks`) shuffled by a seeded Fisher–Yates shuffle,
    /// first `count` taken (the official code shuffles with seed 42 and takes the first N; its torch stream
    /// cannot be reproduced, so the draw is ours, fixed by `seed`). Throws when there are fewer than `count` blocks.
    public static func sample(documents: [String], count: Int, length: Int, seed: UInt64,
                              documentsPerGroup: Int = 1000, source: String = "<documents>",
                              encode: (String) throws -> [Int]) throws -> [[Int]] {
        guard count >= 1 else { throw CorpusError.invalidArgument("sample count \(count) < 1") }
        var all = try blocks(documents: documents, length: length, documentsPerGroup: documentsPerGroup, encode: encode)
        guard all.count >= count else {
            throw CorpusError.tooShort(file: source, tokens: all.count * length, needed: count * length)
        }
        var rng = SplitMix64(seed: seed)
        shuffle(&all, using: &rng)
        return Array(all.prefix(count))
    }

    /// The fixtures' Wanda-sp calibration recipe: the first `documentCount` documents each tokenized with the
    /// model's BOS rule, ids concatenated in file order, the first `windows * length` ids cut row-major into
    /// `windows` windows (defaults: 8 documents, 8 x 128).
    public static func firstWindows(documents: [String], documentCount: Int = 8, windows: Int = 8, length: Int = 128,
                                    source: String = "<documents>", encode: (String) throws -> [Int]) throws -> [[Int]] {
        guard windows >= 1, length >= 1 else { throw CorpusError.invalidArgument("\(windows) windows of \(length) tokens") }
        var ids: [Int] = []
        for d in documents.prefix(documentCount) { ids += try encode(d) }
        guard ids.count >= windows * length else {
            throw CorpusError.tooShort(file: source, tokens: ids.count, needed: windows * length)
        }
        return (0..<windows).map { Array(ids[($0 * length)..<(($0 + 1) * length)]) }
    }

    /// Fisher–Yates from the back (Knuth's algorithm P), drawing `j` uniformly in `0...i`.
    public static func shuffle<T>(_ items: inout [T], using rng: inout SplitMix64) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            let j = rng.uniform(below: i + 1)
            if i != j { items.swapAt(i, j) }
        }
    }
}
