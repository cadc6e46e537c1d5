import Essentials
import XCTest
import Corpora

final class WindowsTests: XCTestCase {
    func testNonOverlappingWindowsDropRemainder() throws {
        let w = try EvalWindows(tokens: Array(0..<10), context: 3)
        XCTAssertEqual(w.windows, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
        XCTAssertEqual(w.remainderTokens, 1)
        XCTAssertEqual(w.tokensUsed, 9)
        XCTAssertEqual(w.predictedTokens, 6)
        XCTAssertEqual(w.droppedTokens, 1)
        let limited = try EvalWindows(tokens: Array(0..<10), context: 3, limit: 2)
        XCTAssertEqual(limited.windows, [[0, 1, 2], [3, 4, 5]])
        XCTAssertEqual(limited.droppedTokens, 4)
        XCTAssertEqual(limited.remainderTokens, 1)
        // The fixture's counts: stories260K TinyStories, 393,019 tokens, W = 128.
        let big = try EvalWindows(tokens: [Int](repeating: 0, count: 393_019), context: 128)
        XCTAssertEqual(big.windows.count, 3_070)
        XCTAssertEqual(big.remainderTokens, 59)
        XCTAssertEqual(big.predictedTokens, 389_890)
    }

    func testWindowErrors() {
        XCTAssertThrowsError(try EvalWindows(tokens: [1, 2], context: 3, source: "x")) {
            XCTAssertEqual($0 as? CorpusError, .tooShort(file: "x", tokens: 2, needed: 3))
        }
        XCTAssertThrowsError(try EvalWindows(tokens: [1, 2], context: 1))
        XCTAssertThrowsError(try EvalWindows(tokens: [1, 2], context: 2, limit: 0))
    }

    func testSplitMix64ReferenceStream() {
        // Reference values of Vigna's splitmix64.c for seed 1234567.
        var rng = SplitMix64(seed: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in rng.next() },
                       [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                        4_593_380_528_125_082_431, 16_408_922_859_458_223_821])
        var r = SplitMix64(seed: 7)
        for bound in [1, 2, 3, 10, 1000] { for _ in 0..<100 { XCTAssertTrue((0..<bound).contains(r.uniform(below: bound))) } }
    }

    /// A stand-in tokenizer: BOS (1) then one id per UTF-8 byte (+ 3, like llama2.c byte tokens).
    private func encode(_ s: String) -> [Int] { [1] + s.utf8.map { Int($0) + 3 } }

    func testFixtureCalibrationRecipe() throws {
        let docs = ["abc", String(repeating: "x", count: 1_000), "tail", "more", "e", "f", "g", "h", "ignored"]
        let windows = try Calibration.firstWindows(documents: docs, windows: 2, length: 5, encode: encode)
        XCTAssertEqual(windows, [[1, 100, 101, 102, 1], [123, 123, 123, 123, 123]])
        XCTAssertThrowsError(try Calibration.firstWindows(documents: ["ab"], encode: encode))
    }

    func testSeededSampleIsDeterministicAndFromBlocks() throws {
        let docs = (0..<50).map { "document number \($0) " + String(repeating: "w", count: $0) }
        let blocks = try Calibration.blocks(documents: docs, length: 16, documentsPerGroup: 20, encode: encode)
        // Each group of 20 documents is concatenated and cut separately: its remainder is dropped.
        var expected = 0
        for g in stride(from: 0, to: 50, by: 20) {
            expected += docs[g..<min(g + 20, 50)].map { encode($0).count }.reduce(0, +) / 16
        }
        XCTAssertEqual(blocks.count, expected)
        let a = try Calibration.sample(documents: docs, count: 10, length: 16, seed: 42, documentsPerGroup: 20, encode: encode)
        let b = try Calibration.sample(documents: docs, count: 10, length: 16, seed: 42, documentsPerGroup: 20, encode: encode)
        let c = try Calibration.sample(documents: docs, count: 10, length: 16, seed: 43, documentsPerGroup: 20, encode: encode)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertTrue(a.allSatisfy { blocks.contains($0) && $0.count == 16 })
        XCTAssertThrowsError(try Calibration.sample(documents: docs, count: blocks.count + 1, length: 16, seed: 1,
                                                    documentsPerGroup: 20, encode: encode))
    }
}
