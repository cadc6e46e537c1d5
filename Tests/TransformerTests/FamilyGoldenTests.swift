import Checkpoints
import FixtureSupport
import Foundation
import Transformer
import XCTest

/// The families PolicyPrune loads, each as a tiny seeded random model built by transformers 5.24 (float32 weights,
/// `Fixtures/families/make_families.py`): llama3 (Llama 3.x RoPE scaling with all three frequency bands in use),
/// qwen2 (q/k/v biases, random), qwen3 (per-head q/k RMSNorm, head_dim ≠ hidden/heads), mistral (plain llama). Each
/// is loaded from its Hugging Face folder and from the GGUF that llama.cpp's own `convert_hf_to_gguf.py` made of it,
/// and run on the same 24 token ids as transformers.
///
/// Tolerance: relative 1e-4 of the largest |logit| of the reference (an absolute floor at that scale, so logits near
/// zero are not held to a relative bound they cannot meet). Both sides compute in float32 in a different order
/// (fused GEMMs, SIMD sums, Double cos/sin); over 3 layers that differs by ~1e-6 relative, and a wrong RoPE band,
/// bias row or norm changes logits by far more than that (`assertSensitive`: without the llama3 scaling, the qwen2
/// biases or the qwen3 q/k norms the logits leave a 1e-3 band).
final class FamilyGoldenTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/families")

    /// The token ids and transformers' logits [tokens · vocab] of family `name`.
    static func reference(_ name: String) throws -> (tokens: [Int], logits: [Double]) {
        let data = try Data(contentsOf: folder.appendingPathComponent("\(name)/reference.json"))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], "\(name)/reference.json")
        return (try json.get("tokens"), try (json.get("logits") as [NSNumber]).map(\.doubleValue))
    }

    /// Loads `relative` (inside Fixtures/families) through the normal loader.
    static func model(_ relative: String) throws -> LanguageModel {
        let loaded = try CheckpointLoader.load(path: folder.appendingPathComponent(relative).path)
        return try LanguageModel(config: loaded.config, weights: loaded.weights, file: relative)
    }

    func check(_ model: LanguageModel, family: String, _ what: String) throws {
        let reference = try Self.reference(family)
        let logits = try model.dense.logits([reference.tokens])[0].map(Double.init)
        let scale = reference.logits.map(abs).max() ?? 1
        if ProcessInfo.processInfo.environment["POLICYPRUNE_FAMILY_ERRORS"] != nil {
            let worst = zip(logits, reference.logits).map { abs($0 - $1) }.max() ?? 0
            print("\(family) \(what): max |logit| \(scale), worst abs diff \(worst), relative to max \(worst / scale)")
        }
        let tolerance = Tolerance(absolute: 1e-4 * scale, relative: 1e-4)
        if let failure = compareAll(logits, reference.logits, tolerance, "\(family) \(what)") { XCTFail(failure) }
    }

    func testLlama3() throws {
        let hf = try Self.model("llama3")
        XCTAssertEqual(hf.config.ropeScaling, .llama3(Llama3RoPEScaling(factor: 4, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                                                                        originalContextLength: 32)))
        try check(hf, family: "llama3", "hf")
        let gguf = try Self.model("llama3.gguf")
        guard case .frequencyFactors(let factors)? = gguf.config.ropeScaling else { return XCTFail("no rope_freqs in llama3.gguf") }
        XCTAssertEqual(factors.count, 8)
        try check(gguf, family: "llama3", "gguf")
        var plain = hf.config
        plain.ropeScaling = nil
        try assertSensitive(LanguageModel(config: plain, weights: hf.weights), family: "llama3", "without RoPE scaling")
    }

    /// The fixture exercises a family's feature: without it the logits are outside 1e-3 of the reference.
    func assertSensitive(_ model: LanguageModel, family: String, _ what: String) throws {
        let reference = try Self.reference(family)
        let logits = try model.dense.logits([reference.tokens])[0].map(Double.init)
        let scale = reference.logits.map(abs).max() ?? 1
        XCTAssertNotNil(compareAll(logits, reference.logits, Tolerance(absolute: 1e-3 * scale, relative: 1e-3), "\(family) \(what)"),
                        "\(family) \(what) still matches: the fixture does not test it")
    }

    func testQwen2() throws {
        let hf = try Self.model("qwen2")
        XCTAssertTrue(hf.config.attentionBias)
        XCTAssertTrue(hf.config.tiedEmbeddings)
        try check(hf, family: "qwen2", "hf")
        try check(try Self.model("qwen2.gguf"), family: "qwen2", "gguf")
        var config = hf.config, weights = hf.weights
        config.attentionBias = false
        for i in weights.layers.indices { weights.layers[i].bq = nil; weights.layers[i].bk = nil; weights.layers[i].bv = nil }
        try assertSensitive(LanguageModel(config: config, weights: weights), family: "qwen2", "without biases")
    }

    func testQwen3() throws {
        let hf = try Self.model("qwen3")
        XCTAssertTrue(hf.config.queryKeyNorm)
        XCTAssertFalse(hf.config.attentionBias)
        XCTAssertEqual(hf.config.layers[0].headDim, 32)
        try check(hf, family: "qwen3", "hf")
        try check(try Self.model("qwen3.gguf"), family: "qwen3", "gguf")
        var config = hf.config, weights = hf.weights
        config.queryKeyNorm = false
        for i in weights.layers.indices { weights.layers[i].qNorm = nil; weights.layers[i].kNorm = nil }
        try assertSensitive(LanguageModel(config: config, weights: weights), family: "qwen3", "without q/k norms")
    }

    func testMistral() throws {
        let hf = try Self.model("mistral")
        XCTAssertEqual(hf.config.architecture, "mistral")
        try check(hf, family: "mistral", "hf")
        try check(try Self.model("mistral.gguf"), family: "mistral", "gguf")
    }

    /// The int8 path adds the q/k/v biases after the int8 GEMM and applies the q/k norms after it: the logits of
    /// each family stay near Float32's (int8 weights and activations: a loose bound, 5 % of the largest logit).
    func testInt8Families() throws {
        for family in ["qwen2", "qwen3", "llama3"] {
            let model = try Self.model(family)
            let reference = try Self.reference(family)
            let int8 = try model.prepared(mask: nil, precision: .int8)
            let logits = try int8.logits([reference.tokens])[0].map(Double.init)
            let scale = reference.logits.map(abs).max() ?? 1
            if let failure = compareAll(logits, reference.logits, Tolerance(absolute: 0.05 * scale), "\(family) int8") { XCTFail(failure) }
        }
    }
}
