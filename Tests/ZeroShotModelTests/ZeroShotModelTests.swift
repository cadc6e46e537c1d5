import Checkpoints
import Corpora
import Evaluation
import FixtureSupport
import Foundation
import Tokenization
import Transformer
import XCTest

/// SmolLM2-135M (the dequantized Q4_1 GGUF) against lm-evaluation-harness 0.4.5 on the fixture examples
/// (`fixtures/zeroshot`, README §5: the first 50 examples per task, HF float32 of the same dequantized weights).
final class ZeroShotModelTests: XCTestCase {
    /// The model and tokenizer, loaded once for the whole class.
    struct Smol {
        let model: LanguageModel
        let tokenizer: any Tokenizer
    }

    nonisolated(unsafe) private static var cached: Smol?

    private func smol() throws -> Smol {
        if let s = Self.cached { return s }
        let path = try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let checkpoint = try CheckpointLoader.load(path: path)
        let s = Smol(model: try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: path),
                     tokenizer: try TokenizerLoader.load(checkpoint.tokenizer))
        Self.cached = s
        return s
    }

    /// lm-eval tokenises requests with `add_special_tokens=False`.
    private func encoder(_ tokenizer: any Tokenizer) -> @Sendable (String) throws -> [Int] {
        { tokenizer.encode($0, addSpecialTokens: false) }
    }

    /// Per-choice log-likelihood (abs 1e-3, the fixture's stated tolerance: float32 forward passes by different code
    /// and summation orders; the reference's own cross-check differs by up to 3.1e-4), is_greedy, continuation token
    /// counts, the chosen answer for acc and acc_norm on every example, and the task means.
    /// The first 20 fixture examples of every task by default, to keep the suite's run time modest (about 60 s of
    /// CPU for all 50; boolq's long passages dominate); `POLICYPRUNE_ZEROSHOT_EXAMPLES=50` checks every fixture
    /// example (the issue asks for 100; the fixtures hold 50).
    func testReproducesLmEvalOnFixtureExamples() throws {
        let requested = ProcessInfo.processInfo.environment["POLICYPRUNE_ZEROSHOT_EXAMPLES"].flatMap { Int($0) } ?? 20
        let smol = try smol()
        let scorer = try ModelContinuationScorer(model: smol.model.dense)
        let root = try Shared.url("data")
        let logTolerance = Tolerance(absolute: 1e-3)
        var worstDiff = 0.0
        for task in ZeroShotTask.allCases {
            let fixture = try Shared.json("fixtures/zeroshot/\(task.rawValue).json")
            let all: [[String: Any]] = try fixture.get("examples")
            XCTAssertEqual(all.count, 50, task.rawValue)
            let stored = Array(all.prefix(requested))
            let examples = try task.load(dataRoot: root, limit: stored.count)
            XCTAssertEqual(examples.count, stored.count, task.rawValue)
            let started = Date()
            let report = try ZeroShot.evaluateBatched(task: task, examples: examples, scorer: scorer, encode: encoder(smol.tokenizer))
            let results = try XCTUnwrap(report.results)
            var nearTies = 0
            for (r, s) in zip(results, stored) {
                let where_ = "\(task.rawValue) doc \(r.docID)"
                let loglik: [Double] = try s.get("loglik")
                if let message = compareAll(r.loglik, loglik, logTolerance, "\(where_) loglik") { XCTFail(message) }
                worstDiff = max(worstDiff, zip(r.loglik, loglik).map { abs($0 - $1) }.max() ?? 0)
                XCTAssertEqual(r.isGreedy, try s.get("is_greedy") as [Bool], where_)
                XCTAssertEqual(r.continuationTokens, try s.get("n_cont_tokens") as [Int], where_)
                // The decision must match unless the reference's top two are within the log-likelihood tolerance
                // (then either answer is within tolerance of lm-eval's numbers).
                let lengths = examples[r.docID].choiceLengths
                let chosenAcc: Int = try s.get("chosen_acc"), chosenNorm: Int = try s.get("chosen_acc_norm")
                if r.decision.chosenAcc != chosenAcc {
                    XCTAssertLessThan(abs(loglik[r.decision.chosenAcc] - loglik[chosenAcc]), 2e-3, "\(where_) acc choice")
                    nearTies += 1
                }
                if r.decision.chosenAccNorm != chosenNorm {
                    let ours = r.decision.chosenAccNorm
                    XCTAssertLessThan(abs(loglik[ours] / Double(lengths[ours]) - loglik[chosenNorm] / Double(lengths[chosenNorm])),
                                      2e-3, "\(where_) acc_norm choice")
                    nearTies += 1
                }
            }
            XCTAssertEqual(nearTies, 0, "\(task.rawValue): decisions differing from lm-eval at near-ties")
            // Task means: lm-eval's per-example fields averaged over the same examples (its own metrics for all 50).
            let expectedAcc = try stored.map { try $0.get("acc") as Double }.reduce(0, +) / Double(stored.count)
            let expectedNorm = try stored.map { Double(try $0.get("chosen_acc_norm") as Int == (try $0.get("gold") as Int) ? 1 : 0) }
                .reduce(0, +) / Double(stored.count)
            XCTAssertEqual(report.acc, expectedAcc, accuracy: 1e-12, task.rawValue)
            XCTAssertEqual(report.accNorm, expectedNorm, accuracy: 1e-12, task.rawValue)
            if stored.count == all.count {
                XCTAssertEqual(report.acc, try fixture.get("metrics_lm_eval", "acc,none") as Double, accuracy: 1e-12, task.rawValue)
                XCTAssertEqual(report.accNorm, try fixture.get("acc_norm_recomputed_char_len") as Double, accuracy: 1e-12, task.rawValue)
            }
            print(String(format: "zeroshot-model: %@ %d examples, acc %.2f acc_norm %.2f, %.1f s", task.rawValue, report.examples,
                         report.acc, report.accNorm, Date().timeIntervalSince(started)))
        }
        print(String(format: "zeroshot-model: worst |loglik - lm-eval| %.2e", worstDiff))
    }

    /// The packed pass (shared prefix once, several examples per pass) agrees with scoring each request alone
    /// through the per-example protocol path, and with the plain forward pass's token NLL.
    func testPackedScoringMatchesUnpackedAndForward() throws {
        let smol = try smol()
        let model = smol.model.dense
        let encode = encoder(smol.tokenizer)
        let examples = try ZeroShotTask.winogrande.load(dataRoot: try Shared.url("data"), limit: 2)
            + ZeroShotTask.arcEasy.load(dataRoot: try Shared.url("data"), limit: 1)
        let requests = try examples.map { e in
            try zip(e.contexts, e.continuations).map { try RequestTokens.encodePair(context: $0, continuation: $1, encode: encode) }
        }
        let scorer = try ModelContinuationScorer(model: model)
        let packed = try scorer.continuationLogLikelihoods(examples: requests)
        for (e, example) in requests.enumerated() {
            for (i, r) in example.enumerated() {
                let alone = try scorer.continuationLogLikelihood(context: r.context, continuation: r.continuation)
                // Same math, different row grouping in the GEMMs: float32 rounding only.
                XCTAssertEqual(packed[e][i].0, alone.0, accuracy: 1e-4)
                XCTAssertEqual(packed[e][i].isGreedy, alone.isGreedy)
                // Against tokenNLL of the whole sequence (the forward pass the perplexity goldens check).
                let whole = r.context + r.continuation
                let nll = try model.tokenNLL([whole])[0]
                let expected = -nll.suffix(r.continuation.count).reduce(0, +)
                XCTAssertEqual(alone.0, expected, accuracy: 1e-4)
            }
        }
    }

    /// A pruned model (structure mask: groups and channels dropped, one layer without attention, one without MLP)
    /// scores through the packed pass exactly as its plain forward pass predicts.
    func testPackedScoringOfMaskedModel() throws {
        let smol = try smol()
        let config = smol.model.config
        let mask = StructureMask(layers: config.layers.indices.map { l in
            StructureMask.Layer(keptKVGroups: l == 3 ? [] : [0, 2], keptChannels: l == 5 ? [] : Array(stride(from: 0, to: config.layers[l].ffnDim, by: 3)))
        })
        let model = try smol.model.prepared(mask: mask)
        let scorer = try ModelContinuationScorer(model: model)
        let example = try ZeroShotTask.piqa.load(dataRoot: try Shared.url("data"), limit: 1)[0]
        let encode = encoder(smol.tokenizer)
        let requests = try zip(example.contexts, example.continuations).map {
            try RequestTokens.encodePair(context: $0, continuation: $1, encode: encode)
        }
        let packed = try scorer.continuationLogLikelihoods(requests)
        for (r, scored) in zip(requests, packed) {
            let nll = try model.tokenNLL([r.context + r.continuation])[0]
            let expected = -nll.suffix(r.continuation.count).reduce(0, +)
            // The damaged model's log-likelihoods are large (about -15 nats per token), so float32 rounding of
            // differently grouped GEMMs shows up relative to them: allow 1e-5 relative on top of 1e-4. (2e-6 was
            // exceeded with one thread, 2.4e-6 on -560 nats, with OpenBLAS and oneDNN alike; a scoring bug, e.g. one
            // position off, moves the sum by whole nats.)
            let tolerance = Tolerance(absolute: 1e-4, relative: 1e-5)
            XCTAssertTrue(tolerance.accepts(scored.0, expected), "\(scored.0) vs \(expected) (\(tolerance))")
        }
    }

    /// Empty continuations score (0, greedy) without running; requests with no common prefix still work; a
    /// continuation without context is refused; lm-eval's left truncation keeps the last maxLength + 1 tokens.
    func testEdgeCasesAndTruncation() throws {
        let model = try smol().model.dense
        let scorer = try ModelContinuationScorer(model: model, maxLength: 8)
        let scored = try scorer.continuationLogLikelihoods([(context: [1, 2, 3], continuation: []),
                                                            (context: [10, 11], continuation: [12, 13]),
                                                            (context: [20], continuation: [21])])
        XCTAssertEqual(scored[0].0, 0)
        XCTAssertTrue(scored[0].isGreedy)
        XCTAssertThrowsError(try scorer.continuationLogLikelihood(context: [], continuation: [5]))
        XCTAssertThrowsError(try scorer.continuationLogLikelihood(context: [1], continuation: Array(repeating: 5, count: 9)))
        // 12 tokens with max length 8: only the last 9 are fed, so the result equals scoring that suffix.
        let long = Array(100..<112)
        let truncated = try scorer.continuationLogLikelihood(context: Array(long.prefix(10)), continuation: Array(long.suffix(2)))
        let direct = try ModelContinuationScorer(model: model, maxLength: 100)
            .continuationLogLikelihood(context: Array(long[3..<10]), continuation: Array(long.suffix(2)))
        XCTAssertEqual(truncated.0, direct.0, accuracy: 1e-5)
        XCTAssertThrowsError(try model.scoreContinuations([[ContinuationRequest(tokens: [1, 2], scoredCount: 2)]]))
    }
}
