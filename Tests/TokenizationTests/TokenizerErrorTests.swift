import Foundation
import XCTest
import Checkpoints
import FixtureSupport
@testable import Tokenization

/// Damaged and unsupported tokenizer files give typed errors that name the file and the field.
final class TokenizerErrorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-tokerr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A GGUF v3 file with no tensors and the given metadata (strings, string arrays, int32s).
    func writeGGUF(_ name: String, _ kv: [(String, Any)]) throws -> String {
        var b: [UInt8] = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); b += Array(s.utf8) }
        u32(3); u64(0); u64(UInt64(kv.count))
        for (key, value) in kv {
            str(key)
            switch value {
            case let s as String: u32(8); str(s)
            case let a as [String]: u32(9); u32(8); u64(UInt64(a.count)); a.forEach(str)
            case let i as Int: u32(5); u32(UInt32(bitPattern: Int32(i)))
            default: XCTFail("unsupported test value \(value)")
            }
        }
        let url = dir.appendingPathComponent(name)
        try Data(b).write(to: url)
        return url.path
    }

    func field(of error: Error) -> String? {
        switch error as? TokenizerError {
        case .missingField(_, let f)?, .unsupported(_, let f, _)?, .badValue(_, let f, _, _)?, .truncated(_, let f, _, _, _)?: return f
        default: return nil
        }
    }

    func testGGUFWithoutTokenizerKeys() throws {
        let path = try writeGGUF("no-tokenizer.gguf", [("general.architecture", "llama")])
        XCTAssertThrowsError(try TokenizerLoader.gguf(try GGUFFile(path: path))) { e in
            XCTAssertEqual(self.field(of: e), "tokenizer.ggml.model", "\(e)")
            XCTAssertTrue("\(e)".contains(path), "\(e)")
        }
    }

    func testGGUFUnknownModelAndPreTokenizer() throws {
        let tokens = ["a", "b", "ab"]
        let bert = try writeGGUF("bert.gguf", [("tokenizer.ggml.model", "bert"), ("tokenizer.ggml.tokens", tokens)])
        XCTAssertThrowsError(try TokenizerLoader.gguf(try GGUFFile(path: bert))) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(file: bert, field: "tokenizer.ggml.model", value: "bert"))
        }
        let pre = try writeGGUF("pre.gguf", [("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.tokens", tokens),
                                             ("tokenizer.ggml.merges", ["a b"]), ("tokenizer.ggml.pre", "no-such-pre")])
        XCTAssertThrowsError(try TokenizerLoader.gguf(try GGUFFile(path: pre))) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(file: pre, field: "tokenizer.ggml.pre", value: "no-such-pre"))
        }
        let noMerges = try writeGGUF("nomerges.gguf", [("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.tokens", tokens)])
        XCTAssertThrowsError(try TokenizerLoader.gguf(try GGUFFile(path: noMerges))) { e in
            XCTAssertEqual(self.field(of: e), "tokenizer.ggml.merges", "\(e)")
        }
        let badBOS = try writeGGUF("bos.gguf", [("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.tokens", tokens),
                                                ("tokenizer.ggml.merges", ["a b"]), ("tokenizer.ggml.pre", "gpt-2"),
                                                ("tokenizer.ggml.bos_token_id", 99)])
        XCTAssertThrowsError(try TokenizerLoader.gguf(try GGUFFile(path: badBOS))) { e in
            XCTAssertEqual(self.field(of: e), "tokenizer.ggml.bos_token_id", "\(e)")
        }
        // A tiny valid one: "ab" merges, the gpt-2 pattern splits " ab" as one piece.
        let ok = try writeGGUF("ok.gguf", [("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.tokens", tokens + ["Ġ", "Ġab"]),
                                           ("tokenizer.ggml.merges", ["a b", "Ġ ab"]), ("tokenizer.ggml.pre", "gpt-2")])
        let tok = try TokenizerLoader.gguf(try GGUFFile(path: ok))
        XCTAssertEqual(tok.encode("ab ab", addSpecialTokens: true), [2, 4])
        XCTAssertEqual(tok.decode([2, 4]), "ab ab")
    }

    /// The SmolLM2 tokenizer.json with one field changed.
    func damagedJSON(_ name: String, _ change: (inout [String: Any]) -> Void) throws -> String {
        var root = try Shared.json("fixtures/tokenizers/smollm2-135m-instruct.tokenizer.json")
        change(&root)
        let url = dir.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        return url.path
    }

    func testTokenizerJSONUnknownTypes() throws {
        let wordPiece = try damagedJSON("wordpiece.json") { r in
            var m = r["model"] as? [String: Any] ?? [:]; m["type"] = "WordPiece"; r["model"] = m
        }
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: wordPiece)) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(file: wordPiece, field: "model.type", value: "WordPiece"))
        }
        let pre = try damagedJSON("pre.json") { r in
            r["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], ["type": "BertPreTokenizer"]]]
        }
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: pre)) { e in
            XCTAssertEqual(e as? TokenizerError, .unsupported(file: pre, field: "pre_tokenizer.pretokenizers[1].type", value: "BertPreTokenizer"))
        }
        let regex = try damagedJSON("regex.json") { r in
            r["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "[a-z]+"], "behavior": "Isolated", "invert": false]
        }
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: regex)) { e in
            XCTAssertEqual(self.field(of: e), "pre_tokenizer.pattern", "\(e)")
        }
        let normalizer = try damagedJSON("norm.json") { r in r["normalizer"] = ["type": "BertNormalizer"] }
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: normalizer)) { e in
            XCTAssertEqual(self.field(of: e), "normalizer.type", "\(e)")
        }
        let noVocab = try damagedJSON("novocab.json") { r in
            var m = r["model"] as? [String: Any] ?? [:]; m["vocab"] = nil; r["model"] = m
        }
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: noVocab)) { e in
            XCTAssertEqual(self.field(of: e), "model.vocab", "\(e)")
        }
        let notJSON = dir.appendingPathComponent("broken.json")
        try Data("{\"model\": ".utf8).write(to: notJSON)
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: notJSON.path)) { e in
            guard case .unreadable(let f, _)? = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, notJSON.path)
        }
    }

    func testNoTokenizerSource() {
        XCTAssertThrowsError(try TokenizerLoader.load(.none)) { e in XCTAssertNotNil(e as? TokenizerError) }
    }
}
