import Essentials
import XCTest
import Foundation
import Corpora
import Evaluation
import Tokenization
import FixtureSupport

/// Corpora + Evaluation with the real tokenizers (Tokenization module), against the fixtures: the calibration
/// recipe's window ids, the TinyStories token stream of the perplexity fixture, and lm-eval's continuation token
/// counts (`n_cont_tokens`). Exact: token ids are integers.
final class TokenizedDataTests: XCTestCase {
    private func stories() throws -> any Tokenizer {
        try TokenizerLoader.llama2c(path: Shared.url("models/stories260K/tok512.bin").path)
    }

    private func smol() throws -> any Tokenizer {
        try TokenizerLoader.huggingFace(tokenizerJSON: Shared.url("fixtures/tokenizers/smollm2-135m-instruct.tokenizer.json").path)
    }

    func testCalibrationWindowsMatchWandaFixture() throws {
        let docs = try Dataset.calibrationDocuments(dataRoot: Shared.url("data"), limit: 8)
        for (name, tokenizer) in [("stories260K", try stories()), ("smollm2-135m", try smol())] {
            let fixture = try Shared.json("fixtures/pruning/wanda_sp_\(name).json.gz")
            let expected: [Any] = try fixture.get("calibration", "window_ids")
            let encode = { (s: String) in tokenizer.encode(s, addSpecialTokens: true) }
            XCTAssertEqual(docs.map { encode($0).count }.reduce(0, +), try fixture.get("calibration", "n_ids_8_docs") as Int, name)
            let windows = try Calibration.firstWindows(documents: docs, encode: encode)
            XCTAssertEqual(windows, expected.map { ($0 as? [NSNumber] ?? []).map(\.intValue) }, name)
        }
    }

    func testTinyStoriesTokenStreamMatchesPerplexityFixture() throws {
        let fixture = try Shared.json("fixtures/perplexity/stories260K_tinystories_w128.json")
        let ids = try stories().encode(Dataset.tinystories.text(dataRoot: Shared.url("data")), addSpecialTokens: true)
        XCTAssertEqual(ids.count, try fixture.get("n_tokens") as Int)
        XCTAssertEqual(Array(ids.prefix(20)), try fixture.get("first20_ids") as [Int])
        XCTAssertEqual(SHA256.hex(ids: ids), try fixture.get("sha256_ids") as String)
        let windows = try EvalWindows(tokens: ids, context: 128)
        XCTAssertEqual(windows.windows.count, try fixture.get("full", "n_windows") as Int)
        XCTAssertEqual(windows.remainderTokens, try fixture.get("full", "tokens_dropped_remainder") as Int)
    }

    func testWikiText2TokenStreamMatchesPerplexityFixture() throws {
        let fixture = try Shared.json("fixtures/perplexity/smollm2-135m_wikitext2_w128.json")
        let ids = try smol().encode(Dataset.wikitext2.text(dataRoot: Shared.url("data")), addSpecialTokens: true)  // no BOS
        XCTAssertEqual(ids.count, try fixture.get("n_tokens") as Int)
        XCTAssertEqual(SHA256.hex(ids: ids), try fixture.get("sha256_ids") as String)
        let windows = try EvalWindows(tokens: ids, context: 128)
        XCTAssertEqual(windows.windows.count, try fixture.get("full", "n_windows") as Int)
        XCTAssertEqual(windows.droppedTokens, try fixture.get("full", "tokens_dropped_remainder") as Int)
    }

    func testContinuationTokenCountsMatchLmEval() throws {
        let tokenizer = try smol()
        let encode = { (s: String) in tokenizer.encode(s, addSpecialTokens: false) }
        let root = try Shared.url("data")
        for task in ZeroShotTask.allCases {
            let fixture = try Shared.json("fixtures/zeroshot/\(task.rawValue).json")
            let stored: [[String: Any]] = try fixture.get("examples")
            for (example, s) in zip(try task.load(dataRoot: root, limit: stored.count), stored) {
                let counts = try zip(example.contexts, example.continuations).map {
                    try RequestTokens.encodePair(context: $0, continuation: $1, encode: encode).continuation.count
                }
                XCTAssertEqual(counts, try s.get("n_cont_tokens") as [Int], "\(task.rawValue) doc \(example.docID)")
            }
        }
    }
}
