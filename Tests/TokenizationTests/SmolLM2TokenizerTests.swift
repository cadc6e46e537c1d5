import Essentials
import Foundation
import XCTest
import Checkpoints
import FixtureSupport
@testable import Tokenization

/// SmolLM2 byte-level BPE (`smollm` pre-tokenizer) from the GGUF and from tokenizer.json against
/// `smollm2_goldens.json` (fixtures README §1b). Tolerance: exact ids.
final class SmolLM2TokenizerTests: XCTestCase {
    static func gguf() throws -> any Tokenizer {
        try TokenizerLoader.gguf(try GGUFFile(path: try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path))
    }
    static func huggingFace() throws -> any Tokenizer {
        try TokenizerLoader.huggingFace(tokenizerJSON: try Shared.url("fixtures/tokenizers/smollm2-135m-instruct.tokenizer.json").path)
    }

    func checkTricky(_ tok: any Tokenizer, _ name: String) throws {
        let golden = try Shared.json("fixtures/tokenizers/smollm2_goldens.json")
        let cases = try TokenizerGoldens.tricky(golden)
        XCTAssertEqual(cases.count, 20)
        for c in cases {
            let text = try c.get("text", as: String.self)
            let asText = try c.get("ids_special_as_text", as: [Int].self)
            let parsed = try c.get("ids", as: [Int].self)
            // add_bos_token = false: addSpecialTokens changes nothing.
            for add in [false, true] {
                let ids = tok.encode(text, addSpecialTokens: add)
                XCTAssertEqual(ids, asText, "\(name) \(text.debugDescription): \(TokenizerGoldens.firstDifference(ids, asText))")
            }
            XCTAssertEqual(tok.encode(text, addSpecialTokens: false, parseSpecial: true), parsed, "\(name) parsed \(text.debugDescription)")
            XCTAssertEqual(parsed.map { tok.piece($0) }, try c.get("tokens", as: [String].self), name)
            if try c.get("decode_roundtrip", as: Bool.self) {
                XCTAssertEqual(tok.decode(parsed), text, "\(name) round trip \(text.debugDescription)")
                XCTAssertEqual(tok.decode(asText), text, "\(name) round trip (special as text) \(text.debugDescription)")
            }
        }
        XCTAssertFalse(tok.addsBOS)
        XCTAssertEqual(tok.vocabularySize, 49_152)
    }

    func checkEvalTexts(_ tok: any Tokenizer, _ name: String) throws {
        let golden = try Shared.json("fixtures/tokenizers/smollm2_goldens.json")
        for file in ["general_en.txt", "tinystories_style_1.txt", "tinystories_style_2.txt"] {
            let expected = try golden.get("eval_texts", file, "ids", as: [Int].self)
            let ids = tok.encode(try TokenizerGoldens.evalText(file), addSpecialTokens: true)
            XCTAssertEqual(ids, expected, "\(name) \(file): \(TokenizerGoldens.firstDifference(ids, expected))")
        }
    }

    func checkWikiText(_ tok: any Tokenizer, _ name: String) throws {
        let golden = try Shared.json("fixtures/tokenizers/smollm2_goldens.json")
        for (key, lines, count) in [("wikitext2_test_first2000_lines_joined", 2000 as Int?, 147_098), ("wikitext2_test_all_lines_joined", nil, 304_978)] {
            let text = try TokenizerGoldens.wikitextJoined(lines: lines)
            let start = Date()
            let ids = tok.encode(text, addSpecialTokens: true)
            let seconds = Date().timeIntervalSince(start)
            print("\(name) \(key): \(text.unicodeScalars.count) chars, \(text.utf8.count) bytes -> \(ids.count) tokens in \(String(format: "%.3f", seconds)) s (\(String(format: "%.2f", Double(text.utf8.count) / seconds / 1e6)) MB/s)")
            XCTAssertEqual(try golden.get(key, "count", as: Int.self), count)
            XCTAssertEqual(ids.count, count, "\(name) \(key)")
            XCTAssertEqual(Array(ids.prefix(100)), try golden.get(key, "first100", as: [Int].self), "\(name) \(key)")
            XCTAssertEqual(TokenizerGoldens.idsSHA256(ids), try golden.get(key, "sha256_ids", as: String.self), "\(name) \(key)")
        }
    }

    func testGGUFTricky() throws { try checkTricky(try Self.gguf(), "gguf") }
    func testHuggingFaceTricky() throws { try checkTricky(try Self.huggingFace(), "tokenizer.json") }
    func testGGUFEvalTexts() throws { try checkEvalTexts(try Self.gguf(), "gguf") }
    func testHuggingFaceEvalTexts() throws { try checkEvalTexts(try Self.huggingFace(), "tokenizer.json") }
    func testGGUFWikiText() throws { try checkWikiText(try Self.gguf(), "gguf") }
    func testHuggingFaceWikiText() throws { try checkWikiText(try Self.huggingFace(), "tokenizer.json") }

    func testSpecialIDs() throws {
        let tok = try Self.gguf()
        XCTAssertEqual(tok.specialTokenIDs.count, 17)
        XCTAssertEqual(tok.encode("<|im_start|>", addSpecialTokens: false, parseSpecial: true), [1])
    }
}
