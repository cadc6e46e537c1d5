import Checkpoints
import FixtureSupport
import Foundation
import Tokenization
import XCTest

/// Issue 14 item 3: an `hf` export of a GGUF source is complete. SmolLM2 (GGUF, byte-level BPE) is exported with
/// its tokenizer converted; the folder, loaded back by `CheckpointLoader` / `TokenizerLoader`, tokenizes like the
/// GGUF; and `policyprune export` + `policyprune eval ppl` on the folder reproduce the GGUF's perplexity.
/// Tolerances: exact ids; perplexity 1e-4 relative, as `CLITests` holds the GGUF itself to the fixture.
final class GGUFToHuggingFaceTests: XCTestCase {
    static let smolPath = "models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The eval texts and the `.inp` strings of every llama.cpp vocab fixture (fixtures README §1a split rule).
    static func texts() throws -> [(name: String, text: String)] {
        var out: [(String, String)] = []
        for name in ["general_en.txt", "tinystories_style_1.txt", "tinystories_style_2.txt"] {
            out.append((name, String(decoding: try Shared.data("models/eval_texts/\(name)"), as: UTF8.self)))
        }
        let separator = "\n__ggml_vocab_test__\n"
        for vocab in ["llama-spm", "phi-3", "llama-bpe", "gpt-2", "qwen2"] {
            let inp = String(decoding: try Shared.data("fixtures/tokenizers/ggml-vocab-\(vocab).gguf.inp"), as: UTF8.self)
            var parts = inp.components(separatedBy: separator)
            if inp.hasSuffix(separator) { parts.removeLast() }
            out += parts.enumerated().map { ("\(vocab)#\($0.offset)", $0.element) }
        }
        return out
    }

    /// Exported in-process (f16, no plan), loaded back as a Hugging Face folder: tokenizer.json is the tokenizer
    /// the loader finds, and it gives the GGUF tokenizer's ids with and without the BOS/EOS rule.
    func testExportedFolderTokenizesLikeTheGGUF() throws {
        let m = try Models.smol()
        let folder = try temporaryFolder(self) + "/smol-hf"
        let files = try HuggingFaceTokenizerExport.files(for: m.checkpoint.tokenizer)
        let result = try ModelExporter.export(ExportRequest(config: m.model.config, weights: m.model.weights, format: .hf, dtype: .f16,
                                                            tokenizer: m.checkpoint.tokenizer, name: "smol", tokenizerFiles: files),
                                              to: folder, force: false)
        XCTAssertEqual(result.files.map(\.name), ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"])
        XCTAssertFalse(result.notes.contains { $0.contains("tokenizer") }, "\(result.notes)")

        let loaded = try CheckpointLoader.load(path: folder)
        guard case .huggingFaceJSON(let json) = loaded.tokenizer else { return XCTFail("tokenizer source \(loaded.tokenizer)") }
        XCTAssertEqual((json as NSString).lastPathComponent, "tokenizer.json")
        XCTAssertEqual(loaded.config.vocabSize, 49_152)
        let exported = try TokenizerLoader.load(loaded.tokenizer)
        let gguf = try TokenizerLoader.load(m.checkpoint.tokenizer)
        XCTAssertEqual(exported.bosTokenID, gguf.bosTokenID)
        XCTAssertEqual(exported.eosTokenID, gguf.eosTokenID)
        XCTAssertEqual(exported.addsBOS, gguf.addsBOS)
        var identical = 0
        let texts = try Self.texts()
        for (name, text) in texts {
            let a = exported.encode(text, addSpecialTokens: false), b = gguf.encode(text, addSpecialTokens: false)
            XCTAssertEqual(a, b, "\(name) \(text.prefix(60).debugDescription)")
            XCTAssertEqual(exported.encode(text, addSpecialTokens: true), gguf.encode(text, addSpecialTokens: true), name)
            if a == b { identical += 1 }
        }
        print("SmolLM2 hf export: \(identical)/\(texts.count) texts give the GGUF tokenizer's ids")
        XCTAssertEqual(identical, 3 + 5 * 46)
    }

    /// Without converted files a GGUF source still leaves a note, not a silent gap.
    func testUnconvertedGGUFTokenizerIsNoted() throws {
        let m = try Models.smol()
        let folder = try temporaryFolder(self) + "/smol-hf"
        let result = try ModelExporter.export(ExportRequest(config: m.model.config, weights: m.model.weights, format: .hf, dtype: .bf16,
                                                            tokenizer: m.checkpoint.tokenizer, name: "smol"), to: folder, force: false)
        XCTAssertFalse(result.files.contains { $0.name == "tokenizer.json" })
        XCTAssertTrue(result.notes.contains { $0.contains("not converted to tokenizer.json") }, "\(result.notes)")
    }

    /// The CLI path end to end: `export --format hf` writes the tokenizer files, and `eval ppl --model FOLDER`
    /// tokenizes all of WikiText-2 to the GGUF's 304,978 tokens and gives the GGUF's perplexity (f32 export:
    /// the dequantised weights unchanged) on the first two windows.
    func testCLIExportThenPerplexity() throws {
        let folder = try temporaryFolder(self) + "/smol-hf-f32"
        let model = try Shared.url(Self.smolPath).path
        let export = try Shared.run(["export", "--model", model, "--format", "hf", "--dtype", "f32", "--out", folder])
        XCTAssertEqual(export.status, 0, export.stderr)
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            XCTAssertTrue(export.stdout.contains(name), "export lists \(name): \(export.stdout)")
        }
        XCTAssertFalse(export.stderr.contains("tokenizer"), export.stderr)

        let windows = 2
        let run = try Shared.run(["eval", "ppl", "--model", folder, "--data", "wikitext2", "--limit-windows", "\(windows)", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let report = try XCTUnwrap(json["report"] as? [String: Any])
        XCTAssertEqual(report["n_tokens"] as? Int, 304_978)
        let perWindow: [Double] = try Shared.json("fixtures/perplexity/smollm2-135m_wikitext2_w128.json").get("full", "window_mean_nll")
        let expected = exp(perWindow.prefix(windows).reduce(0, +) / Double(windows))
        XCTAssertEqual(try XCTUnwrap(report["ppl_window_mean"] as? Double), expected, accuracy: 1e-4 * expected)
    }
}
