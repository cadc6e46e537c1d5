import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Tokenization
import Transformer
import XCTest

/// The writers on their own: every GGUF metadata type reads back, tensors of every storage type read back as
/// predicted, the tokenizer is carried over. Exact comparisons (data movement and the stated rounding only).
final class WriterTests: XCTestCase {
    func testGGUFMetadataAndTensorsReadBack() throws {
        let folder = try temporaryFolder(self)
        var w = GGUFWriter()
        let values: [(String, GGUFValue)] = [
            ("a.u8", .uint8(200)), ("a.i8", .int8(-5)), ("a.u16", .uint16(60000)), ("a.i16", .int16(-300)),
            ("a.u32", .uint32(4_000_000_000)), ("a.i32", .int32(-7)), ("a.f32", .float32(1.5)), ("a.bool", .bool(true)),
            ("a.str", .string("héllo ▁")), ("a.u64", .uint64(1 << 40)), ("a.i64", .int64(-(1 << 40))), ("a.f64", .float64(0.1)),
            ("a.strings", .array(.string(["x", "", "yz"]))), ("a.ints", .array(.int32([1, -2, 3]))),
            ("a.floats", .array(.float32([0.25, -1]))), ("a.bools", .array(.bool([true, false]))),
            ("a.nested", .array(.array([.uint8([1, 2]), .uint8([3])]))),
        ]
        for (k, v) in values { w.set(k, v) }
        let matrix = (0..<(3 * 64)).map { Float($0) * 0.37 - 20 }
        w.tensors = [
            GGUFWriter.Tensor(TensorRecord(name: "m.f32", shape: [3, 64], values: matrix), type: .f32),
            GGUFWriter.Tensor(TensorRecord(name: "m.f16", shape: [3, 64], values: matrix), type: .f16),
            GGUFWriter.Tensor(TensorRecord(name: "m.q8", shape: [3, 64], values: matrix), type: .q8_0),
            GGUFWriter.Tensor(TensorRecord(name: "v", shape: [5], values: [1, 2, 3, 4, 5]), type: .f32),
        ]
        let path = folder + "/t.gguf"
        try w.write(to: path)
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.metadataKeys, values.map(\.0))
        for (k, v) in values { XCTAssertEqual(file.metadata[k], v, k) }
        XCTAssertEqual(try file.floats(named: "m.f32"), matrix)
        XCTAssertEqual(try file.floats(named: "m.f16"), WeightDType.f16.roundTrip(matrix))
        XCTAssertEqual(try file.floats(named: "m.q8"), WeightDType.q8_0.roundTrip(matrix))
        XCTAssertEqual(file.tensorInfo(named: "m.q8")?.dims, [64, 3])
        XCTAssertEqual(try file.floats(named: "v"), [1, 2, 3, 4, 5])
        // Q8_0 error within half a step of the block maximum.
        let q = WeightDType.q8_0.roundTrip(matrix)
        for b in 0..<(matrix.count / 32) {
            let block = matrix[(b * 32)..<((b + 1) * 32)]
            let amax = block.map(abs).max()!
            for j in block.indices { XCTAssertLessThanOrEqual(abs(q[j] - matrix[j]), amax * Float(WeightDType.q8_0.relativeRoundingBound)) }
        }
        // A tensor whose rows are not whole Q8_0 blocks is refused, and nothing is written.
        var bad = GGUFWriter()
        bad.tensors = [GGUFWriter.Tensor(TensorRecord(name: "odd", shape: [2, 20], values: [Float](repeating: 1, count: 40)), type: .q8_0)]
        XCTAssertThrowsError(try bad.write(to: folder + "/bad.gguf"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad.gguf"))
    }

    func testSafetensorsReadBack() throws {
        let folder = try temporaryFolder(self)
        let values: [Float] = [0, 1, -2.5, 3.14159, 65504, 1e-8, -7.25e5, 0.1]
        for dtype in [WeightDType.f32, .f16, .bf16] {
            let path = folder + "/\(dtype).safetensors"
            try SafetensorsWriter.write([TensorRecord(name: "a", shape: [2, 4], values: values),
                                         TensorRecord(name: "b", shape: [3], values: [1, 2, 3])],
                                        dtype: dtype, metadata: ["note": "x"], to: path)
            let file = try SafetensorsFile(path: path)
            XCTAssertEqual(file.metadata, ["note": "x", "format": "pt"])
            XCTAssertEqual(file.tensorInfo(named: "a")?.shape, [2, 4])
            XCTAssertEqual(file.tensorInfo(named: "a")?.dtype, dtype.safetensorsName)
            XCTAssertEqual(try file.floats(named: "a"), dtype.roundTrip(values))
            XCTAssertEqual(try file.floats(named: "b"), [1, 2, 3])
            XCTAssertEqual((file.tensorInfo(named: "a")!.byteRange.lowerBound) % 8, 0, "data starts 8-aligned")
        }
        XCTAssertThrowsError(try SafetensorsWriter.write([], dtype: .q8_0, to: folder + "/q.safetensors"))
    }

    /// SmolLM2's tokenizer metadata is copied key for key, and the exported file tokenizes like the original.
    func testGGUFTokenizerCarriedOver() throws {
        let m = try Models.smol()
        guard case .gguf(let source) = m.checkpoint.tokenizer else { return XCTFail("SmolLM2 tokenizer source") }
        let folder = try temporaryFolder(self)
        let plan = try Plans.uniform(m.model.config, groups: 2, channels: 683)
        let compacted = try plan.compact(config: m.model.config, weights: m.model.weights)
        let out = folder + "/smol.gguf"
        _ = try ModelExporter.export(ExportRequest(config: compacted.config, weights: compacted.weights, format: .gguf, dtype: .q8_0,
                                                   tokenizer: m.checkpoint.tokenizer, name: "smol"), to: out, force: false)
        let exported = try GGUFFile(path: out)
        let keys = source.metadataKeys.filter { $0.hasPrefix("tokenizer.") }
        XCTAssertGreaterThan(keys.count, 5)
        XCTAssertEqual(exported.metadataKeys.filter { $0.hasPrefix("tokenizer.") }, keys)
        for k in keys { XCTAssertEqual(exported.metadata[k], source.metadata[k], k) }
        let text = "The quick brown fox jumps over the lazy dog. 1234567890"
        XCTAssertEqual(try TokenizerLoader.gguf(exported).encode(text, addSpecialTokens: false), try TokenizerLoader.gguf(source).encode(text, addSpecialTokens: false))
    }

    /// The llama2.c tok512 vocabulary becomes a GGUF `llama` (SentencePiece) tokenizer that encodes the English eval
    /// text to the same ids as run.c (the fixture goldens).
    func testLlama2cTokenizerConvertedForGGUF() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        let out = folder + "/stories.gguf"
        _ = try ModelExporter.export(ExportRequest(config: m.model.config, weights: m.model.weights, format: .gguf, dtype: .f32,
                                                   tokenizer: m.checkpoint.tokenizer, name: "stories"), to: out, force: false)
        let exported = try GGUFFile(path: out)
        let tokens = try XCTUnwrap(exported.metadata["tokenizer.ggml.tokens"]?.strings)
        XCTAssertEqual(tokens.count, 512)
        XCTAssertEqual(Array(tokens.prefix(3)), ["<unk>", "<s>", "</s>"])
        XCTAssertEqual(exported.metadata["tokenizer.ggml.token_type"]?.ints?[3], 6, "<0x00> is a byte token")
        let text = try String(contentsOf: try Shared.url("models/eval_texts/general_en.txt"), encoding: .utf8)
        let expected: [Int] = try Shared.json("fixtures/tokenizers/stories260K_goldens.json").get("eval_texts", "general_en.txt", "ids")
        XCTAssertEqual(try TokenizerLoader.gguf(exported).encode(text, addSpecialTokens: true), expected)
    }
}
