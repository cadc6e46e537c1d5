import XCTest
import Foundation
import Evaluation

/// llama-perplexity's protocol by hand (tools/perplexity/perplexity.cpp): chunks of n_ctx, BOS over each chunk's
/// first token, logits at n_ctx/2 … n_ctx−2 scored.
final class LlamaCppPerplexityTests: XCTestCase {
    /// NLL(target) = target / 10; records the chunks it was given.
    private final class Fake: LanguageModelScorer {
        var batches: [[[Int]]] = []
        func tokenNLL(_ windows: [[Int]]) throws -> [[Double]] {
            batches.append(windows)
            return windows.map { w in w.dropFirst().map { Double($0) / 10 } }
        }
    }

    /// Tokens 0..<11, n_ctx 4, BOS 99: chunks [99,1,2,3] [99,5,6,7] (8, 9, 10 dropped); first = 2, so each chunk
    /// scores only position 2 → targets 3 and 7: NLLs 0.3 and 0.7, mean 0.5, ppl e^0.5; stderr
    /// sqrt((0.29 − 0.25) / 1) · e^0.5 = 0.2 e^0.5.
    func testHandComputedChunks() throws {
        let fake = Fake()
        let r = try LlamaCppPerplexity.evaluate(scorer: fake, tokens: Array(0..<11), context: 4, bos: 99, batchSize: 1)
        XCTAssertEqual(fake.batches, [[[99, 1, 2, 3]], [[99, 5, 6, 7]]])
        XCTAssertEqual(r.chunks, 2)
        XCTAssertEqual(r.predictedTokens, 2)
        XCTAssertEqual(r.totalTokens, 11)
        XCTAssertEqual(r.totalNLL, 1.0, accuracy: 1e-15)
        XCTAssertEqual(r.ppl, exp(0.5), accuracy: 1e-14)
        XCTAssertEqual(r.pplStandardError, 0.2 * exp(0.5), accuracy: 1e-12)

        // Without BOS (a vocabulary that adds none, e.g. Qwen2) the chunk keeps its first token; --chunks limits.
        let plain = Fake()
        let one = try LlamaCppPerplexity.evaluate(scorer: plain, tokens: Array(0..<11), context: 4, bos: nil, chunks: 1)
        XCTAssertEqual(plain.batches, [[[0, 1, 2, 3]]])
        XCTAssertEqual(one.ppl, exp(0.3), accuracy: 1e-14)
        XCTAssertEqual(one.pplStandardError, 0)

        // n_ctx 5: first = 2, positions 2 and 3 → targets 3, 4 of [99,1,2,3,4].
        let odd = try LlamaCppPerplexity.evaluate(scorer: Fake(), tokens: Array(0..<5), context: 5, bos: 99)
        XCTAssertEqual(odd.predictedTokens, 2)
        XCTAssertEqual(odd.ppl, exp(0.35), accuracy: 1e-14)
    }

    func testImpossibleInputsAreTypedErrors() {
        XCTAssertThrowsError(try LlamaCppPerplexity.evaluate(scorer: Fake(), tokens: Array(0..<3), context: 4, bos: 1)) {
            guard case .invalidArgument(let m)? = $0 as? EvaluationError else { return XCTFail("\($0)") }
            XCTAssertTrue(m.contains("3 tokens"), m)
        }
        XCTAssertThrowsError(try LlamaCppPerplexity.evaluate(scorer: Fake(), tokens: Array(0..<8), context: 2, bos: 1))
        XCTAssertThrowsError(try LlamaCppPerplexity.evaluate(scorer: Fake(), tokens: Array(0..<8), context: 4, bos: 1, chunks: 0))
        final class NaNScorer: LanguageModelScorer {
            func tokenNLL(_ windows: [[Int]]) throws -> [[Double]] { windows.map { $0.dropFirst().map { _ in .nan } } }
        }
        XCTAssertThrowsError(try LlamaCppPerplexity.evaluate(scorer: NaNScorer(), tokens: Array(0..<8), context: 4, bos: 1)) {
            XCTAssertEqual($0 as? EvaluationError, .nonFinite(what: "token NLL", index: 0, position: 2))
        }
    }
}
