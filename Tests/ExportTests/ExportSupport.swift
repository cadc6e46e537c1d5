import Essentials
import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// A model under test: its checkpoint (for the tokenizer source), the in-memory model, and token ids to run.
struct TestModel {
    let checkpoint: LoadedCheckpoint
    let model: LanguageModel
    let ids: [Int]
}

/// The two real models, loaded once per test process.
enum Models {
    nonisolated(unsafe) private static var cache: [String: TestModel] = [:]
    private static let lock = NSLock()

    static func load(_ relative: String, tokens: String) throws -> TestModel {
        lock.lock(); defer { lock.unlock() }
        if let cached = cache[relative] { return cached }
        let checkpoint = try CheckpointLoader.load(path: try Shared.url(relative).path)
        let model = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: relative)
        // 48 tokens of the shared English eval text: enough positions for attention to matter, fast for SmolLM2.
        let ids: [Int] = try Shared.json(tokens).get("eval_texts", "general_en.txt", "ids")
        let m = TestModel(checkpoint: checkpoint, model: model, ids: Array(ids.prefix(48)))
        cache[relative] = m
        return m
    }

    static func stories() throws -> TestModel {
        try load("models/stories260K/stories260K.bin", tokens: "fixtures/tokenizers/stories260K_goldens.json")
    }

    static func smol() throws -> TestModel {
        try load("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf", tokens: "fixtures/tokenizers/smollm2_goldens.json")
    }

    /// Gemma 3 270M from the model cache (`Shared.cachedModel`), run on the first prompt of its golden fixture and
    /// transformers' greedy continuation (38 tokens). Throws `XCTSkip` outside CI when the model is absent.
    static func gemma3() throws -> TestModel {
        lock.lock(); defer { lock.unlock() }
        if let cached = cache["gemma3"] { return cached }
        guard let url = try Shared.cachedModel(.gemma3_270m) else { throw XCTSkip(Shared.howToFetch(.gemma3_270m)) }
        let checkpoint = try CheckpointLoader.load(path: url.path)
        let model = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: url.path)
        let cases = try XCTUnwrap(try Shared.json("fixtures/families/gemma3-270m/reference.json")["cases"] as? [[String: Any]])
        let first = try XCTUnwrap(cases.first)
        let ids: [Int] = try first.get("prompt_ids") + first.get("greedy32_ids")
        let m = TestModel(checkpoint: checkpoint, model: model, ids: ids)
        cache["gemma3"] = m
        return m
    }
}

enum Plans {
    static func plan(_ layers: [StructureMask.Layer], for config: ModelConfig, rate: Double = 0.3) throws -> PrunePlan {
        try PrunePlan(mask: StructureMask(layers: layers), config: config, method: "test", seed: 1, requestedRate: rate,
                      modelSHA256: "", calibrationSHA256: "", toolVersion: "test")
    }

    /// Different kept groups and channels per layer; layer 1 has no attention (switched off while it still lists
    /// groups), layer 2 no MLP, and in models with 8+ layers layer 7 loses both and layer 4 keeps attention with
    /// zero groups (which also removes it).
    static func heterogeneous(_ config: ModelConfig) throws -> PrunePlan {
        let layers = config.layers.enumerated().map { i, spec -> StructureMask.Layer in
            let allGroups = Array(0..<spec.kvHeads), allChannels = Array(0..<spec.ffnDim)
            var groups = allGroups.filter { ($0 + i) % 3 != 0 }
            if groups.isEmpty { groups = [0] }
            var channels = allChannels.filter { ($0 * 7 + i) % (2 + i % 3) == 0 }
            if i == config.layers.count - 1 { groups = allGroups; channels = allChannels }
            var layer = StructureMask.Layer(keptKVGroups: groups, keptChannels: channels)
            switch i {
            case 1: layer.attention = false
            case 2: layer.mlp = false; layer.keptChannels = []
            case 4 where config.layers.count >= 8: layer.keptKVGroups = []
            case 7: layer.attention = false; layer.mlp = false; layer.keptKVGroups = []; layer.keptChannels = []
            default: break
            }
            return layer
        }
        return try plan(layers, for: config)
    }

    /// The same number of groups and channels in every layer.
    static func uniform(_ config: ModelConfig, groups: Int, channels: Int) throws -> PrunePlan {
        try plan(config.layers.map { spec in
            StructureMask.Layer(keptKVGroups: Array(0..<spec.kvHeads).suffix(groups).map { $0 },
                                keptChannels: Array(stride(from: 0, to: spec.ffnDim, by: 1)).filter { $0 % 2 == 1 }.prefix(channels).map { $0 })
        }, for: config)
    }
}

/// A fresh folder under the temporary directory, removed at the end of the test.
func temporaryFolder(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("export-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// Compares logits with a relative tolerance and an absolute floor of `relative` times the largest magnitude
/// (logits near zero carry no relative precision).
func assertLogitsEqual(_ actual: [Float], _ expected: [Float], relative: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    let scale = expected.reduce(0) { max($0, Double(abs($1))) }
    let message = compareAll(actual.map(Double.init), expected.map(Double.init), Tolerance(absolute: relative * scale, relative: relative), what)
    XCTAssertNil(message, file: file, line: line)
}

/// Mean next-token NLL of `ids` from full logits (vocab per position).
func meanNLL(_ logits: [Float], ids: [Int], vocab: Int) -> Double {
    var total = 0.0
    for t in 0..<(ids.count - 1) {
        let row = logits[(t * vocab)..<((t + 1) * vocab)].map(Double.init)
        let m = row.max()!
        let logSum = m + log(row.reduce(0) { $0 + exp($1 - m) })
        total += logSum - row[ids[t + 1]]
    }
    return total / Double(ids.count - 1)
}
