import Essentials
import XCTest
import Foundation
import FixtureSupport
import Kernels
@testable import Checkpoints
@testable import Tokenization
@testable import Corpora
@testable import Pruning
import Transformer

/// Issue 16: every input the tool reads, mutated the way a hostile file would be (byte flips, truncation, edge
/// values 0, 1, 2^31−1, 2^32−1, 2^63−1 in every numeric header field, structure-aware JSON edits), must end in a
/// typed error or success within 10 s and never crash. In-process cases call the loaders directly (a crash would
/// take the test process down, so any crash is a bug); `testBinaryCases` runs the built binary with a 10 s
/// timeout to catch signals and hangs end to end. Seeded (`POLICYPRUNE_FUZZ_SEED`) and bounded: the whole class
/// takes well under a minute at the default scale; `scripts/fuzz-campaign.sh` runs it at a larger scale.
final class FuzzTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pp-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    static let stories = "models/stories260K/stories260K.bin"
    static let tok512 = "models/stories260K/tok512.bin"
    static let storiesHF = "fixtures/models/stories260K-hf"

    /// A seed GGUF made from stories260K by the project's own exporter (f32, tokenizer converted from tok512.bin),
    /// so the GGUF fuzz loads a whole model in about a millisecond.
    func storiesGGUF() throws -> Data {
        let loaded = try CheckpointLoader.load(path: try Shared.url(Self.stories).path)
        let out = scratch.appendingPathComponent("seed.gguf").path
        _ = try ModelExporter.export(ExportRequest(config: loaded.config, weights: loaded.weights, format: .gguf, dtype: .f32,
                                                   tokenizer: loaded.tokenizer, name: "stories260K"), to: out, force: true)
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }

    /// Loads a GGUF model the way `generate` does: header, config, weights, the forward model and the tokenizer.
    static func loadGGUFLikeTheCLI(_ path: String) throws {
        let checkpoint = try CheckpointLoader.load(path: path)
        _ = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: path)
        let tokenizer = try TokenizerLoader.load(checkpoint.tokenizer)
        _ = tokenizer.encode("Once upon a time", addSpecialTokens: true)
    }

    // MARK: GGUF

    /// The issue's reproducer: `llama.block_count` 2^31−1 hung `info`/`generate`, 2^32−1 aborted. Both are now a
    /// `badValue` naming the key, the value and the limit, before anything is sized by it.
    func testGGUFBlockCountRegression() throws {
        let seed = try storiesGGUF()
        let field = try XCTUnwrap(GGUFFields.walk(seed).first { $0.name == "'llama.block_count' value" })
        for value: UInt64 in [0x7FFF_FFFF, 0xFFFF_FFFF] {
            var data = seed
            for b in 0..<field.width { data[field.offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b))) }
            let path = scratch.appendingPathComponent("block-count-\(value).gguf").path
            try data.write(to: URL(fileURLWithPath: path))
            // This was a hang; the typed error proves the count is refused before anything is sized by it (a
            // regression would show as a test that never ends, not as a slow one, so no wall-clock limit here).
            XCTAssertThrowsError(try CheckpointLoader.load(path: path)) { error in
                guard case CheckpointError.badValue(path, "llama.block_count", "\(value)", let reason) = error else {
                    return XCTFail("wrong error: \(error)")
                }
                XCTAssertTrue(reason.contains("limit"), reason)
            }
        }
    }

    /// The other unchecked values the harness and review found, each now a typed error naming key, value, limit.
    func testHeaderLimitRegressions() throws {
        // config.json num_hidden_layers 2^31-1 (limit: tensors present) and hidden_size 2^62 (overflowing products).
        let source = try Shared.url(Self.storiesHF)
        let folder = scratch.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ["model.safetensors", "tok512.bin"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as? [String: Any])
        for (key, value) in [("num_hidden_layers", Int(Int32.max)), ("hidden_size", 1 << 62), ("intermediate_size", Int.max),
                             ("max_position_embeddings", -1)] {
            var edited = config
            edited[key] = value
            if key == "hidden_size" { edited["head_dim"] = 8 }
            try JSONSerialization.data(withJSONObject: edited).write(to: folder.appendingPathComponent("config.json"))
            XCTAssertThrowsError(try CheckpointLoader.load(path: folder.path)) { error in
                guard case CheckpointError.badValue(_, key, "\(value)", _) = error else { return XCTFail("\(key): wrong error \(error)") }
            }
        }
        // llama2.c: every field at the 2^24 plausibility bound overflows the implied size; refused before the layout.
        var l2c = try Shared.data(Self.stories)
        for (i, v) in [(0, 1 << 24), (1, 1 << 24), (2, 1 << 24), (3, 1 << 22), (4, 1 << 22), (6, 1 << 24)] {
            withUnsafeBytes(of: Int32(v).littleEndian) { l2c.replaceSubrange((4 * i)..<(4 * i + 4), with: $0) }
        }
        let l2cPath = try write(l2c, "huge.bin")
        XCTAssertThrowsError(try Llama2cCheckpoint(path: l2cPath)) { error in
            guard case CheckpointError.badValue(_, "n_layers", _, _) = error else { return XCTFail("wrong error \(error)") }
        }
        // tokenizer.json: a token id of 2^32-1 asked for a 32 GiB id table.
        var tokenizer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Self.smallTokenizerJSON()) as? [String: Any])
        var model = try XCTUnwrap(tokenizer["model"] as? [String: Any])
        var vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        vocab["hostile"] = Int(UInt32.max)
        model["vocab"] = vocab
        tokenizer["model"] = model
        let tokPath = try write(try JSONSerialization.data(withJSONObject: tokenizer), "tokenizer.json")
        XCTAssertThrowsError(try TokenizerLoader.huggingFace(tokenizerJSON: tokPath)) { error in
            guard case TokenizerError.badValue(_, _, "\(UInt32.max)", let reason) = error else { return XCTFail("wrong error \(error)") }
            XCTAssertTrue(reason.contains("limit"), reason)
        }
    }

    private func write(_ data: Data, _ name: String) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    /// Found by the campaign (seed 1616, case 1018): a plan.json whose dense_parameters.attention is 2^63-1 trapped
    /// on overflow while the mismatch message summed the counts. Counts are now bounded when read.
    func testPlanParameterCountRegression() throws {
        let run = try makeRunFolder()
        var plan = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("plan.json"))) as? [String: Any])
        var dense = try XCTUnwrap(plan["dense_parameters"] as? [String: Any])
        dense["attention"] = Int.max
        plan["dense_parameters"] = dense
        XCTAssertThrowsError(try PrunePlan.decode(try JSONSerialization.data(withJSONObject: plan))) { error in
            XCTAssertEqual(error as? PruningError, .invalidValue(key: "dense_parameters.attention", value: "\(Int.max)",
                                                                  reason: "a parameter count must be in 0...\(ParameterCount.maximumCount)"))
        }
    }

    /// Whole-model GGUF loads: edge values in every header field, flips in the header region, truncation.
    func testFuzzGGUFModel() throws {
        let seed = try storiesGGUF()
        let fields = GGUFFields.walk(seed)
        XCTAssertGreaterThan(fields.count, 100, "the header walk found too few fields")
        let headerEnd = (fields.map { $0.offset + $0.width }.max() ?? 64)
        var campaign = FuzzCampaign(format: "gguf", directory: scratch)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 1)
        for i in 0..<FuzzSettings.cases(600) where !campaign.outOfTime {
            var data = seed
            let label: String
            switch mutator.below(10) {
            case 0...4: label = mutator.edge(&data, mutator.pick(fields))
            case 5...7: label = mutator.flip(&data, count: 1 + mutator.below(4), in: 0..<headerEnd)
            case 8: label = mutator.truncate(&data)
            default: label = mutator.flip(&data, count: 1 + mutator.below(16), in: 0..<data.count)
            }
            let path = try campaign.write(data, "case-\(i % 4).gguf")
            campaign.run(label) { try Self.loadGGUFLikeTheCLI(path) }
        }
        campaign.finish()
    }

    /// Header-and-tokenizer GGUF loads on a real llama.cpp vocabulary file (32,000 tokens of metadata).
    func testFuzzGGUFTokenizerMetadata() throws {
        let seed = try Shared.data("fixtures/tokenizers/ggml-vocab-llama-spm.gguf")
        let fields = GGUFFields.walk(seed)
        var campaign = FuzzCampaign(format: "gguf-tokenizer", directory: scratch)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 2)
        for i in 0..<FuzzSettings.cases(80) where !campaign.outOfTime {
            var data = seed
            let label = mutator.below(2) == 0 ? mutator.edge(&data, mutator.pick(fields)) : mutator.bytes(&data, headerBytes: data.count)
            let path = try campaign.write(data, "vocab-\(i % 4).gguf")
            campaign.run(label) {
                let file = try GGUFFile(path: path)
                _ = try TokenizerLoader.gguf(file).encode("Hello world, it's 2024!", addSpecialTokens: true)
            }
        }
        campaign.finish()
    }

    // MARK: llama2.c

    /// The 7-field header (edge values in each), flips, truncation; and tokenizer.bin records.
    func testFuzzLlama2c() throws {
        let seed = try Shared.data(Self.stories)
        let tokSeed = try Shared.data(Self.tok512)
        let folder = scratch.appendingPathComponent("l2c")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
        let headerFields = names.enumerated().map { HeaderField(offset: 4 * $0.offset, width: 4, name: $0.element) }
        // tokenizer.bin: max_token_length, then per record a float score and an int32 length.
        var tokFields = [HeaderField(offset: 0, width: 4, name: "max_token_length")]
        var o = 4
        while o + 8 <= tokSeed.count {
            let length = Int(tokSeed[o + 4]) | Int(tokSeed[o + 5]) << 8
            tokFields.append(HeaderField(offset: o + 4, width: 4, name: "length of token \(tokFields.count - 1)"))
            o += 8 + length
        }
        var campaign = FuzzCampaign(format: "llama2c", directory: folder)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 3)
        for i in 0..<FuzzSettings.cases(400) where !campaign.outOfTime {
            var model = seed, tok = tokSeed
            let label: String
            switch mutator.below(8) {
            case 0...2: label = mutator.edge(&model, mutator.pick(headerFields))
            case 3: label = mutator.flip(&model, count: 1 + mutator.below(3), in: 0..<28)
            case 4: label = "model " + mutator.truncate(&model)
            case 5: label = "tokenizer " + mutator.edge(&tok, mutator.pick(tokFields))
            case 6: label = "tokenizer " + mutator.bytes(&tok, headerBytes: tok.count)
            default: label = "model " + mutator.flip(&model, count: 4, in: 0..<model.count)
            }
            let path = try campaign.write(model, "model.bin")
            _ = try campaign.write(tok, "tok512.bin")
            campaign.run("case \(i): \(label)") {
                let checkpoint = try CheckpointLoader.load(path: path)
                _ = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: path)
                let tokenizer = try TokenizerLoader.llama2c(path: folder.appendingPathComponent("tok512.bin").path,
                                                            vocabularySize: checkpoint.config.vocabSize)
                _ = tokenizer.encode("Once upon a time", addSpecialTokens: true)
            }
        }
        campaign.finish()
    }

    // MARK: safetensors + config.json

    func testFuzzSafetensorsAndConfig() throws {
        let source = try Shared.url(Self.storiesHF)
        let config = try Data(contentsOf: source.appendingPathComponent("config.json"))
        let tensors = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        let tok = try Data(contentsOf: source.appendingPathComponent("tok512.bin"))
        let headerLength = Int(tensors.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let folder = scratch.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try tok.write(to: folder.appendingPathComponent("tok512.bin"))
        var campaign = FuzzCampaign(format: "safetensors+config", directory: folder)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 4)
        for i in 0..<FuzzSettings.cases(400) where !campaign.outOfTime {
            var c = config, t = tensors
            let label: String
            switch mutator.below(8) {
            case 0, 1: label = "config.json " + mutator.json(&c)
            case 2: label = "config.json " + mutator.bytes(&c, headerBytes: c.count)
            case 3: label = "safetensors " + mutator.edge(&t, HeaderField(offset: 0, width: 8, name: "header length"))
            case 4: label = "safetensors " + mutator.flip(&t, count: 1 + mutator.below(3), in: 8..<(8 + headerLength))
            case 5: label = "safetensors " + mutator.truncate(&t)
            default:
                // Structure-aware: edit the JSON header (dtype, shape, data_offsets) and re-frame it.
                var header = t.subdata(in: 8..<(8 + headerLength))
                label = "safetensors header " + mutator.json(&header)
                var framed = Data()
                withUnsafeBytes(of: UInt64(header.count).littleEndian) { framed.append(contentsOf: $0) }
                framed.append(header)
                framed.append(t.subdata(in: (8 + headerLength)..<t.count))
                t = framed
            }
            try c.write(to: folder.appendingPathComponent("config.json"))
            try t.write(to: folder.appendingPathComponent("model.safetensors"))
            campaign.run("case \(i): \(label)") {
                let checkpoint = try CheckpointLoader.load(path: folder.path)
                _ = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: folder.path)
            }
        }
        campaign.finish()
    }

    // MARK: tokenizer.json

    /// The SmolLM2 tokenizer.json cut down to its first 4,000 ids and the merges among them (every other part as
    /// is), so each structure-aware case re-serialises 100 KB rather than 1.5 MB.
    static func smallTokenizerJSON() throws -> Data {
        var root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Shared.data("fixtures/tokenizers/smollm2-135m-instruct.tokenizer.json")) as? [String: Any])
        var model = try XCTUnwrap(root["model"] as? [String: Any])
        let vocab = try XCTUnwrap(model["vocab"] as? [String: Int]).filter { $0.value < 4000 }
        model["vocab"] = vocab
        let merges = (model["merges"] as? [Any]) ?? []
        model["merges"] = merges.filter { m in
            let pair: [String] = (m as? [String]) ?? ((m as? String)?.split(separator: " ", maxSplits: 1).map(String.init) ?? [])
            return pair.count == 2 && vocab[pair[0]] != nil && vocab[pair[1]] != nil && vocab[pair[0] + pair[1]] != nil
        }
        root["model"] = model
        return try JSONSerialization.data(withJSONObject: root)
    }

    func testFuzzTokenizerJSON() throws {
        let seed = try Self.smallTokenizerJSON()
        // The cut-down seed itself loads and tokenizes.
        let seedPath = scratch.appendingPathComponent("seed-tokenizer.json").path
        try seed.write(to: URL(fileURLWithPath: seedPath))
        XCTAssertFalse(try TokenizerLoader.huggingFace(tokenizerJSON: seedPath).encode("Hello world", addSpecialTokens: true).isEmpty)
        var campaign = FuzzCampaign(format: "tokenizer.json", directory: scratch)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 5)
        for i in 0..<FuzzSettings.cases(120) where !campaign.outOfTime {
            var data = seed
            let label = mutator.below(3) == 0 ? mutator.bytes(&data, headerBytes: 4096) : mutator.json(&data)
            let path = try campaign.write(data, "tokenizer-\(i % 2).json")
            campaign.run(label) {
                _ = try TokenizerLoader.huggingFace(tokenizerJSON: path).encode("Hello world, it's 2024! <|im_start|>", addSpecialTokens: true)
            }
        }
        campaign.finish()
    }

    // MARK: plan.json and the run folder

    /// A real two-step policy-gradient run of stories260K (options.json, initial scores and plan, checkpoints,
    /// log, plan.json), made by the built binary.
    func makeRunFolder() throws -> URL {
        let run = scratch.appendingPathComponent("run")
        let result = try Shared.run(["prune", "--model", try Shared.url(Self.stories).path, "--rate", "0.3", "--init", "random",
                                     "--steps", "2", "--batch", "2", "--seq", "32", "--k", "2", "--checkpoint-every", "1",
                                     "--eval-every", "0", "--eval-windows", "2", "--seed", "1", "--run", run.path,
                                     "--shared", Shared.root.path], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        return run
    }

    func testFuzzPlanAndRunFolder() throws {
        let run = try makeRunFolder()
        let loaded = try CheckpointLoader.load(path: try Shared.url(Self.stories).path)
        let enumerator = FileManager.default.enumerator(atPath: run.path)
        let files = ((enumerator?.allObjects as? [String]) ?? []).filter { !$0.hasSuffix(".svg") && $0.contains(".") }.sorted()
        // Named by their last path component (checkpoints live in run/checkpoint/).
        let seeds = try files.map { (($0 as NSString).lastPathComponent, try Data(contentsOf: run.appendingPathComponent($0))) }
        XCTAssertTrue(files.contains("plan.json") && files.contains("options.json") && files.contains { $0.hasSuffix(".ckpt") }, "\(files)")
        var campaign = FuzzCampaign(format: "plan+run-folder", directory: scratch)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 6)
        for i in 0..<FuzzSettings.cases(400) where !campaign.outOfTime {
            let (name, seed) = mutator.pick(seeds)
            var data = seed
            var label: String
            if name.hasSuffix(".ckpt"), let newline = data.firstIndex(of: 0x0A), mutator.below(2) == 0 {
                // Edit the JSON body and re-sign it, so the edit reaches the decoder past the checksum.
                var body = data.subdata(in: (newline + 1)..<data.count)
                label = mutator.json(&body)
                data = Data("policyprune-checkpoint 1 sha256=\(SHA256.hex(body))\n".utf8) + body
            } else if mutator.below(3) == 0 {
                label = mutator.bytes(&data, headerBytes: data.count)
            } else {
                label = mutator.json(&data)
            }
            label = "\(name) " + label
            let path = try campaign.write(data, "mutated-\(name)")
            let url = URL(fileURLWithPath: path)
            campaign.run("case \(i): \(label)") {
                switch name {
                case "options.json":
                    let folder = scratch.appendingPathComponent("opts")
                    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    try data.write(to: folder.appendingPathComponent("options.json"))
                    _ = try RunDirectory(folder).readOptions()
                case let n where n.hasSuffix(".ckpt"):
                    let checkpoint = try CheckpointStore.decode(data)
                    _ = checkpoint.state.keepProbabilities.attention.count
                case let n where n.hasSuffix("scores.json"):
                    _ = try ScoresFile.read(url, config: loaded.config)
                case let n where n.hasSuffix(".jsonl"):
                    _ = RunLog.read(url)
                default:
                    let plan = try PrunePlan.decode(data)
                    try plan.validate(against: loaded.config)
                    _ = try Compaction.compact(config: loaded.config, weights: loaded.weights, mask: plan.structureMask)
                }
            }
        }
        campaign.finish()
    }

    // MARK: zero-shot tasks, corpora, gzip

    /// A gzip member holding `payload` in stored (uncompressed) deflate blocks: lets the test make small `.gz` seeds.
    static func gzipStored(_ payload: Data) -> Data {
        var out = Data([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255])
        var rest = payload[...]
        repeat {
            let chunk = rest.prefix(65_535)
            rest = rest.dropFirst(chunk.count)
            out.append(rest.isEmpty ? 1 : 0)
            let n = UInt16(chunk.count)
            withUnsafeBytes(of: n.littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: (~n).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: chunk)
        } while !rest.isEmpty
        withUnsafeBytes(of: CRC32.checksum(payload).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: payload.count).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// The first `lines` lines of a shared data file (gunzipped).
    static func head(_ relative: String, lines: Int) throws -> Data {
        let text = try Shared.data(relative)
        var count = 0
        let end = text.firstIndex { b in if b == 0x0A { count += 1 }; return count == lines } ?? text.endIndex
        return text[..<end] + Data([0x0A])
    }

    func testFuzzZeroShotAndCorpora() throws {
        // A small data root with the head of every zero-shot task file and corpus.
        let root = scratch.appendingPathComponent("data")
        var seeds: [(relative: String, data: Data)] = []
        for task in ZeroShotTask.allCases {
            for relative in task.relativePaths {
                let lines = try Self.head("data/" + relative, lines: 24)
                seeds.append((relative, relative.hasSuffix(".gz") ? Self.gzipStored(lines) : lines))
            }
        }
        seeds.append(("ptb/ptb.test.txt", try Self.head("data/ptb/ptb.test.txt", lines: 60)))
        seeds.append(("wikitext2/wiki.test.raw.gz", Self.gzipStored(try Self.head("data/wikitext2/wiki.test.raw.gz", lines: 60))))
        seeds.append(("c4/c4-validation.jsonl.gz", Self.gzipStored(try Self.head("data/c4/c4-validation.00000-of-00008.first1025docs.jsonl.gz", lines: 8))))
        // A real (Huffman-coded) gzip member for the inflater.
        seeds.append(("c4/olmo-sample.json.gz", try Data(contentsOf: try Shared.url("data/c4/olmo-test_fixtures-c4-sample.01.json.gz"))))
        func writeAll() throws {
            for (relative, data) in seeds {
                let url = root.appendingPathComponent(relative)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try data.write(to: url)
            }
        }
        try writeAll()
        /// Reads `relative` (at `url`, holding `data`) with the reader the tool uses for it.
        func load(_ relative: String, _ url: URL, _ data: Data) throws {
            if let task = ZeroShotTask.allCases.first(where: { $0.relativePaths.contains(relative) }) {
                _ = try task.load(dataRoot: root)
            } else if relative.hasPrefix("ptb") {
                _ = try CorpusText.ptb(url)
            } else if relative.hasPrefix("wikitext2") {
                _ = try CorpusText.wikitext2(url)
            } else if relative.contains("olmo") {
                _ = try Gzip.decompress(data, file: url.path)
            } else {
                _ = try CorpusText.c4(url)
            }
        }
        // Every seed reads cleanly, so the errors below come from the mutations.
        for (relative, data) in seeds { XCTAssertNoThrow(try load(relative, root.appendingPathComponent(relative), data), relative) }
        var campaign = FuzzCampaign(format: "zero-shot+corpora", directory: scratch)
        var mutator = Mutator(seed: FuzzSettings.seed &+ 7)
        for i in 0..<FuzzSettings.cases(500) where !campaign.outOfTime {
            let k = mutator.below(seeds.count)
            let (relative, seed) = seeds[k]
            var data = seed
            var label: String
            if relative.hasSuffix(".gz"), relative.contains("olmo") == false, mutator.below(2) == 0 {
                // Mutate the text, then compress, so the edit reaches the JSON-lines reader.
                var plain = try Gzip.decompress(seed)
                label = mutator.below(2) == 0 ? mutator.json(&plain) : mutator.bytes(&plain, headerBytes: plain.count)
                data = Self.gzipStored(plain)
            } else if relative.hasSuffix(".jsonl"), mutator.below(2) == 0 {
                // One line's JSON edited structurally.
                var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { Data($0) }
                let l = mutator.below(max(1, lines.count - 1))
                label = "line \(l + 1) " + mutator.json(&lines[l])
                data = Data(lines.joined(separator: [0x0A]))
            } else {
                label = mutator.bytes(&data, headerBytes: 512)
            }
            let url = root.appendingPathComponent(relative)
            try data.write(to: url)
            campaign.run("case \(i): \(relative) \(label)") {
                defer { try? seed.write(to: url) }
                try load(relative, url, data)
            }
        }
        campaign.finish()
    }

    // MARK: the built binary

    /// End to end with a 10 s limit per run: the regression files through `info` and `generate`, then mutated
    /// GGUF, llama2.c and Hugging Face models through `info` and `generate`, and mutated plans through `generate
    /// --plan`. Every run must exit (0 or a non-zero status with a message), never by a signal or the deadline.
    func testBinaryCases() throws {
        let gguf = try storiesGGUF()
        let fields = GGUFFields.walk(gguf)
        let blockCount = try XCTUnwrap(fields.first { $0.name == "'llama.block_count' value" })
        let l2c = try Shared.data(Self.stories)
        let l2cFolder = scratch.appendingPathComponent("bin-l2c")
        try FileManager.default.createDirectory(at: l2cFolder, withIntermediateDirectories: true)
        try Shared.data(Self.tok512).write(to: l2cFolder.appendingPathComponent("tok512.bin"))
        var tally = FuzzTally(format: "binary")
        let start = Date()
        func check(_ label: String, _ arguments: [String]) throws {
            let r = try Shared.run(arguments, timeout: caseDeadline)
            tally.cases += 1
            tally.slowest = max(tally.slowest, r.seconds)
            if r.timedOut { tally.hangs += 1; XCTFail("\(label): no exit within \(caseDeadline) s") }
            else if r.signalled { tally.crashes += 1; XCTFail("\(label): killed by signal \(r.status): \(r.stderr.suffix(300))") }
            else if r.status == 0 { tally.successes += 1 }
            else {
                tally.cleanErrors += 1
                XCTAssertFalse(r.stderr.isEmpty, "\(label): non-zero exit without a message")
            }
            if label.hasPrefix("block_count") {
                XCTAssertNotEqual(r.status, 0, label)
                XCTAssertTrue(r.stderr.contains("llama.block_count"), "\(label): \(r.stderr)")
            }
        }
        let generate = ["--prompt", "Once", "--max-tokens", "4"]
        for value: UInt64 in [0x7FFF_FFFF, 0xFFFF_FFFF] {
            var data = gguf
            for b in 0..<4 { data[blockCount.offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b))) }
            let path = scratch.appendingPathComponent("block-\(value).gguf").path
            try data.write(to: URL(fileURLWithPath: path))
            try check("block_count \(value) info", ["info", "--model", path])
            try check("block_count \(value) generate", ["generate", "--model", path] + generate)
        }
        var mutator = Mutator(seed: FuzzSettings.seed &+ 8)
        let box = FuzzSettings.secondsPerFormat
        for i in 0..<FuzzSettings.cases(12) {
            if let box, Date().timeIntervalSince(start) > box { break }
            var data = gguf
            let label = i % 4 == 3 ? mutator.bytes(&data, headerBytes: 4096) : mutator.edge(&data, mutator.pick(fields))
            let path = scratch.appendingPathComponent("bin-\(i % 2).gguf").path
            try data.write(to: URL(fileURLWithPath: path))
            try check("gguf \(label)", i % 2 == 0 ? ["info", "--model", path] : ["generate", "--model", path] + generate)
            var model = l2c
            let l2cLabel = i % 4 == 3 ? mutator.bytes(&model, headerBytes: 28)
                : mutator.edge(&model, HeaderField(offset: 4 * mutator.below(7), width: 4, name: "llama2.c header field"))
            let l2cPath = l2cFolder.appendingPathComponent("model.bin").path
            try model.write(to: URL(fileURLWithPath: l2cPath))
            try check("llama2c \(l2cLabel)", ["generate", "--model", l2cPath] + generate)
        }
        tally.seconds = Date().timeIntervalSince(start)
        tally.peakRSSMiB = peakRSSMiB()
        print("fuzz binary: \(tally.cases) runs, \(tally.cleanErrors) clean errors, \(tally.successes) successes, \(tally.hangs) hangs, "
              + "\(tally.crashes) crashes, slowest \(String(format: "%.2f", tally.seconds > 0 ? tally.slowest : 0)) s")
        if let path = FuzzSettings.report, let json = try? JSONEncoder().encode(tally) {
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            if let h = FileHandle(forWritingAtPath: path) { h.seekToEndOfFile(); h.write(json + Data("\n".utf8)); h.closeFile() }
        }
    }
}
