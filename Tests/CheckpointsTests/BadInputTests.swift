import XCTest
import FixtureSupport
@testable import Checkpoints

/// Damaged copies of the real files, made in a temporary directory; each test asserts the typed error and that it
/// names the damaged file and the tensor or key at fault.
final class BadInputTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Copies `relative` (under shared/) into the temp dir, applying `edit` to its bytes.
    private func damagedCopy(_ relative: String, name: String? = nil, edit: (inout Data) throws -> Void) throws -> String {
        let source = try Shared.url(relative)
        var data = try Data(contentsOf: source)
        try edit(&data)
        let url = dir.appendingPathComponent(name ?? source.lastPathComponent)
        try data.write(to: url)
        return url.path
    }

    private func assertError(_ body: @autoclosure () throws -> Any, names: [String], file: StaticString = #filePath, line: UInt = #line,
                             _ match: (CheckpointError) -> Bool) {
        assertCheckpointError(try body(), names: names, file: file, line: line, match)
    }

    /// Byte offset just after the GGUF string `s` (uint64 length + bytes) in `data`.
    private func offsetAfterGGUFString(_ s: String, in data: Data) throws -> Int {
        var needle = Data()
        withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { needle.append(contentsOf: $0) }
        needle.append(contentsOf: s.utf8)
        let range = try XCTUnwrap(data.range(of: needle), "\(s) not found")
        return range.upperBound
    }

    private func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
    }

    static let smol = "models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"
    static let vocab = "fixtures/tokenizers/ggml-vocab-llama-spm.gguf"

    // MARK: GGUF

    func testGGUFWrongMagic() throws {
        let path = try damagedCopy(Self.vocab) { $0[0] = UInt8(ascii: "X") }
        assertError(try GGUFFile(path: path), names: [path]) { if case .badMagic(path, _) = $0 { return true }; return false }
        assertError(try CheckpointLoader.load(path: path), names: [path]) { if case .badMagic(path, _) = $0 { return true }; return false }
    }

    func testGGUFBadVersion() throws {
        for version: UInt32 in [1, 4] {
            let path = try damagedCopy(Self.vocab, name: "v\(version).gguf") { put(version, at: 4, in: &$0) }
            assertError(try GGUFFile(path: path), names: [path]) { $0 == .unsupportedVersion(file: path, version: Int(version)) }
        }
    }

    func testGGUFTruncatedInMetadata() throws {
        let path = try damagedCopy(Self.vocab) { $0 = $0.prefix(300_000) }
        assertError(try GGUFFile(path: path), names: [path, "tokenizer.ggml"]) {
            if case .truncated(path, _, _, _) = $0 { return true }; return false
        }
        let tiny = try damagedCopy(Self.vocab, name: "tiny.gguf") { $0 = $0.prefix(10) }
        assertError(try GGUFFile(path: tiny), names: [tiny, "tensor count"]) { if case .truncated = $0 { return true }; return false }
    }

    func testGGUFUnknownMetadataValueType() throws {
        let path = try damagedCopy(Self.vocab) { data in
            let typeOffset = try offsetAfterGGUFString("tokenizer.ggml.model", in: data)
            put(UInt32(99), at: typeOffset, in: &data)
        }
        assertError(try GGUFFile(path: path), names: [path, "tokenizer.ggml.model"]) {
            $0 == .unknownValueType(file: path, key: "tokenizer.ggml.model", type: 99)
        }
    }

    func testGGUFTensorDataTruncated() throws {
        let path = try damagedCopy(Self.smol) { $0 = $0.prefix(50_000_000) }
        assertError(try CheckpointLoader.load(path: path), names: [path, "tensor 'blk."]) {
            if case .truncated(path, _, _, _) = $0 { return true }; return false
        }
    }

    /// Tensor info field order: name, n_dims (u32), dims (u64 each), type (u32), offset (u64).
    func testGGUFTensorTypeAndOffsetDamage() throws {
        let name = "blk.0.attn_q.weight"
        func infoField(_ data: Data, skipping extra: Int) throws -> Int {
            try offsetAfterGGUFString(name, in: data) + 4 + 8 * 2 + extra
        }
        let unknown = try damagedCopy(Self.smol, name: "unknown-type.gguf") { put(UInt32(200), at: try infoField($0, skipping: 0), in: &$0) }
        assertError(try GGUFFile(path: unknown), names: [unknown, name, "200"]) {
            if case .unknownTensorType(unknown, name, _) = $0 { return true }; return false
        }
        // A real ggml type this reader does not dequantise (Q8_1, an intermediate type with 32-value blocks like the
        // file's Q4_1, so the header still opens): reading the tensor fails, as does loading the model.
        let q8_1 = try damagedCopy(Self.smol, name: "q8_1.gguf") { put(GGMLType.q8_1.rawValue, at: try infoField($0, skipping: 0), in: &$0) }
        let gguf = try GGUFFile(path: q8_1)
        assertError(try gguf.floats(named: name), names: [q8_1, name, "Q8_1"]) { $0 == .unknownTensorType(file: q8_1, tensor: name, type: "Q8_1") }
        assertError(try CheckpointLoader.load(path: q8_1), names: [q8_1, name]) { if case .unknownTensorType = $0 { return true }; return false }

        let outOfRange = try damagedCopy(Self.smol, name: "offset.gguf") { put(UInt64(1 << 40), at: try infoField($0, skipping: 4), in: &$0) }
        assertError(try GGUFFile(path: outOfRange), names: [outOfRange, name]) {
            if case .truncated(outOfRange, let what, _, _) = $0 { return what.contains(name) }; return false
        }
    }

    func testGGUFUnknownArchitecture() throws {
        let path = try damagedCopy(Self.smol, name: "arch.gguf") { data in
            let at = try offsetAfterGGUFString("general.architecture", in: data) + 4 + 8
            data.replaceSubrange(at..<at + 5, with: Array("xyzzy".utf8))   // "llama" -> "xyzzy", same length
        }
        assertError(try CheckpointLoader.load(path: path), names: [path, "xyzzy"]) { $0 == .unknownArchitecture(file: path, architecture: "xyzzy") }
    }

    // MARK: llama2.c

    func testLlama2cTruncatedAndOversized() throws {
        let cut = try damagedCopy("models/stories260K/stories260K.bin", name: "cut.bin") { $0 = $0.dropLast(100) }
        assertError(try CheckpointLoader.load(path: cut), names: [cut]) { if case .truncated(cut, _, _, _) = $0 { return true }; return false }
        let header = try damagedCopy("models/stories260K/stories260K.bin", name: "header.bin") { $0 = $0.prefix(20) }
        assertError(try CheckpointLoader.load(path: header), names: [header, "vocab_size"]) { if case .truncated = $0 { return true }; return false }
        let long = try damagedCopy("models/stories260K/stories260K.bin", name: "long.bin") { $0.append(contentsOf: [0, 0, 0, 0]) }
        assertError(try CheckpointLoader.load(path: long), names: [long]) { if case .corrupt(long, _) = $0 { return true }; return false }
        // vocab_size made negative: the file now lacks the separate classifier wcls.
        let unshared = try damagedCopy("models/stories260K/stories260K.bin", name: "neg.bin") { put(Int32(-512), at: 20, in: &$0) }
        assertError(try CheckpointLoader.load(path: unshared), names: [unshared, "wcls"]) { if case .truncated = $0 { return true }; return false }
        let zeroHeads = try damagedCopy("models/stories260K/stories260K.bin", name: "heads.bin") { put(Int32(0), at: 12, in: &$0) }
        assertError(try CheckpointLoader.load(path: zeroHeads), names: [zeroHeads, "n_heads"]) { if case .badValue = $0 { return true }; return false }
    }

    // MARK: safetensors + config.json

    /// Copies the stories260K HF directory, rewriting the safetensors header with `edit` (data bytes unchanged).
    private func hfCopy(editHeader edit: ((inout [String: Any]) -> Void)? = nil, editConfig: ((inout [String: Any]) -> Void)? = nil) throws -> URL {
        let source = try Shared.url("fixtures/models/stories260K-hf")
        let target = dir.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as? [String: Any])
        editConfig?(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: target.appendingPathComponent("config.json"))
        let model = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        let length = Int(model.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: model.subdata(in: 8..<8 + length)) as? [String: Any])
        edit?(&header)
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(model.subdata(in: 8 + length..<model.count))
        try out.write(to: target.appendingPathComponent("model.safetensors"))
        return target
    }

    private static func setField(_ header: inout [String: Any], _ tensor: String, _ key: String, _ value: Any) {
        var entry = header[tensor] as? [String: Any] ?? [:]
        entry[key] = value
        header[tensor] = entry
    }

    func testSafetensorsHeaderGarbage() throws {
        let target = try hfCopy()
        let file = target.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: file)
        data[8] = UInt8(ascii: "#")   // the JSON's opening brace
        try data.write(to: file)
        assertError(try CheckpointLoader.load(path: target.path), names: [file.path]) { if case .corrupt(file.path, _) = $0 { return true }; return false }
        put(UInt64(1) << 40, at: 0, in: &data)   // header length beyond the file
        try data.write(to: file)
        assertError(try CheckpointLoader.load(path: target.path), names: [file.path, "header"]) { if case .truncated(file.path, _, _, _) = $0 { return true }; return false }
    }

    func testSafetensorsOffsetsBeyondFile() throws {
        let tensor = "model.layers.2.mlp.up_proj.weight"
        let target = try hfCopy(editHeader: { Self.setField(&$0, tensor, "data_offsets", [2_000_000, 2_000_000 + 172 * 64 * 4]) })
        let file = target.appendingPathComponent("model.safetensors").path
        assertError(try CheckpointLoader.load(path: target.path), names: [file, tensor]) { if case .truncated(file, _, _, _) = $0 { return true }; return false }
    }

    func testSafetensorsUnknownDtype() throws {
        let tensor = "model.norm.weight"
        let unsupported = try hfCopy(editHeader: { Self.setField(&$0, tensor, "dtype", "I32") })   // same element size as F32
        let file = unsupported.appendingPathComponent("model.safetensors").path
        assertError(try CheckpointLoader.load(path: unsupported.path), names: [file, tensor, "I32"]) {
            $0 == .unknownTensorType(file: file, tensor: tensor, type: "I32")
        }
        let unknown = try hfCopy(editHeader: { Self.setField(&$0, tensor, "dtype", "Q9") })
        let file2 = unknown.appendingPathComponent("model.safetensors").path
        assertError(try CheckpointLoader.load(path: unknown.path), names: [file2, tensor, "Q9"]) {
            $0 == .unknownTensorType(file: file2, tensor: tensor, type: "Q9")
        }
    }

    func testConfigUnknownModelType() throws {
        let target = try hfCopy(editConfig: { $0["model_type"] = "gpt2" })
        let config = target.appendingPathComponent("config.json").path
        assertError(try CheckpointLoader.load(path: target.path), names: [config, "gpt2"]) { $0 == .unknownArchitecture(file: config, architecture: "gpt2") }
        let bad = try hfCopy(editConfig: { $0["num_key_value_heads"] = 3 })
        let badConfig = bad.appendingPathComponent("config.json").path
        assertError(try CheckpointLoader.load(path: bad.path), names: [badConfig, "num_key_value_heads", "3"]) { if case .badValue = $0 { return true }; return false }
        let missing = try hfCopy(editConfig: { $0["hidden_size"] = nil })
        assertError(try CheckpointLoader.load(path: missing.path), names: ["hidden_size"]) { if case .missingKey = $0 { return true }; return false }
    }

    /// RoPE types other than default and llama3, and llama3 without its parameters, are errors naming the key.
    func testConfigRoPEScaling() throws {
        let yarn = try hfCopy(editConfig: { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0] })
        let yarnConfig = yarn.appendingPathComponent("config.json").path
        assertError(try CheckpointLoader.load(path: yarn.path), names: [yarnConfig, "rope_scaling.rope_type", "yarn"]) {
            if case .badValue = $0 { return true }; return false
        }
        let incomplete = try hfCopy(editConfig: { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                      "high_freq_factor": 4.0] })
        assertError(try CheckpointLoader.load(path: incomplete.path), names: ["rope_scaling.original_max_position_embeddings"]) {
            if case .badValue = $0 { return true }; return false
        }
        let llama3 = try hfCopy(editConfig: { $0["rope_scaling"] = ["type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192] })
        XCTAssertEqual(try CheckpointLoader.load(path: llama3.path).config.ropeScaling,
                       .llama3(Llama3RoPEScaling(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContextLength: 8192)))
        let sliding = try hfCopy(editConfig: { $0["model_type"] = "qwen2"; $0["use_sliding_window"] = true })
        assertError(try CheckpointLoader.load(path: sliding.path), names: ["use_sliding_window"]) {
            if case .badValue = $0 { return true }; return false
        }
    }

    func testTensorShapeDisagreeingWithConfig() throws {
        let target = try hfCopy(editConfig: { $0["intermediate_size"] = 170 })
        let file = target.appendingPathComponent("model.safetensors").path
        let tensor = "model.layers.0.mlp.down_proj.weight"
        assertError(try CheckpointLoader.load(path: target.path), names: [file, tensor, "[64, 172]"]) {
            $0 == .shapeMismatch(file: file, tensor: tensor, expected: "[64, 170]", found: "[64, 172]")
        }
    }

    func testMissingAndExtraTensors() throws {
        let name = "model.layers.4.self_attn.v_proj.weight"
        let missing = try hfCopy(editHeader: { $0[name] = nil })
        assertError(try CheckpointLoader.load(path: missing.path), names: [name]) { if case .missingTensor(_, name) = $0 { return true }; return false }
        let extra = try hfCopy(editHeader: { $0["lm_head.weight"] = $0["model.embed_tokens.weight"] })   // tied model with a head
        assertError(try CheckpointLoader.load(path: extra.path), names: ["lm_head.weight"]) {
            if case .unexpectedTensor(_, "lm_head.weight") = $0 { return true }; return false
        }
    }
}
