import Essentials
import Foundation
import XCTest
import Checkpoints
import FixtureSupport
@testable import Tokenization

/// Issue 14 item 3: the tokenizer.json written from a GGUF tokenizer (`HuggingFaceTokenizerExport`) tokenizes
/// like the GGUF tokenizer. Each GGUF is converted, the files are read back with our own tokenizer.json loader,
/// and both tokenizers encode the same texts in every mode (no specials; the BOS/EOS rule; special-token text
/// parsed) and decode the ids alike. Tolerance: exact ids. (The check against transformers itself is
/// `HuggingFaceReferenceTests` in ExportTests, with Python.)
final class HuggingFaceTokenizerExportTests: XCTestCase {
    static let vocabs = ["llama-spm", "phi-3", "llama-bpe", "gpt-2", "qwen2"]
    static let smolPath = "models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The converted files of `gguf`, written to a fresh folder, and our tokenizer read back from them.
    func exported(_ gguf: GGUFFile) throws -> (folder: URL, tokenizer: any Tokenizer) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pp-tokexport-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let files = try HuggingFaceTokenizerExport.files(from: gguf)
        XCTAssertEqual(files.keys.sorted(), ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"])
        for (name, data) in files { try data.write(to: folder.appendingPathComponent(name)) }
        return (folder, try TokenizerLoader.huggingFace(tokenizerJSON: folder.appendingPathComponent("tokenizer.json").path))
    }

    /// Every text in the three encode modes and the decode of each result; returns the number of texts whose
    /// ids all agree.
    @discardableResult
    func compare(_ exported: any Tokenizer, _ gguf: any Tokenizer, _ texts: [(name: String, text: String)], _ label: String) -> Int {
        XCTAssertEqual(exported.vocabularySize, gguf.vocabularySize, label)
        XCTAssertEqual(exported.bosTokenID, gguf.bosTokenID, "\(label) BOS")
        XCTAssertEqual(exported.eosTokenID, gguf.eosTokenID, "\(label) EOS")
        XCTAssertEqual(exported.unknownTokenID, gguf.unknownTokenID, "\(label) unknown")
        XCTAssertEqual(exported.addsBOS, gguf.addsBOS, "\(label) adds BOS")
        XCTAssertEqual(exported.addsEOS, gguf.addsEOS, "\(label) adds EOS")
        var identical = 0
        for (name, text) in texts {
            var same = true
            for (add, parse) in [(false, false), (true, false), (false, true)] {
                let a = exported.encode(text, addSpecialTokens: add, parseSpecial: parse)
                let b = gguf.encode(text, addSpecialTokens: add, parseSpecial: parse)
                if a != b {
                    same = false
                    XCTFail("\(label) \(name) add=\(add) parse=\(parse) \(text.prefix(60).debugDescription): \(TokenizerGoldens.firstDifference(a, b))")
                }
                XCTAssertEqual(exported.decode(b), gguf.decode(b), "\(label) \(name) decode")
            }
            if same { identical += 1 }
        }
        print("\(label): \(identical)/\(texts.count) texts give identical ids in all three modes")
        return identical
    }

    /// The `.inp` strings of every llama.cpp vocab fixture, named `vocab#k`.
    static func fixtureStrings() throws -> [(name: String, text: String)] {
        try vocabs.flatMap { v in try LlamaCppVocabTests.cases(v).enumerated().map { ("\(v)#\($0.offset)", $0.element.0) } }
    }

    static func evalTexts() throws -> [(name: String, text: String)] {
        try ["general_en.txt", "tinystories_style_1.txt", "tinystories_style_2.txt"].map { ($0, try TokenizerGoldens.evalText($0)) }
    }

    /// Both GGUF tokenizer models (SentencePiece: llama-spm, phi-3; byte-level BPE with the llama-bpe, gpt-2 and
    /// qwen2 pre-tokenizers) on their own llama.cpp test strings, which must also still give llama.cpp's ids.
    func testVocabFixturesRoundTrip() throws {
        for vocab in Self.vocabs {
            let file = try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-\(vocab).gguf").path)
            let gguf = try TokenizerLoader.gguf(file)
            let (_, exported) = try exported(file)
            let cases = try LlamaCppVocabTests.cases(vocab)
            for (k, (text, expected)) in cases.enumerated() {
                XCTAssertEqual(exported.encode(text, addSpecialTokens: false), expected, "\(vocab) case \(k): llama.cpp's ids")
            }
            XCTAssertEqual(compare(exported, gguf, cases.enumerated().map { ("#\($0.offset)", $0.element.0) }, vocab), cases.count, vocab)
            // Specials and their text: the BOS/EOS rule with special-token text in the input.
            let specials = (file.metadata["tokenizer.ggml.tokens"]?.strings ?? []).enumerated()
                .filter { (file.metadata["tokenizer.ggml.token_type"]?.ints ?? [])[$0.offset] == 3 }.prefix(8).map(\.element)
            compare(exported, gguf, specials.map { ("special", "a\($0) b\($0)\($0)c ") }, "\(vocab) specials")
        }
    }

    /// SmolLM2 (byte-level BPE, `smollm` pre-tokenizer): the eval texts, every vocab fixture's strings and the
    /// tricky strings of its goldens.
    func testSmolLM2RoundTrip() throws {
        let file = try GGUFFile(path: try Shared.url(Self.smolPath).path)
        let gguf = try TokenizerLoader.gguf(file)
        let (_, exported) = try exported(file)
        let tricky = try TokenizerGoldens.tricky(try Shared.json("fixtures/tokenizers/smollm2_goldens.json"))
            .map { ("tricky", try $0.get("text", as: String.self)) }
        let texts = try Self.evalTexts() + Self.fixtureStrings() + tricky
        XCTAssertEqual(compare(exported, gguf, texts, "SmolLM2"), texts.count)
    }

    /// The SentencePiece vocabulary on text outside its fixture: eval texts and every other fixture's strings.
    func testSentencePieceOnAllStrings() throws {
        let file = try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-llama-spm.gguf").path)
        let (_, exported) = try exported(file)
        let texts = try Self.evalTexts() + Self.fixtureStrings()
        XCTAssertEqual(compare(exported, try TokenizerLoader.gguf(file), texts, "llama-spm on all strings"), texts.count)
    }

    /// tokenizer_config.json and special_tokens_map.json carry the special tokens by text, the BOS/EOS rule and
    /// the chat template; tokenizer.json holds the pre-tokenizer llama.cpp's `smollm` names.
    func testConfigFiles() throws {
        let file = try GGUFFile(path: try Shared.url(Self.smolPath).path)
        let (folder, _) = try exported(file)
        func object(_ name: String) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(name))) as? [String: Any], name)
        }
        let config = try object("tokenizer_config.json")
        XCTAssertEqual(config["bos_token"] as? String, "<|im_start|>")
        XCTAssertEqual(config["eos_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["unk_token"] as? String, "<|endoftext|>")
        XCTAssertEqual(config["pad_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["add_bos_token"] as? Bool, false)
        XCTAssertEqual(config["add_eos_token"] as? Bool, false)
        XCTAssertEqual(config["tokenizer_class"] as? String, "PreTrainedTokenizerFast")
        XCTAssertEqual(config["model_max_length"] as? Int, 8192)
        XCTAssertEqual(config["chat_template"] as? String, file.metadata["tokenizer.chat_template"]?.string)
        XCTAssertEqual((config["added_tokens_decoder"] as? [String: Any])?.count, 17)
        let map = try object("special_tokens_map.json")
        XCTAssertEqual(map as NSDictionary, ["bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                                             "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"] as NSDictionary)
        let json = try object("tokenizer.json")
        let pre = try XCTUnwrap(json["pre_tokenizer"] as? [String: Any])
        let steps = try XCTUnwrap(pre["pretokenizers"] as? [[String: Any]])
        XCTAssertEqual(steps.map { $0["type"] as? String }, ["Digits", "ByteLevel"])
        XCTAssertEqual(steps[1]["use_regex"] as? Bool, true)
        XCTAssertEqual(steps[1]["add_prefix_space"] as? Bool, false)
        let model = try XCTUnwrap(json["model"] as? [String: Any])
        XCTAssertEqual((model["vocab"] as? [String: Any])?.count, 49_152)
        XCTAssertEqual((model["merges"] as? [Any])?.count, 48_900)
        XCTAssertEqual((json["added_tokens"] as? [Any])?.count, 17)
    }

    /// The SentencePiece conversion: LLaMA's BOS rule as TemplateProcessing, byte fallback, and every token kept,
    /// including the canonically equivalent pairs (U+03AF / U+1F77 and five more) that a Swift dictionary would
    /// fold into one.
    func testSentencePieceFile() throws {
        let file = try GGUFFile(path: try Shared.url("fixtures/tokenizers/ggml-vocab-llama-spm.gguf").path)
        let (folder, tokenizer) = try exported(file)
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: true), [1])
        let data = try Data(contentsOf: folder.appendingPathComponent("tokenizer.json"))
        let bytes = [UInt8](data)
        for text in ["\"\u{03AF}\":30207", "\"\u{1F77}\":30873", "\"byte_fallback\":true", "\"<0x0A>\":13",
                     "{\"type\":\"Prepend\",\"prepend\":\"\u{2581}\"}"] {
            XCTAssertNotNil(bytes.firstRange(of: Array(text.utf8)), "tokenizer.json lacks \(text)")
        }
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let post = try XCTUnwrap(json["post_processor"] as? [String: Any])
        XCTAssertEqual(post["type"] as? String, "TemplateProcessing")
        XCTAssertEqual((try XCTUnwrap(json["model"] as? [String: Any])["merges"] as? [Any])?.isEmpty, false)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("tokenizer_config.json"))) as? [String: Any])
        XCTAssertEqual(config["add_bos_token"] as? Bool, true)
        XCTAssertEqual(config["bos_token"] as? String, "<s>")
    }

    /// Merges come out in score order, each split of a token once, splits only between scalars.
    func testSentencePieceMergeOrder() {
        let tokens = ["a", "b", "ab", "c", "abc", "bc", "\u{00E9}", "a\u{00E9}"]
        let scores: [Float] = [0, 0, -1, 0, -3, -2, 0, -0.5]
        let merges = HuggingFaceTokenizerExport.sentencePieceMerges(tokens, scores: scores, ids: HuggingFaceTokenizerExport.idsByText(tokens))
        XCTAssertEqual(merges.map { "\($0.0) \($0.1)" }, ["a \u{00E9}", "a b", "b c", "a bc", "ab c"])
    }

    /// JSON text: escapes, byte-exact strings, members in the order given.
    func testJSONWriter() {
        let value: JSONWriter = .object([("b", .array([.int(1), .null, .bool(true)])), ("a", .string("q\"\\\n\t\u{01}\u{03AF}"))])
        XCTAssertEqual(String(decoding: value.encoded(pretty: false), as: UTF8.self), "{\"b\":[1,null,true],\"a\":\"q\\\"\\\\\\n\\t\\u0001\u{03AF}\"}")
        XCTAssertEqual(String(decoding: value.encoded(pretty: true), as: UTF8.self), "{\n  \"b\": [1, null, true],\n  \"a\": \"q\\\"\\\\\\n\\t\\u0001\u{03AF}\"\n}\n")
    }

    /// A `tokenizer_config.json` names BOS/EOS for a tokenizer.json whose post-processor adds none.
    func testConfigNamesBOSAndEOS() throws {
        let file = try GGUFFile(path: try Shared.url(Self.smolPath).path)
        let (folder, tokenizer) = try exported(file)
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("tokenizer_config.json"))
        let bare = try TokenizerLoader.huggingFace(tokenizerJSON: folder.appendingPathComponent("tokenizer.json").path)
        XCTAssertEqual(bare.bosTokenID, 0, "without the config: the <|endoftext|> fallback")
        try Data("[1]".utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: folder.appendingPathComponent("tokenizer.json").path)) { error in
            guard case .badValue(let f, _, _, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertTrue(f.hasSuffix("tokenizer_config.json"), f)
        }
    }
}
