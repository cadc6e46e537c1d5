import Essentials
import Foundation
import XCTest
import FixtureSupport
@testable import Tokenization

/// stories260K `tok512.bin` against `stories260K_goldens.json` (fixtures README §1c). Tolerance: exact ids.
final class Llama2cTokenizerTests: XCTestCase {
    func load() throws -> any Tokenizer {
        try TokenizerLoader.llama2c(path: try Shared.url("models/stories260K/tok512.bin").path)
    }

    func testTrickyStringsExact() throws {
        let tok = try load()
        let golden = try Shared.json("fixtures/tokenizers/stories260K_goldens.json")
        let cases = try TokenizerGoldens.tricky(golden)
        XCTAssertEqual(cases.count, 20)
        XCTAssertEqual(tok.vocabularySize, 512)
        for c in cases {
            let text = try c.get("text", as: String.self)
            let expected = try c.get("ids", as: [Int].self)
            let ids = tok.encode(text, addSpecialTokens: true)
            XCTAssertEqual(ids, expected, "\(text.debugDescription): \(TokenizerGoldens.firstDifference(ids, expected))")
            let pieces = try c.get("pieces", as: [String].self)
            XCTAssertEqual(expected.map { tok.piece($0) }, pieces, text.debugDescription)
            if try c.get("decode_roundtrip", as: Bool.self) {
                XCTAssertEqual(tok.decode(ids), text, "round trip of \(text.debugDescription)")
            }
            // Without special tokens: the same minus BOS (run.c encode(bos=0)).
            XCTAssertEqual(tok.encode(text, addSpecialTokens: false), Array(expected.dropFirst()))
        }
        XCTAssertEqual(tok.encode("Once upon a time", addSpecialTokens: true), [1, 403, 407, 261, 378])
    }

    func testEvalTextsExact() throws {
        let tok = try load()
        let golden = try Shared.json("fixtures/tokenizers/stories260K_goldens.json")
        for name in ["general_en.txt", "tinystories_style_1.txt", "tinystories_style_2.txt"] {
            let text = try TokenizerGoldens.evalText(name)
            let expected = try golden.get("eval_texts", name, "ids", as: [Int].self)
            XCTAssertEqual(try golden.get("eval_texts", name, "count", as: Int.self), expected.count)
            let ids = tok.encode(text, addSpecialTokens: true)
            XCTAssertEqual(ids, expected, "\(name): \(TokenizerGoldens.firstDifference(ids, expected))")
        }
    }

    func testTinyStoriesWholeFileExact() throws {
        let tok = try load()
        let golden = try Shared.json("fixtures/tokenizers/stories260K_goldens.json")
        let text = String(decoding: try Shared.data("data/tinystories/TinyStories-validation.head-794375B.txt.gz"), as: UTF8.self)
        let start = Date()
        let ids = tok.encode(text, addSpecialTokens: true)
        let seconds = Date().timeIntervalSince(start)
        print("stories260K: TinyStories \(text.utf8.count) bytes -> \(ids.count) tokens in \(String(format: "%.3f", seconds)) s")
        try checkLong(ids, golden, "tinystories_validation_head_file", expectedCount: 393_019)
    }

    func testWikiTextExact() throws {
        let tok = try load()
        let golden = try Shared.json("fixtures/tokenizers/stories260K_goldens.json")
        try checkLong(tok.encode(try TokenizerGoldens.wikitextJoined(lines: 2000), addSpecialTokens: true), golden,
                      "wikitext2_test_first2000_lines_joined", expectedCount: 388_421)
        try checkLong(tok.encode(try TokenizerGoldens.wikitextJoined(), addSpecialTokens: true), golden,
                      "wikitext2_test_all_lines_joined", expectedCount: 815_070)
    }

    func checkLong(_ ids: [Int], _ golden: [String: Any], _ key: String, expectedCount: Int) throws {
        XCTAssertEqual(try golden.get(key, "count", as: Int.self), expectedCount)
        XCTAssertEqual(ids.count, expectedCount, key)
        let first = try golden.get(key, "first100", as: [Int].self)
        XCTAssertEqual(Array(ids.prefix(100)), first, key)
        XCTAssertEqual(TokenizerGoldens.idsSHA256(ids), try golden.get(key, "sha256_ids", as: String.self), key)
    }

    /// The heap merge must equal run.c's literal O(n²) loop (highest score, strictly greater → leftmost).
    func testHeapMergeEqualsLiteralLoop() throws {
        let tok = try XCTUnwrap(try load() as? Llama2cTokenizer)
        let texts = ["", " ", "Once upon a time", "aaaa bbbb  aaaa", "Hello   world  !", try TokenizerGoldens.evalText("general_en.txt")]
        for text in texts {
            XCTAssertEqual(tok.encode(text, addSpecialTokens: true), literalRunC(tok, text), text.debugDescription)
        }
    }

    func literalRunC(_ tok: Llama2cTokenizer, _ text: String) -> [Int] {
        var tokens = [1]
        let bytes = Array(text.utf8)
        var lookup: [[UInt8]: Int] = [:]
        for i in (0..<tok.vocabularySize).reversed() { lookup[tok.pieces[i]] = i }
        if !bytes.isEmpty, let d = lookup[[0x20]] { tokens.append(d) }
        var buf: [UInt8] = []
        for i in 0..<bytes.count {
            if bytes[i] & 0xC0 != 0x80 { buf = [] }
            buf.append(bytes[i])
            let next: UInt8 = i + 1 < bytes.count ? bytes[i + 1] : 0
            if next & 0xC0 == 0x80 && buf.count < 4 { continue }
            if let id = lookup[buf] { tokens.append(id) } else { tokens += buf.map { Int($0) + 3 } }
            buf = []
        }
        while true {
            var best: Float = -1e10, bestID = -1, bestIndex = -1
            for i in 0..<max(0, tokens.count - 1) {
                if let id = lookup[tok.pieces[tokens[i]] + tok.pieces[tokens[i + 1]]], tok.scores[id] > best {
                    (best, bestID, bestIndex) = (tok.scores[id], id, i)
                }
            }
            if bestIndex < 0 { break }
            tokens[bestIndex] = bestID
            tokens.remove(at: bestIndex + 1)
        }
        return tokens
    }

    func testTruncatedFileIsTypedError() throws {
        let data = try Data(contentsOf: try Shared.url("models/stories260K/tok512.bin"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cut = dir.appendingPathComponent("tok512-truncated.bin")
        try data.prefix(data.count - 3).write(to: cut)
        XCTAssertThrowsError(try TokenizerLoader.llama2c(path: cut.path)) { error in
            guard case TokenizerError.truncated(let file, let field, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, cut.path)
            XCTAssertTrue(field.contains("token 511"), field)
        }
        let header = dir.appendingPathComponent("tok512-header.bin")
        try data.prefix(2).write(to: header)
        XCTAssertThrowsError(try TokenizerLoader.llama2c(path: header.path)) { error in
            XCTAssertTrue("\(error)".contains("max_token_length"), "\(error)")
        }
        XCTAssertThrowsError(try TokenizerLoader.llama2c(path: try Shared.url("models/stories260K/tok512.bin").path, vocabularySize: 600)) { error in
            XCTAssertTrue("\(error)".contains("token 512"), "\(error)")
        }
    }
}
