import XCTest
import FixtureSupport
@testable import Checkpoints

/// Damaged copies of the phi3 family fixtures (`Tests/TransformerTests/Fixtures/families`, made by transformers and
/// llama.cpp's converter): what Phi-3 options PolicyPrune does not compute (partial RoPE, yarn) and inconsistent
/// LongRoPE or stacked tensors are typed errors naming the file and the key or tensor, never a wrong model.
final class Phi3InputErrorTests: XCTestCase {
    static let families = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TransformerTests/Fixtures/families").standardizedFileURL
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// A copy of family folder `family` whose config.json went through `edit`; returns the folder.
    private func configCopy(_ family: String, _ edit: (inout [String: Any]) -> Void) throws -> URL {
        let source = Self.families.appendingPathComponent(family)
        let target = dir.appendingPathComponent("\(family)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: target)
        let configURL = target.appendingPathComponent("config.json")
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: configURL)
        return target
    }

    /// A copy of `<family>.gguf` with every occurrence of `text` replaced by `replacement` (same length).
    private func ggufCopy(_ family: String, replacing text: String, with replacement: String) throws -> String {
        precondition(text.utf8.count == replacement.utf8.count, "a same-length edit keeps every offset")
        var data = try Data(contentsOf: Self.families.appendingPathComponent("\(family).gguf"))
        let needle = Data(text.utf8)
        var found = false
        while let range = data.range(of: needle) {
            data.replaceSubrange(range, with: Data(replacement.utf8))
            found = true
        }
        XCTAssertTrue(found, "\(text) not in \(family).gguf")
        let url = dir.appendingPathComponent("\(family)-\(UUID().uuidString).gguf")
        try data.write(to: url)
        return url.path
    }

    /// Asserts that loading `path` throws a `CheckpointError` accepted by `match` and naming every one of `names`.
    private func assertError(_ path: String, names: [String], file: StaticString = #filePath, line: UInt = #line,
                             _ match: (CheckpointError) -> Bool) {
        assertCheckpointError(try CheckpointLoader.load(path: path), names: names, file: file, line: line, match)
    }

    private func isBadValue(_ e: CheckpointError) -> Bool { if case .badValue = e { return true }; return false }

    /// Partial RoPE (Phi-4-mini's 0.75), at the top level or in rope_parameters, and Phi3Config's old "yarn" alias are
    /// refused naming the key; so is a non-positive sliding window.
    func testUnsupportedOptionsAreNamed() throws {
        let nested = try configCopy("phi3") { json in
            var rope = json["rope_parameters"] as? [String: Any] ?? [:]
            rope["partial_rotary_factor"] = 0.75
            json["rope_parameters"] = rope
        }
        assertError(nested.path, names: ["config.json", "rope_parameters.partial_rotary_factor", "0.75", "partial RoPE"], isBadValue)
        let topLevel = try configCopy("phi3") { $0["partial_rotary_factor"] = 0.5 }
        assertError(topLevel.path, names: ["partial_rotary_factor", "0.5"], isBadValue)
        let yarn = try configCopy("phi3-longrope") { json in
            var rope = json["rope_parameters"] as? [String: Any] ?? [:]
            rope["rope_type"] = "yarn"
            json["rope_parameters"] = rope
        }
        assertError(yarn.path, names: ["rope_parameters.rope_type", "yarn"], isBadValue)
        let window = try configCopy("phi3") { $0["sliding_window"] = 0 }
        assertError(window.path, names: ["sliding_window", "0"], isBadValue)
    }

    /// LongRoPE is read for phi3 only; its factors must be one per frequency (8 for head width 16) and both present.
    func testLongRoPEParametersAreChecked() throws {
        let llama = try configCopy("phi3-longrope") { $0["model_type"] = "llama" }
        assertError(llama.path, names: ["rope_parameters.rope_type", "longrope"], isBadValue)
        let short = try configCopy("phi3-longrope") { json in
            var rope = json["rope_parameters"] as? [String: Any] ?? [:]
            rope["short_factor"] = [1.0, 1.0, 1.0, 1.0]
            json["rope_parameters"] = rope
        }
        assertError(short.path, names: ["rope_parameters.short_factor", "4 entries", "(8)"], isBadValue)
        let missing = try configCopy("phi3-longrope") { json in
            var rope = json["rope_parameters"] as? [String: Any] ?? [:]
            rope["long_factor"] = nil
            json["rope_parameters"] = rope
        }
        assertError(missing.path, names: ["rope_parameters.long_factor"]) { if case .missingKey = $0 { return true }; return false }
        // The older spelling: rope_scaling {"type": "su"} with top-level original_max_position_embeddings.
        let su = try configCopy("phi3-longrope") { json in
            let rope = json["rope_parameters"] as? [String: Any] ?? [:]
            json["rope_parameters"] = nil
            json["rope_theta"] = 10000.0
            json["rope_scaling"] = ["type": "su", "short_factor": rope["short_factor"] ?? [], "long_factor": rope["long_factor"] ?? []]
        }
        let loaded = try CheckpointLoader.load(path: su.path)
        guard case .longRoPE(let p)? = loaded.config.ropeScaling else { return XCTFail("su not read as LongRoPE") }
        XCTAssertEqual(p.originalContextLength, 16)
        XCTAssertEqual(p.attentionFactor, Float(1.5.squareRoot()), accuracy: 1e-6)
    }

    /// A stacked tensor of the wrong height is a shape error naming it; separate q/k/v in a phi3 folder are
    /// unexpected tensors (llama.cpp's and transformers' phi3 both stack them).
    func testStackedTensorsAreChecked() throws {
        // Four KV heads of width 16 would stack 64 + 2 · 64 rows; the file has 64 + 2 · 32.
        let wider = try configCopy("phi3") { $0["num_key_value_heads"] = 4 }
        let file = wider.appendingPathComponent("model.safetensors").path
        assertError(wider.path, names: [file, "model.layers.0.self_attn.qkv_proj.weight", "[192, 64]", "[128, 64]"]) {
            if case .shapeMismatch = $0 { return true }; return false
        }
        let renamed = try ggufCopy("phi3", replacing: "blk.1.attn_qkv.weight", with: "blk.1.attn_q.weight__")
        assertError(renamed, names: [renamed, "blk.1.attn_q.weight__"]) { if case .unexpectedTensor = $0 { return true }; return false }
    }

    /// A converted LongRoPE GGUF needs both factor tensors and both rope.scaling keys (the converter writes all
    /// four): each missing one is named.
    func testGGUFLongRoPEPartsAreRequired() throws {
        let noLong = try ggufCopy("phi3-longrope", replacing: "rope_factors_long.weight", with: "rope_factors_lonX.weight")
        assertError(noLong, names: [noLong, "rope_factors_long.weight"]) { if case .missingTensor = $0 { return true }; return false }
        let noAttention = try ggufCopy("phi3-longrope", replacing: "phi3.rope.scaling.attn_factor", with: "phi3.rope.scaling.attn_fXctor")
        assertError(noAttention, names: [noAttention, "phi3.rope.scaling.attn_factor"]) { if case .missingKey = $0 { return true }; return false }
        let noOriginal = try ggufCopy("phi3-longrope", replacing: "phi3.rope.scaling.original_context_length",
                                      with: "phi3.rope.scaling.original_context_lengtX")
        assertError(noOriginal, names: ["phi3.rope.scaling.original_context_length"]) { if case .missingKey = $0 { return true }; return false }
    }
}
