import XCTest
import FixtureSupport
@testable import Checkpoints

/// Edited copies of the gemma3 family fixture (`Tests/TransformerTests/Fixtures/families/gemma3`, a
/// `Gemma3ForCausalLM` folder saved by transformers 5.24): the config keys are read as transformers' Gemma3TextConfig
/// reads them (both its 4.x and 5 spellings), and what PolicyPrune does not compute (soft-capping, bidirectional
/// attention, o_proj biases, scaled RoPE, the multimodal config) is a typed error naming the file and the key,
/// never a wrong model.
final class Gemma3InputErrorTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TransformerTests/Fixtures/families/gemma3").standardizedFileURL
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// A copy of the gemma3 folder whose config.json went through `edit`; returns the folder.
    private func configCopy(_ edit: (inout [String: Any]) -> Void) throws -> URL {
        let target = dir.appendingPathComponent("gemma3-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.folder, to: target)
        let configURL = target.appendingPathComponent("config.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        return target
    }

    /// Asserts that loading `folder` throws a `badValue` naming config.json and every one of `names`.
    private func assertBadValue(_ folder: URL, names: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertCheckpointError(try CheckpointLoader.load(path: folder.path), names: ["config.json"] + names, file: file, line: line) {
            if case .badValue = $0 { return true } else { return false }
        }
    }

    func testUnsupportedOptionsAreNamed() throws {
        assertBadValue(try configCopy { $0["final_logit_softcapping"] = 30.0 }, names: ["final_logit_softcapping", "30"])
        assertBadValue(try configCopy { $0["attn_logit_softcapping"] = 50.0 }, names: ["attn_logit_softcapping", "50"])
        assertBadValue(try configCopy { $0["use_bidirectional_attention"] = true }, names: ["use_bidirectional_attention"])
        assertBadValue(try configCopy { $0["attention_bias"] = true }, names: ["attention_bias", "o_proj"])
        assertBadValue(try configCopy { $0["hidden_activation"] = "gelu" }, names: ["hidden_activation", "gelu"])
        // Gemma 3 4B+ scale the global RoPE linearly, in either spelling.
        assertBadValue(try configCopy { json in
            json["rope_parameters"] = ["full_attention": ["rope_type": "linear", "factor": 8.0, "rope_theta": 1e6],
                                       "sliding_attention": ["rope_type": "default", "rope_theta": 1e4]]
        }, names: ["rope_parameters.full_attention.rope_type", "linear"])
        assertBadValue(try configCopy { json in
            json["rope_parameters"] = nil
            json["rope_scaling"] = ["rope_type": "linear", "factor": 8.0]
        }, names: ["rope_scaling.rope_type", "linear"])
        assertBadValue(try configCopy { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": 5e5] },
                       names: ["rope_parameters", "full_attention"])
        assertBadValue(try configCopy { $0["layer_types"] = ["sliding_attention", "full_attention"] }, names: ["layer_types", "2 entries", "(6)"])
        assertBadValue(try configCopy { json in
            json["layer_types"] = ["chunked_attention"] + Array(repeating: "full_attention", count: 5)
        }, names: ["layer_types", "chunked_attention"])
        assertBadValue(try configCopy { $0["sliding_window"] = 0 }, names: ["sliding_window", "0"])
        assertBadValue(try configCopy { $0["sliding_window"] = NSNull() }, names: ["sliding_window", "null"])
        // Gemma3ForConditionalGeneration's config (4B, 12B, 27B).
        assertBadValue(try configCopy { json in
            let text = json
            json = ["model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "text_config": text,
                    "vision_config": ["model_type": "siglip_vision_model"]]
        }, names: ["model_type", "gemma3", "text_config", "gemma3_text"])
    }

    /// transformers 4.x spelled the two RoPE bases `rope_theta` / `rope_local_base_freq` and implied the layer types
    /// by `sliding_window_pattern`; such a config reads as the same model as the fixture's transformers 5 one.
    func testTransformers4SpellingReadsAsTheSameModel() throws {
        let fixture = try CheckpointLoader.load(path: Self.folder.path).config
        let old = try configCopy { json in
            json["rope_parameters"] = nil
            json["layer_types"] = nil
            json["rope_theta"] = 1_000_000.0
            json["rope_local_base_freq"] = 10_000.0
            json["rope_scaling"] = NSNull()
            json["sliding_window_pattern"] = 6
        }
        XCTAssertEqual(try CheckpointLoader.load(path: old.path).config, fixture)
        // Absent keys take Gemma3TextConfig's defaults: bases 1e6 / 1e4, pattern 6.
        let bare = try configCopy { json in
            for key in ["rope_parameters", "layer_types", "_sliding_window_pattern"] { json[key] = nil }
        }
        XCTAssertEqual(try CheckpointLoader.load(path: bare.path).config, fixture)
    }

    /// What the config states is what the model computes: its own layer types, window pattern, local base and
    /// query_pre_attn_scalar (the scale is that ** -0.5, not 1/sqrt(head_dim)).
    func testStatedPatternBasesAndScaleAreRead() throws {
        let types = ["full_attention", "sliding_attention", "full_attention", "sliding_attention", "sliding_attention", "full_attention"]
        let stated = try configCopy { json in
            json["layer_types"] = types
            json["query_pre_attn_scalar"] = 24
            json["rope_parameters"] = ["full_attention": ["rope_type": "default", "rope_theta": 500_000.0],
                                       "sliding_attention": ["rope_type": "default", "rope_theta": 20_000.0]]
        }
        let config = try CheckpointLoader.load(path: stated.path).config
        XCTAssertEqual(config.localAttention, LocalAttention(window: 8, ropeTheta: 20_000, layers: types.map { $0 == "sliding_attention" }))
        XCTAssertEqual(config.ropeTheta, 500_000)
        XCTAssertEqual(config.attentionScale, Float(pow(24.0, -0.5)))
        let pattern = try configCopy { json in
            json["layer_types"] = nil
            json["sliding_window_pattern"] = 2
        }
        XCTAssertEqual(try CheckpointLoader.load(path: pattern.path).config.localAttention?.layers, [true, false, true, false, true, false])
        let global = try configCopy { json in
            json["layer_types"] = Array(repeating: "full_attention", count: 6)
            json["sliding_window"] = NSNull()
        }
        XCTAssertNil(try CheckpointLoader.load(path: global.path).config.localAttention, "no sliding layer, no window needed")
    }

    /// Gemma's own norm names: a folder whose MLP input norm is missing names `pre_feedforward_layernorm`.
    func testGemmaNormNamesAreChecked() throws {
        let target = try configCopy { _ in }
        let file = target.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: file)
        let needle = Data("layers.3.pre_feedforward_layernorm".utf8)
        let range = try XCTUnwrap(data.range(of: needle))
        data.replaceSubrange(range, with: Data("layers.3.pre_feedforward_layernorX".utf8))
        try data.write(to: file)
        do {
            _ = try CheckpointLoader.load(path: target.path)
            XCTFail("expected an error")
        } catch let error as CheckpointError {
            XCTAssertTrue(error.description.contains("pre_feedforward_layernor"), "\(error)")
        }
    }
}
