import XCTest
import Foundation
import Corpora
import Evaluation
import FixtureSupport

/// Answers with the log-likelihoods lm-eval stored, found by the request's text. The stand-in tokenizer maps each
/// code point to its value, so the ids decode back to the exact request strings.
private final class StoredScorer: ContinuationScorer {
    var table: [String: Double] = [:]
    func key(_ context: String, _ continuation: String) -> String { context + "\u{0}" + continuation }
    func text(_ ids: [Int]) -> String { String(String.UnicodeScalarView(ids.compactMap { Unicode.Scalar(UInt32($0)) })) }
    func continuationLogLikelihood(context: [Int], continuation: [Int]) throws -> (Double, isGreedy: Bool) {
        guard let v = table[key(text(context), text(continuation))] else { throw EvaluationError.invalidArgument("no such request") }
        return (v, false)
    }
}

private func codePoints(_ s: String) -> [Int] { s.unicodeScalars.map { Int($0.value) } }

final class ZeroShotTests: XCTestCase {
    private func fixture(_ task: ZeroShotTask) throws -> (meta: [String: Any], examples: [[String: Any]]) {
        let json = try Shared.json("fixtures/zeroshot/\(task.rawValue).json")
        return (json, try json.get("examples"))
    }

    /// Request strings equal lm-eval 0.4.5's, code point for code point, for the first 50 examples of every task.
    func testRequestStringsMatchLmEval() throws {
        let root = try Shared.url("data")
        for task in ZeroShotTask.allCases {
            let (_, stored) = try fixture(task)
            let ours = try task.load(dataRoot: root, limit: stored.count)
            XCTAssertEqual(ours.count, 50, task.rawValue)
            for (e, s) in zip(ours, stored) {
                let contexts: [String] = try s.get("contexts"), continuations: [String] = try s.get("continuations")
                let where_ = "\(task.rawValue) doc \(e.docID)"
                XCTAssertEqual(e.docID, try s.get("doc_id") as Int, where_)
                XCTAssertEqual(e.gold, try s.get("gold") as Int, where_)
                XCTAssertEqual(e.contexts.map { Array($0.unicodeScalars) }, contexts.map { Array($0.unicodeScalars) }, where_)
                XCTAssertEqual(e.continuations.map { Array($0.unicodeScalars) }, continuations.map { Array($0.unicodeScalars) }, where_)
            }
        }
    }

    /// acc / acc_norm decisions from the stored log-likelihoods reproduce the stored per-example fields and the
    /// task means (`acc_recomputed`, `acc_norm_recomputed_char_len`, and lm-eval's own metrics where defined).
    /// Exact: the decisions are argmaxes of the same float64 values.
    func testDecisionsFromStoredLoglik() throws {
        let root = try Shared.url("data")
        for task in ZeroShotTask.allCases {
            let (meta, stored) = try fixture(task)
            let examples = try task.load(dataRoot: root, limit: stored.count)
            var results: [ZeroShotExampleResult] = []
            for (e, s) in zip(examples, stored) {
                let loglik: [Double] = try s.get("loglik")
                let d = MultipleChoiceDecision(loglik: loglik, choiceLengths: e.choiceLengths, gold: e.gold)
                let where_ = "\(task.rawValue) doc \(e.docID)"
                XCTAssertEqual(d.chosenAcc, try s.get("chosen_acc") as Int, where_)
                XCTAssertEqual(d.chosenAccNorm, try s.get("chosen_acc_norm") as Int, where_)
                XCTAssertEqual(d.acc, try s.get("acc") as Double, where_)
                if let accNorm = s["acc_norm"] as? NSNumber { XCTAssertEqual(d.accNorm, accNorm.doubleValue, where_) }
                results.append(ZeroShotExampleResult(docID: e.docID, gold: e.gold, loglik: loglik, isGreedy: [],
                                                     continuationTokens: [], decision: d))
            }
            let report = ZeroShotReport(task: task.rawValue, split: task.split, accNormIsLmEvalMetric: task.lmEvalReportsAccNorm,
                                        results: results, elapsedSeconds: 0, keepResults: false)
            XCTAssertEqual(report.acc, try meta.get("acc_recomputed") as Double, accuracy: 1e-12, task.rawValue)
            XCTAssertEqual(report.accNorm, try meta.get("acc_norm_recomputed_char_len") as Double, accuracy: 1e-12, task.rawValue)
            XCTAssertEqual(report.acc, try meta.get("metrics_lm_eval", "acc,none") as Double, accuracy: 1e-12, task.rawValue)
            XCTAssertEqual(report.accStderr ?? .nan, try meta.get("metrics_lm_eval", "acc_stderr,none") as Double, accuracy: 1e-12)
            let metrics: [String: Any] = try meta.get("metrics_lm_eval")
            XCTAssertEqual(metrics["acc_norm,none"] != nil, task.lmEvalReportsAccNorm, task.rawValue)
            if task.lmEvalReportsAccNorm {
                XCTAssertEqual(report.accNorm, try meta.get("metrics_lm_eval", "acc_norm,none") as Double, accuracy: 1e-12)
                XCTAssertEqual(report.accNormStderr ?? .nan, try meta.get("metrics_lm_eval", "acc_norm_stderr,none") as Double, accuracy: 1e-12)
            }
        }
    }

    /// The whole path (requests → encodePair → scorer → decision → report) with a scorer replaying lm-eval's numbers.
    func testEvaluateEndToEndWithReplayedScores() throws {
        let root = try Shared.url("data")
        for task in [ZeroShotTask.hellaswag, .winogrande, .boolq] {
            let (meta, stored) = try fixture(task)
            let scorer = StoredScorer()
            for s in stored {
                let contexts: [String] = try s.get("contexts"), continuations: [String] = try s.get("continuations")
                let loglik: [Double] = try s.get("loglik")
                for i in contexts.indices { scorer.table[scorer.key(contexts[i], continuations[i])] = loglik[i] }
            }
            var calls = 0
            let report = try ZeroShot.evaluate(task: task, examples: try task.load(dataRoot: root, limit: 50), scorer: scorer,
                                               encode: codePoints) { done, total in calls += 1; XCTAssertEqual(total, 50) }
            XCTAssertEqual(calls, 50)
            XCTAssertEqual(report.examples, 50)
            XCTAssertEqual(report.acc, try meta.get("acc_recomputed") as Double, accuracy: 1e-12)
            XCTAssertEqual(report.accNorm, try meta.get("acc_norm_recomputed_char_len") as Double, accuracy: 1e-12)
            XCTAssertEqual(report.results?.first?.continuationTokens,
                           (try stored[0].get("continuations") as [String]).map { $0.unicodeScalars.count })
        }
    }

    func testEncodePairMovesTrailingSpacesAndSplitsWholeEncoding() throws {
        // Code-point tokenizer: the split is plain.
        let p = try RequestTokens.encodePair(context: "ab  ", continuation: "c", encode: codePoints)
        XCTAssertEqual(p.context, codePoints("ab"))
        XCTAssertEqual(p.continuation, codePoints("  c"))
        // A tokenizer that merges " c" (id 1000): the continuation comes from encoding the whole string.
        let merging: (String) -> [Int] = { s in
            var out: [Int] = []
            var scalars = Array(s.unicodeScalars)[...]
            while let first = scalars.first {
                if first == " ", scalars.dropFirst().first == "c" { out.append(1000); scalars = scalars.dropFirst(2) } else {
                    out.append(Int(first.value)); scalars = scalars.dropFirst()
                }
            }
            return out
        }
        let q = try RequestTokens.encodePair(context: "ab ", continuation: "cd", encode: merging)
        XCTAssertEqual(q.context, codePoints("ab"))
        XCTAssertEqual(q.continuation, [1000, 100])
        // Empty context: lm-eval's prefix token, continuation encoded alone.
        let e = try RequestTokens.encodePair(context: "", continuation: " x", prefixTokenID: 0, encode: codePoints)
        XCTAssertEqual(e.context, [0])
        XCTAssertEqual(e.continuation, codePoints(" x"))
        XCTAssertThrowsError(try RequestTokens.encodePair(context: "", continuation: "x", encode: codePoints))
    }

    func testDecisionTiesAndStderr() {
        let d = MultipleChoiceDecision(loglik: [-2, -2, -3], choiceLengths: [4, 2, 12], gold: 1)
        XCTAssertEqual(d.chosenAcc, 0)  // first maximum, like np.argmax
        XCTAssertEqual(d.chosenAccNorm, 2)  // -0.5, -1, -0.25
        XCTAssertEqual(d.acc, 0)
        XCTAssertEqual(MultipleChoiceDecision(loglik: [-1, -3], choiceLengths: [2, 6], gold: 0).chosenAccNorm, 0)  // tie → first
        XCTAssertEqual(ZeroShot.meanStderr([1, 0, 1, 0]) ?? 0, (1.0 / 3 / 4).squareRoot(), accuracy: 1e-15)
        XCTAssertNil(ZeroShot.meanStderr([1]))
    }

    /// Whole splits: sizes and label counts from data/*/SOURCE.md.
    func testFullSplitsLoad() throws {
        let root = try Shared.url("data")
        let expected: [ZeroShotTask: (Int, Int)] = [  // (examples, examples whose gold is 0)
            .piqa: (1_838, 910), .winogrande: (1_267, 628), .boolq: (3_270, 1_237),
            .hellaswag: (10_042, -1), .arcEasy: (2_376, -1), .arcChallenge: (1_172, -1), .openbookqa: (500, -1),
        ]
        for task in ZeroShotTask.allCases {
            let start = Date()
            let examples = try task.load(dataRoot: root)
            let (count, gold0) = expected[task]!
            XCTAssertEqual(examples.count, count, task.rawValue)
            if gold0 >= 0 { XCTAssertEqual(examples.filter { $0.gold == 0 }.count, gold0, task.rawValue) }
            XCTAssertTrue(examples.allSatisfy { $0.choices.indices.contains($0.gold) && $0.contexts.count == $0.choices.count })
            print("zeroshot: \(task.rawValue) \(count) examples read in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        }
        // ARC items have 3 to 5 choices (SOURCE.md).
        XCTAssertEqual(Set(try ZeroShotTask.arcEasy.load(dataRoot: root).map(\.choices.count)), [3, 4, 5])
    }

    func testTaskNamesAndHellaSwagPreprocess() throws {
        XCTAssertEqual(try ZeroShotTask(name: "arc_easy"), .arcEasy)
        XCTAssertThrowsError(try ZeroShotTask(name: "mmlu"))
        // Expected strings from Python running lm-eval's `preprocess`.
        XCTAssertEqual(ZeroShotTask.hellaswagPreprocess(" How to x [title] Step one [header]  done. "), "How to x. Step one  done.")
        XCTAssertEqual(ZeroShotTask.hellaswagPreprocess("a [b] [c\n] d]"), "a [c\n] d]")
        XCTAssertEqual(ZeroShotTask.hellaswagPreprocess("a [b\n] c"), "a [b\n] c")  // `.` does not cross a newline
    }
}
