import Foundation
import XCTest
import Checkpoints
import FixtureSupport
@testable import Tokenization

/// The SentencePiece path of tokenizer.json (Prepend/Replace normalizer or Metaspace pre-tokenizer, BPE with
/// byte_fallback and fuse_unk, the Replace/ByteFallback/Fuse/Strip decoder, TemplateProcessing BOS), checked
/// against llama.cpp's llama-spm vectors. The tokenizer.json is made in the test from the GGUF vocab the way
/// HF's converter does: merges are every split of a token into two tokens, ordered by the merged token's score.
/// Tolerance: exact ids.
final class SentencePieceJSONTests: XCTestCase {
    func makeJSON(metaspace: Bool) throws -> String {
        let file = try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-llama-spm.gguf").path)
        let tokens = try XCTUnwrap(file.metadata["tokenizer.ggml.tokens"]?.strings)
        let scores = try XCTUnwrap(file.metadata["tokenizer.ggml.scores"]?.floats)
        let types = try XCTUnwrap(file.metadata["tokenizer.ggml.token_type"]?.ints)
        var ids: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where types[i] == 1 { ids[t] = i }
        var merges: [(Float, Int, String, String)] = []
        for (t, m) in ids {
            let s = Array(t.unicodeScalars)
            for k in 1..<max(1, s.count) {
                let l = String(String.UnicodeScalarView(s[..<k])), r = String(String.UnicodeScalarView(s[k...]))
                if ids[l] != nil && ids[r] != nil { merges.append((scores[m], m, l, r)) }
            }
        }
        merges.sort { ($0.0, -$0.1) > ($1.0, -$1.1) }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let decoder: [String: Any] = ["type": "Sequence", "decoders": [
            ["type": "Replace", "pattern": ["String": "▁"], "content": " "], ["type": "ByteFallback"], ["type": "Fuse"],
            ["type": "Strip", "content": " ", "start": 1, "stop": 0]]]
        var root: [String: Any] = [
            "model": ["type": "BPE", "vocab": vocab, "merges": merges.map { "\($0.2) \($0.3)" }, "byte_fallback": true,
                      "fuse_unk": true, "unk_token": "<unk>", "ignore_merges": false],
            "added_tokens": [0, 1, 2].map { ["id": $0, "content": tokens[$0], "special": true, "lstrip": false, "rstrip": false, "normalized": false] },
            "post_processor": ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                               "special_tokens": ["<s>": ["id": "<s>", "ids": [1], "tokens": ["<s>"]]]],
            "decoder": decoder,
        ]
        if metaspace {
            root["pre_tokenizer"] = ["type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false]
        } else {
            root["normalizer"] = ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"], ["type": "Replace", "pattern": ["String": " "], "content": "▁"]]]
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pp-spm-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        return url.path
    }

    func check(metaspace: Bool) throws {
        let path = try makeJSON(metaspace: metaspace)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tok = try TokenizerLoader.huggingFace(tokenizerJSON: path)
        XCTAssertTrue(tok.addsBOS)
        XCTAssertEqual(tok.bosTokenID, 1)
        XCTAssertEqual(tok.eosTokenID, 2)
        let gguf = try TokenizerLoader.gguf(try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-llama-spm.gguf").path))
        for (k, (text, llamaCpp)) in try LlamaCppVocabTests.cases("llama-spm").enumerated() {
            // Prepend adds "▁" to any non-empty text, exactly like llama.cpp. HF Metaspace adds it only when the
            // text does not already start with "▁" (metaspace.rs), so " x" encodes like llama.cpp's "x".
            let leadingSpace = text.hasPrefix(" ")
            var expected = metaspace && leadingSpace ? gguf.encode(String(text.dropFirst()), addSpecialTokens: false) : llamaCpp
            if metaspace && text == " " { expected = [29871] }  // "▁" alone
            let ids = tok.encode(text, addSpecialTokens: false)
            XCTAssertEqual(ids, expected, "case \(k) \(text.debugDescription)")
            XCTAssertEqual(tok.encode(text, addSpecialTokens: true), [1] + expected, "case \(k) with BOS")
            XCTAssertEqual(tok.decode([1] + ids), metaspace && leadingSpace ? String(text.dropFirst()) : text, "case \(k) round trip")
        }
    }

    func testPrependReplaceNormalizer() throws { try check(metaspace: false) }
    func testMetaspacePreTokenizer() throws { try check(metaspace: true) }
}
