import Foundation
import XCTest
import Checkpoints
import FixtureSupport
@testable import Tokenization

/// llama.cpp's own tokenizer test vectors (fixtures README §1a): every case of every file, mode
/// `add_special=false, parse_special=false`. Tolerance: exact ids.
final class LlamaCppVocabTests: XCTestCase {
    /// Splits `.inp` on the separator (a trailing separator makes no extra case) and `.out` into id lists.
    static func cases(_ vocab: String) throws -> [(String, [Int])] {
        let inp = String(decoding: try Shared.data("fixtures/tokenizers/ggml-vocab-\(vocab).gguf.inp"), as: UTF8.self)
        let out = String(decoding: try Shared.data("fixtures/tokenizers/ggml-vocab-\(vocab).gguf.out"), as: UTF8.self)
        var texts = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if inp.hasSuffix("\n__ggml_vocab_test__\n") { texts.removeLast() }
        var lines = out.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        XCTAssertEqual(texts.count, 46, vocab)
        XCTAssertEqual(texts.count, lines.count, vocab)
        return zip(texts, lines).map { text, line in
            (text, line.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) })
        }
    }

    func check(_ vocab: String, roundTrip: Bool) throws {
        let file = try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-\(vocab).gguf").path)
        let tok = try TokenizerLoader.gguf(file)
        var failures = 0
        for (k, (text, expected)) in try Self.cases(vocab).enumerated() {
            let ids = tok.encode(text, addSpecialTokens: false)
            if ids != expected {
                failures += 1
                XCTFail("\(vocab) case \(k) \(text.debugDescription): got \(ids), expected \(expected)")
            }
            // llama.cpp's test also detokenizes; SentencePiece loses nothing on these strings and neither
            // does byte-level BPE.
            if roundTrip { XCTAssertEqual(tok.decode(ids), text, "\(vocab) case \(k) round trip") }
        }
        XCTAssertEqual(failures, 0, vocab)
    }

    func testLlamaSPM() throws { try check("llama-spm", roundTrip: true) }
    func testPhi3() throws { try check("phi-3", roundTrip: true) }
    func testLlamaBPE() throws { try check("llama-bpe", roundTrip: true) }
    func testGPT2() throws { try check("gpt-2", roundTrip: true) }
    func testQwen2() throws { try check("qwen2", roundTrip: true) }

    func testSpecialRules() throws {
        let spm = try TokenizerLoader.gguf(try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-llama-spm.gguf").path))
        XCTAssertEqual(spm.bosTokenID, 1)
        XCTAssertEqual(spm.eosTokenID, 2)
        XCTAssertTrue(spm.addsBOS)
        XCTAssertFalse(spm.addsEOS)
        XCTAssertEqual(spm.encode("", addSpecialTokens: true), [1])
        XCTAssertEqual(spm.encode(" ", addSpecialTokens: true), [1, 259])
        // "<s>" as text is not the BOS id unless special tokens are parsed.
        XCTAssertFalse(spm.encode("<s>hi", addSpecialTokens: false).contains(1))
        XCTAssertEqual(spm.encode("<s>hi", addSpecialTokens: false, parseSpecial: true).first, 1)
        let gpt2 = try TokenizerLoader.gguf(try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-gpt-2.gguf").path))
        XCTAssertEqual(gpt2.encode("<|endoftext|>", addSpecialTokens: false, parseSpecial: true), [50256])
        XCTAssertNotEqual(gpt2.encode("<|endoftext|>", addSpecialTokens: false), [50256])
        XCTAssertEqual(gpt2.specialTokenIDs, [50256])
    }

    /// A SentencePiece GGUF without `tokenizer.ggml.bos_token_id` (what convert_hf_to_gguf.py writes for a folder
    /// whose config names no special tokens; here the tiny qwen2 family fixture) gets llama.cpp's defaults
    /// (llama-vocab.cpp: BOS 1, EOS 2, UNK 0) and, with no `add_bos_token` key, adds BOS as llama.cpp does: the
    /// token ids llama-perplexity wrote for this file (`--kl-divergence-base`) start with 1.
    func testSentencePieceDefaultsWithoutSpecialIDs() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../TransformerTests/Fixtures/families/qwen2.gguf").standardizedFileURL.path
        let file = try GGUFFile(path: path)
        XCTAssertNil(file.metadata["tokenizer.ggml.bos_token_id"], "the fixture has no BOS key")
        let tok = try TokenizerLoader.gguf(file)
        XCTAssertEqual(tok.bosTokenID, 1)
        XCTAssertTrue(tok.addsBOS)
        XCTAssertEqual(tok.encode("the model", addSpecialTokens: true).first, 1)
        XCTAssertNotEqual(tok.encode("the model", addSpecialTokens: false).first, 1)
    }
}
