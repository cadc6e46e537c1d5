import Checkpoints
import FixtureSupport
import Foundation
import Tokenization
import Transformer
import XCTest

/// The real Gemma 3 270M (GGUF Q4_K_M mix, dequantized to F32 bit-exactly) against transformers 5.24 in F32 on the
/// same file: `shared/fixtures/families/gemma3-270m` (three prompts: ids, 32 greedy tokens, their teacher-forced
/// log-probabilities, the top-10 logits at the last prompt position) and `Fixtures/gemma3/long_reference.json`
/// (one 640-token sequence, past the 512-token sliding window). The model comes from the cache
/// (`Shared.cachedModel`): outside CI the tests skip with a message when it is absent; under `CI=true` they fail.
///
/// Tolerances (measured worst values in the comments of each check): logits relative 1e-4 of the largest |logit|
/// of the row, log-probabilities 1e-3 absolute. Both sides run the same F32 weights in a different order (fused
/// GEMMs, SIMD sums, the sigmoid form of GELU-tanh), over 18 layers and a 262,144-way softmax; a wrong norm,
/// window or RoPE base moves logits by far more (`testEachGemmaPartMatters`).
final class Gemma3GoldenTests: XCTestCase {
    struct Loaded: @unchecked Sendable {
        let model: LanguageModel
        let tokenizer: any Tokenizer
    }

    /// Loaded once for the whole class (about 1 GB of F32 weights).
    nonisolated(unsafe) static var cache: Result<Loaded?, Error>?

    static func load() throws -> Loaded {
        if cache == nil {
            cache = Result {
                guard let url = try Shared.cachedModel(.gemma3_270m) else { return nil }
                let loaded = try CheckpointLoader.load(path: url.path)
                let tokenizer = try TokenizerLoader.load(loaded.tokenizer)
                return Loaded(model: try LanguageModel(config: loaded.config, weights: loaded.weights, file: url.path), tokenizer: tokenizer)
            }
        }
        guard let loaded = try cache!.get() else { throw XCTSkip(Shared.howToFetch(.gemma3_270m)) }
        return loaded
    }

    struct Case {
        let prompt: String
        let promptIDs: [Int]
        let greedy: [Int]
        let logProbabilities: [Double]
        let topIDs: [Int]
        let topLogits: [Double]
    }

    static func cases() throws -> [Case] {
        let json = try Shared.json("fixtures/families/gemma3-270m/reference.json")
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]], "reference.json: cases")
        return try cases.map { c in
            Case(prompt: try c.get("prompt"), promptIDs: try c.get("prompt_ids"), greedy: try c.get("greedy32_ids"),
                 logProbabilities: try c.get("greedy32_logprobs"), topIDs: try c.get("last_prompt_position_top10", "ids"),
                 topLogits: try c.get("last_prompt_position_top10", "logits"))
        }
    }

    /// log-softmax of `row` at `id`, in Double.
    static func logProbability(_ row: ArraySlice<Float>, _ id: Int) -> Double {
        let m = Double(row.max() ?? 0)
        let lse = m + Foundation.log(row.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
        return Double(row[row.startIndex + id]) - lse
    }

    func testConfigFromGGUF() throws {
        let config = try Self.load().model.config
        XCTAssertEqual(config.architecture, "gemma3")
        XCTAssertEqual(config.layers.count, 18)
        XCTAssertEqual(config.layers[0], LayerSpec(queryHeads: 4, kvHeads: 1, headDim: 256, ffnDim: 2048))
        XCTAssertEqual(config.embeddingScale, Float(Double(640).squareRoot()))
        XCTAssertTrue(config.postSublayerNorms && config.queryKeyNorm && config.tiedEmbeddings)
        XCTAssertEqual(config.mlpActivation, .geluTanh)
        XCTAssertEqual(config.attentionScale, 1 / 16)
        XCTAssertEqual(config.localAttention?.window, 512)
        // transformers' layer_types: full attention at 5, 11 and 17.
        XCTAssertEqual(config.localAttention?.layers.indices.filter { !config.localAttention!.layers[$0] }, [5, 11, 17])
        XCTAssertEqual(config.ropeTheta(layer: 0), 10_000)
        XCTAssertEqual(config.ropeTheta(layer: 5), 1_000_000)
    }

    func testPromptIDsMatchTransformers() throws {
        let loaded = try Self.load()
        for c in try Self.cases() {
            XCTAssertEqual(loaded.tokenizer.encode(c.prompt, addSpecialTokens: true), c.promptIDs, c.prompt)
        }
    }

    /// Greedy decoding through the KV cache reproduces transformers' 32 tokens; the teacher-forced log-probabilities
    /// of those tokens (one batched forward over prompt + continuation) and the top-10 logits at the last prompt
    /// position agree. Measured (2026-11-30): worst log-probability difference 6.9e-6, worst top-10 logit difference
    /// 1.5e-5 (of |logit| ≤ 23).
    func testGreedyContinuationLogProbabilitiesAndTopLogits() throws {
        let model = try Self.load().model.dense
        var worstLogProbability = 0.0, worstLogit = 0.0
        for c in try Self.cases() {
            var cache = KVCache(model: model, capacity: c.promptIDs.count + c.greedy.count)
            var sampler = Sampler(temperature: 0, topP: 1, seed: 0)
            var logits = try model.extend(c.promptIDs, cache: &cache)
            let lastPrompt = logits
            var generated: [Int] = []
            while generated.count < c.greedy.count {
                generated.append(sampler.next(logits))
                if generated.count < c.greedy.count { logits = try model.extend([generated.last!], cache: &cache) }
            }
            XCTAssertEqual(generated, c.greedy, c.prompt)

            let top = lastPrompt.indices.sorted { lastPrompt[$0] > lastPrompt[$1] }.prefix(10)
            XCTAssertEqual(Array(top), c.topIDs, "\(c.prompt): top-10 ids")
            let scale = c.topLogits.map(abs).max() ?? 1
            let mine = c.topIDs.map { Double(lastPrompt[$0]) }
            worstLogit = max(worstLogit, zip(mine, c.topLogits).map { abs($0 - $1) }.max() ?? 0)
            if let failure = compareAll(mine, c.topLogits, Tolerance(absolute: 1e-4 * scale, relative: 1e-4), "\(c.prompt) top-10 logits") {
                XCTFail(failure)
            }

            let sequence = c.promptIDs + c.greedy
            let all = try model.logits([sequence])[0]
            let vocab = model.config.vocabSize
            let n = c.promptIDs.count
            let logProbabilities = c.greedy.indices.map { i in
                Self.logProbability(all[((n - 1 + i) * vocab)..<((n + i) * vocab)], c.greedy[i])
            }
            worstLogProbability = max(worstLogProbability, zip(logProbabilities, c.logProbabilities).map { abs($0 - $1) }.max() ?? 0)
            if let failure = compareAll(logProbabilities, c.logProbabilities, Tolerance(absolute: 1e-3), "\(c.prompt) log-probs") {
                XCTFail(failure)
            }
        }
        print("gemma3 golden: worst |Δ log-prob| \(worstLogProbability), worst |Δ top-10 logit| \(worstLogit)")
    }

    /// `policyprune generate` (the built binary, greedy by default) prints transformers' 32 tokens for the first
    /// prompt: prompt ids, KV cache and sampler as the CLI wires them.
    func testGenerateCommandMatchesTransformers() throws {
        guard let url = try Shared.cachedModel(.gemma3_270m) else { throw XCTSkip(Shared.howToFetch(.gemma3_270m)) }
        let c = try XCTUnwrap(try Self.cases().first)
        let run = try Shared.run(["generate", "--model", url.path, "--prompt", c.prompt, "--max-tokens", "\(c.greedy.count)", "--json"],
                                 environment: ["POLICYPRUNE_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
        XCTAssertEqual(try json.get("promptIDs") as [Int], c.promptIDs)
        XCTAssertEqual(try json.get("generatedIDs") as [Int], c.greedy)
    }

    struct Long {
        let ids: [Int]
        let positions: [(position: Int, topIDs: [Int], topLogits: [Double], logSumExp: Double)]
    }

    static func long() throws -> Long {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/gemma3/long_reference.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "long_reference.json")
        let positions = try XCTUnwrap(json["positions"] as? [[String: Any]], "long_reference.json: positions")
        return Long(ids: try json.get("ids"), positions: try positions.map { p in
            (try p.get("position"), try p.get("top10_ids"), try p.get("top10_logits"), try p.get("logsumexp"))
        })
    }

    /// The logits of `long.ids` at each reference position through the KV cache (prefixes extended one span at a
    /// time, so later spans start at position > 0 and the window cuts the cached keys).
    static func cachedLogits(_ model: PreparedModel, _ long: Long) throws -> [[Float]] {
        var cache = KVCache(model: model, capacity: long.ids.count)
        var rows: [[Float]] = []
        for p in long.positions.map(\.position) {
            rows.append(try model.extend(Array(long.ids[cache.count...p]), cache: &cache))
        }
        return rows
    }

    /// Past the sliding window: the top-10 logits and log-sum-exp at positions 100 … 639 agree with transformers
    /// (measured 2026-11-30: worst 4.4e-5 on |logit| ≤ 7), and the batched forward (`tokenNLL`, no cache) gives the same
    /// next-token NLL as the cached path at those positions.
    func testLongSequencePastTheSlidingWindow() throws {
        let model = try Self.load().model.dense
        let long = try Self.long()
        let rows = try Self.cachedLogits(model, long)
        var worst = 0.0
        for (row, reference) in zip(rows, long.positions) {
            worst = max(worst, zip(reference.topIDs, reference.topLogits).map { abs(Double(row[$0]) - $1) }.max() ?? 0)
            let top = row.indices.sorted { row[$0] > row[$1] }.prefix(10)
            XCTAssertEqual(Array(top), reference.topIDs, "position \(reference.position): top-10 ids")
            let scale = reference.topLogits.map(abs).max() ?? 1
            let tolerance = Tolerance(absolute: 1e-4 * scale, relative: 1e-4)
            if let failure = compareAll(reference.topIDs.map { Double(row[$0]) }, reference.topLogits, tolerance, "position \(reference.position)") {
                XCTFail(failure)
            }
            let lse = -Self.logProbability(row[...], 0) + Double(row[0])
            XCTAssertEqual(lse, reference.logSumExp, accuracy: 1e-4 * scale, "position \(reference.position): log-sum-exp")
        }
        print("gemma3 long: worst |Δ top-10 logit| \(worst)")
        let nll = try model.tokenNLL([long.ids])[0]
        for (row, reference) in zip(rows, long.positions) where reference.position + 1 < long.ids.count {
            let cached = -Self.logProbability(row[...], long.ids[reference.position + 1])
            XCTAssertEqual(nll[reference.position], cached, accuracy: 1e-4, "position \(reference.position): batched vs cached NLL")
        }
    }

    /// The packed zero-shot forward (`scoreContinuations`: a shared context segment, continuations attending to it)
    /// applies the same windows: two continuations of a 540-token context, so positions past 512 see fewer keys on
    /// the local layers, score as the batched forward of each whole sequence does (1e-4 nats per token: the two
    /// paths sum in another order).
    func testPackedContinuationsPastTheWindowMatchTheBatchedForward() throws {
        let model = try Self.load().model.dense
        let ids = try Self.long().ids
        let a = ContinuationRequest(tokens: Array(ids[0..<600]), scoredCount: 60)
        let b = ContinuationRequest(tokens: Array(ids[0..<540]) + Array(ids[100..<120]), scoredCount: 20)
        let scores = try model.scoreContinuations([[a, b]])[0]
        for (request, score) in zip([a, b], scores) {
            let nll = try model.tokenNLL([request.tokens])[0]
            let n = request.tokens.count
            let batched = ((n - request.scoredCount)..<n).map { -nll[$0 - 1] }
            if let failure = compareAll(score.tokenLogProbabilities, batched, Tolerance(absolute: 1e-4), "packed vs batched, \(n) tokens") {
                XCTFail(failure)
            }
        }
    }

    /// Each Gemma part changes the output beyond the tolerance: the fixture tests it. Without the local layers'
    /// RoPE base (all layers global) the short prompts move; without the window (local base kept) only positions
    /// past 512 move.
    func testEachGemmaPartMatters() throws {
        let loaded = try Self.load().model
        let long = try Self.long()
        func variant(_ change: (inout ModelConfig) -> Void) throws -> PreparedModel {
            var config = loaded.config
            change(&config)
            return try LanguageModel(config: config, weights: loaded.weights).dense
        }
        func topLogitsMove(_ model: PreparedModel, _ reference: [Double], _ ids: [Int], _ row: [Float]) -> Bool {
            let scale = reference.map(abs).max() ?? 1
            return compareAll(ids.map { Double(row[$0]) }, reference, Tolerance(absolute: 1e-3 * scale, relative: 1e-3), "") != nil
        }
        let first = try XCTUnwrap(try Self.cases().first)
        let withoutLocal = try variant { $0.localAttention = nil }
        var cache = KVCache(model: withoutLocal, capacity: first.promptIDs.count)
        XCTAssertTrue(topLogitsMove(withoutLocal, first.topLogits, first.topIDs, try withoutLocal.extend(first.promptIDs, cache: &cache)),
                      "all-global layers still match the short prompt")

        let withoutWindow = try variant { $0.localAttention?.window = 1 << 20 }
        let rows = try Self.cachedLogits(withoutWindow, long)
        for (row, reference) in zip(rows, long.positions) {
            let moved = topLogitsMove(withoutWindow, reference.topLogits, reference.topIDs, row)
            XCTAssertEqual(moved, reference.position >= 512, "position \(reference.position): window \(moved ? "matters" : "does not matter")")
        }
        for change: (inout ModelConfig) -> Void in [{ $0.embeddingScale = nil }, { $0.mlpActivation = .silu }, { $0.attentionScale = nil }] {
            let model = try variant(change)
            var c = KVCache(model: model, capacity: first.promptIDs.count)
            let row = try model.extend(first.promptIDs, cache: &c)
            if model.config.attentionScale == nil {
                // 1/sqrt(256) is also the default: the 270M model's scale is the default one.
                XCTAssertFalse(topLogitsMove(model, first.topLogits, first.topIDs, row))
            } else {
                XCTAssertTrue(topLogitsMove(model, first.topLogits, first.topIDs, row), "a Gemma part is not tested")
            }
        }
    }
}
