import FixtureSupport
import Foundation
import Transformer
import XCTest

/// Greedy decoding with the KV cache reproduces the reference continuations of models/stories260K/SOURCE.md
/// exactly (token ids; greedy is exact unless two logits tie, which they do not here).
final class GenerationTests: XCTestCase {
    func greedy(_ model: LanguageModel, prompt: [Int], count: Int) throws -> [Int] {
        let prepared = model.dense
        var cache = KVCache(model: prepared, capacity: prompt.count + count)
        var sampler = Sampler(temperature: 0, topP: 1, seed: 0)
        var logits = try prepared.extend(prompt, cache: &cache)
        var out = [Int]()
        for _ in 0..<count {
            let next = sampler.next(logits)
            out.append(next)
            if out.count < count { logits = try prepared.extend([next], cache: &cache) }
        }
        return out
    }

    func testStories260KGreedy32() throws {
        let ref = try Shared.json("models/stories260K/reference_outputs.json")
        let prompt: [Int] = try ref.get("reference", "prompt_ids_with_bos")
        let expected: [Int] = try ref.get("reference", "greedy32_ids")
        let model = try ForwardGoldenTests.model("models/stories260K/stories260K.bin")
        XCTAssertEqual(try greedy(model, prompt: prompt, count: expected.count), expected)
    }

    func testStories260KFromBOS256() throws {
        let ref = try Shared.json("models/stories260K/reference_outputs.json")
        let expected: [Int] = try ref.get("bos_only_greedy256_ids")
        let model = try ForwardGoldenTests.model("models/stories260K/stories260K.bin")
        XCTAssertEqual(try greedy(model, prompt: [1], count: expected.count), expected)
    }

    /// Seeded sampling is reproducible and top-p 1e-6 degenerates to greedy.
    func testSamplerDeterminism() {
        let logits: [Float] = [0.1, 2.0, 1.9, -1, 0.5]
        var a = Sampler(temperature: 1, topP: 0.9, seed: 7), b = Sampler(temperature: 1, topP: 0.9, seed: 7)
        XCTAssertEqual((0..<50).map { _ in a.next(logits) }, (0..<50).map { _ in b.next(logits) })
        var narrow = Sampler(temperature: 1, topP: 1e-6, seed: 3)
        XCTAssertEqual(narrow.next(logits), 1)
    }
}
