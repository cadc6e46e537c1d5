import Essentials
import XCTest
import Kernels
@testable import Checkpoints

/// Every common GGUF tensor type against gguf-py 0.19.0's `gguf.quants.dequantize` (numpy float32), read through the
/// normal path (`GGUFFile.floats(named:)`, `CheckpointLoader`).
///
/// The fixture `Fixtures/dequant_fixtures.json` was written by `Fixtures/make_dequant_fixtures.py` (its header gives
/// the command and the venv): seeded random blocks with the f16 scale fields set to finite values in ±[1e-3, 1e-1],
/// and gguf-py's results as float32 bit patterns. It is located through `#filePath` (the target declares no
/// resources), so these tests need the source tree, as every test here does.
///
/// Tolerance: exact (bit-identical float32). Our kernels and gguf-py both compute each value as a short chain of
/// correctly rounded float32 operations in the same order (scale products first, then `dl * q - ml`), with no fused
/// multiply-add, so any difference at all is a layout or operation-order bug.
final class DequantFixtureTests: XCTestCase {
    /// The types the issue names; the fixture must cover exactly these and `GGMLType.isSupported` must accept them.
    static let commonTypes = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                              "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"]

    struct Fixture: Decodable {
        let ggufVersion: String
        let tensors: [Tensor]
        enum CodingKeys: String, CodingKey { case ggufVersion = "gguf_version", tensors }
    }

    /// One tensor: `shape` in numpy order (rows, elements per row), raw ggml blocks as hex, gguf-py's float32 bits.
    struct Tensor: Decodable {
        let type: String
        let shape: [Int]
        let bytes: String
        let expectedBits: [UInt32]
        enum CodingKeys: String, CodingKey { case type, shape, bytes, expectedBits = "expected_bits" }
    }

    private var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static func loadFixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/dequant_fixtures.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    private static func type(named name: String) throws -> GGMLType {
        try XCTUnwrap(GGMLType.allCases.first { $0.description == name }, "no GGMLType named \(name)")
    }

    /// The fixture holds each common type once, at least three blocks each, one of them as a tensor of two rows.
    func testFixtureCoversEveryCommonType() throws {
        let fixture = try Self.loadFixture()
        XCTAssertEqual(fixture.ggufVersion, "0.19.0")
        XCTAssertEqual(fixture.tensors.map(\.type).sorted(), Self.commonTypes.sorted())
        for t in fixture.tensors {
            let type = try Self.type(named: t.type)
            XCTAssertTrue(type.isSupported, t.type)
            let elements = t.shape.reduce(1, *)
            XCTAssertEqual(t.expectedBits.count, elements, t.type)
            XCTAssertEqual(t.bytes.utf8.count / 2, type.byteCount(elements: elements), t.type)
            if type.blockLayout.elements > 1 { XCTAssertGreaterThanOrEqual(elements / type.blockLayout.elements, 3, t.type) }
        }
        XCTAssertTrue(fixture.tensors.contains { $0.shape[0] == 2 }, "no two-row tensor")
    }

    /// All fifteen fixture tensors written into one GGUF, read back with `GGUFFile.floats(named:)`, bit for bit.
    func testEveryCommonTypeMatchesGGUFPyBitForBit() throws {
        let fixture = try Self.loadFixture()
        var builder = GGUFBuilder()
        for t in fixture.tensors {
            // ggml lists dimensions innermost first: [elements per row, rows].
            builder.tensors.append((name: "t.\(t.type)", dims: t.shape.reversed(), type: try Self.type(named: t.type),
                                    data: bytes(fromHex: t.bytes)))
        }
        let gguf = try GGUFFile(path: try builder.write(to: dir, name: "fixtures.gguf"))
        for t in fixture.tensors {
            let got = try gguf.floats(named: "t.\(t.type)")
            assertBitIdentical(got, t.expectedBits, t.type)
        }
    }

    /// The kernels called directly, one block per call and from a source one byte past an aligned address: a block
    /// never depends on its neighbours (the loader splits tensors into chunks of blocks across threads) and no
    /// kernel assumes alignment (safetensors data need not be aligned).
    func testKernelsBlockByBlockAtOddAddresses() throws {
        for t in try Self.loadFixture().tensors {
            let type = try Self.type(named: t.type)
            let (perBlock, blockBytes) = type.blockLayout
            let raw = bytes(fromHex: t.bytes)
            let blocks = raw.count / blockBytes
            let shifted = UnsafeMutableRawPointer.allocate(byteCount: raw.count + 1, alignment: 64)
            defer { shifted.deallocate() }
            raw.withUnsafeBytes { (shifted + 1).copyMemory(from: $0.baseAddress!, byteCount: raw.count) }
            var got = [Float](repeating: .nan, count: blocks * perBlock)
            got.withUnsafeMutableBufferPointer { out in
                for b in 0..<blocks {
                    Dequantize.blocks(type, UnsafeRawPointer(shifted + 1 + b * blockBytes), out.baseAddress! + b * perBlock, 1)
                }
            }
            assertBitIdentical(got, t.expectedBits, t.type)
        }
    }

    /// A type outside the supported set (IQ2_XXS, and every other one) opens, but reading it is a typed error that
    /// names the file, the tensor and the type.
    func testUnsupportedTypesAreTypedErrorsNamingTensorAndType() throws {
        let unsupported = GGMLType.allCases.filter { !$0.isSupported }
        XCTAssertTrue(unsupported.contains(.iq2_xxs))
        XCTAssertFalse(unsupported.contains { Self.commonTypes.contains($0.description) })
        var builder = GGUFBuilder()
        for type in unsupported {
            let (perBlock, blockBytes) = type.blockLayout
            builder.tensors.append((name: "blk.0.\(type).weight", dims: [perBlock, 2], type: type,
                                    data: [UInt8](repeating: 0, count: 2 * blockBytes)))
        }
        let path = try builder.write(to: dir, name: "unsupported.gguf")
        let gguf = try GGUFFile(path: path)
        for type in unsupported {
            let name = "blk.0.\(type).weight"
            XCTAssertThrowsError(try gguf.floats(named: name)) { error in
                XCTAssertEqual(error as? CheckpointError, .unknownTensorType(file: path, tensor: name, type: type.description))
                let text = "\(error)"
                XCTAssertTrue(text.contains(path) && text.contains(name) && text.contains(type.description), text)
            }
        }
    }

    /// A tiny llama whose weights use the newly supported types loads through `CheckpointLoader`, and each weight
    /// equals the tensor's own dequantisation (v, gate, up, down and the embedding are stored without reordering).
    func testTinyModelWithNewTypesLoads() throws {
        let hidden = 32, ffn = 256, vocab = 8
        var builder = GGUFBuilder()
        builder.metadata = [
            ("general.architecture", .string("llama")),
            ("llama.embedding_length", .uint32(UInt32(hidden))),
            ("llama.block_count", .uint32(1)),
            ("llama.attention.head_count", .uint32(2)),
            ("llama.attention.head_count_kv", .uint32(1)),
            ("llama.feed_forward_length", .uint32(UInt32(ffn))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("llama.context_length", .uint32(64)),
        ]
        var rng = Xoshiro256(seed: 7)
        func add(_ name: String, _ dims: [Int], _ type: GGMLType) {
            builder.tensors.append((name: name, dims: dims, type: type, data: Self.randomBlocks(type, elements: dims.reduce(1, *), &rng)))
        }
        add("token_embd.weight", [hidden, vocab], .q5_0)
        add("output_norm.weight", [hidden], .f32)
        add("output.weight", [hidden, vocab], .q5_1)
        add("blk.0.attn_norm.weight", [hidden], .f32)
        add("blk.0.attn_q.weight", [hidden, hidden], .iq4_nl)
        add("blk.0.attn_k.weight", [hidden, hidden / 2], .q5_0)
        add("blk.0.attn_v.weight", [hidden, hidden / 2], .iq4_nl)
        add("blk.0.attn_output.weight", [hidden, hidden], .q5_1)
        add("blk.0.ffn_norm.weight", [hidden], .f32)
        add("blk.0.ffn_gate.weight", [hidden, ffn], .q5_0)
        add("blk.0.ffn_up.weight", [hidden, ffn], .q5_1)
        add("blk.0.ffn_down.weight", [ffn, hidden], .q3_K)
        let path = try builder.write(to: dir, name: "tiny-new-types.gguf")

        let ckpt = try CheckpointLoader.load(path: path)
        XCTAssertEqual(ckpt.config.layers, [LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 16, ffnDim: ffn)])
        XCTAssertEqual(ckpt.config.vocabSize, vocab)
        let gguf = try GGUFFile(path: path)
        let w = ckpt.weights
        let layer = w.layers[0]
        let direct: [(String, [Float], String)] = [
            ("token_embd", w.tokenEmbedding, "token_embd.weight"), ("output", w.head ?? [], "output.weight"),
            ("v", layer.wv, "blk.0.attn_v.weight"), ("o", layer.wo, "blk.0.attn_output.weight"),
            ("gate", layer.gate, "blk.0.ffn_gate.weight"), ("up", layer.up, "blk.0.ffn_up.weight"),
            ("down", layer.down, "blk.0.ffn_down.weight"),
        ]
        for (label, loaded, tensor) in direct {
            let want = try gguf.floats(named: tensor)
            XCTAssertEqual(loaded.map(\.bitPattern), want.map(\.bitPattern), label)
            XCTAssertTrue(loaded.allSatisfy(\.isFinite) && loaded.contains { $0 != 0 }, label)
        }
        // q and k are row-permuted for RoPE: same multiset of values.
        XCTAssertEqual(layer.wq.sorted(), try gguf.floats(named: "blk.0.attn_q.weight").sorted())
        XCTAssertEqual(layer.wk.sorted(), try gguf.floats(named: "blk.0.attn_k.weight").sorted())
    }

    /// f16 scale fields of each type's block (ggml's block_* structs), set to finite values by `randomBlocks`.
    static let scaleOffsets: [GGMLType: [Int]] = [
        .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0], .q2_K: [80, 82], .q3_K: [108],
        .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208], .iq4_nl: [0], .iq4_xs: [0],
    ]

    /// Random blocks of `type` with every f16 scale set to ±[1e-3, 1e-1]; F32 data as small finite floats.
    static func randomBlocks(_ type: GGMLType, elements: Int, _ rng: inout Xoshiro256) -> [UInt8] {
        if type == .f32 {
            return (0..<elements).flatMap { _ in withUnsafeBytes(of: Float.random(in: 0.5...1.5, using: &rng).bitPattern.littleEndian) { Array($0) } }
        }
        let (perBlock, blockBytes) = type.blockLayout
        var out = (0..<elements / perBlock * blockBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for block in 0..<elements / perBlock {
            for offset in scaleOffsets[type] ?? [] {
                let scale = Float.random(in: 1e-3...1e-1, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
                let bits = Precision.half(from: scale)
                out[block * blockBytes + offset] = UInt8(bits & 0xff)
                out[block * blockBytes + offset + 1] = UInt8(bits >> 8)
            }
        }
        return out
    }

    /// Fails with the first differing index, both values and the number of differences.
    private func assertBitIdentical(_ got: [Float], _ want: [UInt32], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        guard got.count == want.count else {
            return XCTFail("\(label): \(got.count) values, gguf-py has \(want.count)", file: file, line: line)
        }
        let bad = got.indices.filter { got[$0].bitPattern != want[$0] }
        if let i = bad.first {
            XCTFail("\(label): \(bad.count) of \(got.count) values differ; first at [\(i)]: \(got[i]) " +
                    "(0x\(String(got[i].bitPattern, radix: 16))) != gguf-py \(Float(bitPattern: want[i])) (0x\(String(want[i], radix: 16)))",
                    file: file, line: line)
        }
    }
}
