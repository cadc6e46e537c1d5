import XCTest
import Foundation
import Corpora
import Evaluation
import FixtureSupport

/// NLL of each target = a function of the target id; records the batches it was given.
private final class FakeScorer: LanguageModelScorer {
    let nll: (Int) -> Double
    var batches: [[[Int]]] = []
    init(_ nll: @escaping (Int) -> Double) { self.nll = nll }
    func tokenNLL(_ windows: [[Int]]) throws -> [[Double]] {
        batches.append(windows)
        return windows.map { w in w.dropFirst().map(nll) }
    }
}

final class PerplexityTests: XCTestCase {
    /// Hand-computed: tokens 0..<10, W = 3 → windows [0,1,2] [3,4,5] [6,7,8] (token 9 dropped); NLL(target) = target/10,
    /// so window means 0.15, 0.45, 0.75; mean 0.45; token mean (0.3 + 0.9 + 1.5) / 6 = 0.45;
    /// batches of 2: means 0.3 and 0.75 → 0.525.
    func testHandComputedValues() throws {
        let scorer = FakeScorer { Double($0) / 10 }
        var seen: [PerplexityProgress] = []
        let r = try Perplexity.evaluate(scorer: scorer, tokens: Array(0..<10), context: 3, batchSize: 2) { seen.append($0) }
        XCTAssertEqual(scorer.batches, [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8]]])
        XCTAssertEqual(r.windows, 3)
        XCTAssertEqual(r.predictedTokens, 6)
        XCTAssertEqual(r.totalTokens, 10)
        XCTAssertEqual(r.droppedTokens, 1)
        let tol = Tolerance(absolute: 1e-15, relative: 1e-14)  // a few roundings of sums of tenths
        XCTAssertNil(compareAll(r.windowMeanNLL ?? [], [0.15, 0.45, 0.75], tol, "window means"))
        XCTAssertTrue(tol.accepts(r.meanWindowNLL, 0.45))
        XCTAssertTrue(tol.accepts(r.totalNLL, 2.7))
        XCTAssertTrue(tol.accepts(r.pplWindowMean, exp(0.45)))
        XCTAssertTrue(tol.accepts(r.pplTokenMean, exp(0.45)))
        XCTAssertTrue(tol.accepts(r.pplBatchMean, exp(0.525)))
        XCTAssertEqual(seen.map(\.windowsDone), [2, 3])
        XCTAssertEqual(seen.map(\.windowsTotal), [3, 3])
        XCTAssertEqual(seen.last?.etaSeconds, 0)

        let limited = try Perplexity.evaluate(scorer: FakeScorer { Double($0) / 10 }, tokens: Array(0..<10), context: 3,
                                              limitWindows: 1, keepWindowNLL: false)
        XCTAssertEqual(limited.windows, 1)
        XCTAssertEqual(limited.droppedTokens, 7)
        XCTAssertNil(limited.windowMeanNLL)
        XCTAssertEqual(limited.pplWindowMean, exp(0.15), accuracy: 1e-14)
    }

    func testBadScorerOutputIsATypedError() {
        final class Short: LanguageModelScorer {
            func tokenNLL(_ windows: [[Int]]) throws -> [[Double]] { windows.map { _ in [1.0] } }
        }
        XCTAssertThrowsError(try Perplexity.evaluate(scorer: Short(), tokens: Array(0..<8), context: 4)) {
            XCTAssertEqual($0 as? EvaluationError, .scorerShape(what: "tokenNLL window 0", expected: 3, got: 1))
        }
        XCTAssertThrowsError(try Perplexity.evaluate(scorer: FakeScorer { $0 == 5 ? .nan : 1 }, tokens: Array(0..<8), context: 4)) {
            XCTAssertEqual($0 as? EvaluationError, .nonFinite(what: "token NLL", index: 1, position: 0))
        }
        XCTAssertThrowsError(try Perplexity.evaluate(scorer: FakeScorer { _ in 1 }, tokens: [1, 2], context: 4, source: "wikitext2")) {
            XCTAssertEqual($0 as? CorpusError, .tooShort(file: "wikitext2", tokens: 2, needed: 4))
        }
    }

    /// Recomputes the stored aggregates of every perplexity fixture from its `window_mean_nll` list, as
    /// fixtures README §3 defines them; then runs `evaluate` with a scorer that returns each window's stored mean at
    /// every position and checks the report against the file. Tolerance: rel 1e-12 — the same float64 sums in a
    /// possibly different order (numpy pairwise vs sequential) over at most 3,070 values.
    func testFixtureAggregation() throws {
        let tol = Tolerance(absolute: 0, relative: 1e-12)
        for file in ["perplexity/stories260K_tinystories_w128.json", "perplexity/smollm2-135m_wikitext2_w128.json",
                     "perplexity/smollm2-135m_wikitext2_w2048.json"] {
            let fixture = try Shared.json("fixtures/" + file)
            let nTokens: Int = try fixture.get("n_tokens")
            for part in ["first64", "full"] where fixture[part] != nil {
                let w: Int = try fixture.get(part, "window")
                let means: [Double] = try fixture.get(part, "window_mean_nll")
                let n: Int = try fixture.get(part, "n_windows")
                guard means.count == n else { continue }  // a partial run stores fewer means than windows
                XCTAssertEqual(try fixture.get(part, "n_predicted") as Int, n * (w - 1), "\(file) \(part)")
                let a = Perplexity.Aggregate(windowMeanNLL: means, predictedPerWindow: w - 1, batchSize: 8)
                for (name, ours) in [("mean_of_window_mean_nll", a.meanWindowNLL), ("ppl_window_mean", a.pplWindowMean),
                                     ("ppl_token_mean", a.pplTokenMean)] {
                    let stored: Double = try fixture.get(part, name)
                    XCTAssertTrue(tol.accepts(ours, stored), "\(file) \(part) \(name): \(ours) vs \(stored)")
                }

                // End to end: window k holds token k everywhere; the scorer answers with the stored mean.
                let tokens = (0..<n).flatMap { [Int](repeating: $0, count: w) } + [Int](repeating: -1, count: nTokens - n * w)
                let scorer = FakeScorer { k in k >= 0 ? means[k] : .nan }
                let r = try Perplexity.evaluate(scorer: scorer, tokens: tokens, context: w, batchSize: 8,
                                                limitWindows: part == "first64" ? 64 : nil)
                XCTAssertEqual(r.windows, n)
                XCTAssertEqual(r.totalTokens, nTokens)
                if part == "full" {
                    XCTAssertEqual(r.droppedTokens, try fixture.get(part, "tokens_dropped_remainder") as Int, file)
                    XCTAssertEqual(try EvalWindows(tokens: tokens, context: w).remainderTokens, nTokens % w)
                }
                XCTAssertTrue(tol.accepts(r.pplWindowMean, try fixture.get(part, "ppl_window_mean")), "\(file) \(part)")
                XCTAssertTrue(tol.accepts(r.pplTokenMean, try fixture.get(part, "ppl_token_mean")), "\(file) \(part)")
            }
        }
        // README headline numbers (4 significant decimals).
        let smol: [String: Any] = try Shared.json("fixtures/perplexity/smollm2-135m_wikitext2_w128.json")
        XCTAssertEqual(try smol.get("full", "ppl_window_mean") as Double, 56.0485, accuracy: 5e-5)
    }

    func testReportJSONKeys() throws {
        let r = try Perplexity.evaluate(scorer: FakeScorer { _ in 1 }, tokens: Array(0..<6), context: 3)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any] ?? [:]
        for key in ["window", "n_windows", "n_predicted", "n_tokens", "tokens_dropped", "mean_of_window_mean_nll",
                    "ppl_window_mean", "ppl_token_mean", "ppl_batch_mean", "window_mean_nll", "tokens_per_second"] {
            XCTAssertNotNil(json[key], key)
        }
        XCTAssertEqual(try JSONDecoder().decode(PerplexityReport.self, from: JSONEncoder().encode(r)), r)
    }
}
