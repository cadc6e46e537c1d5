import XCTest
import FixtureSupport
@testable import Checkpoints

/// Formats beyond the three real files: a heterogeneous `deci` GGUF (per-layer head and FFN arrays, dropped
/// sublayers, q/k biases) and a sharded Hugging Face checkpoint. Tolerance: exact everywhere (pure data movement).
final class HeterogeneousAndShardedTests: XCTestCase {
    private var dir: URL!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func f32(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }

    /// Layer 0 full, layer 1 without attention (0 heads), layer 2 without MLP (feed_forward_length 0).
    func testDeciGGUFWithPerLayerArrays() throws {
        var b = GGUFBuilder()
        b.metadata = [
            ("general.architecture", .string("deci")),
            ("deci.embedding_length", .uint32(8)),
            ("deci.block_count", .uint32(3)),
            ("deci.attention.head_count", .int32s([2, 0, 2])),
            ("deci.attention.head_count_kv", .int32s([1, 0, 1])),
            ("deci.feed_forward_length", .int32s([6, 4, 0])),
            ("deci.attention.key_length", .uint32(4)),
            ("deci.attention.layer_norm_rms_epsilon", .float32(1e-5)),
            ("deci.rope.freq_base", .float32(500000)),
            ("deci.context_length", .uint32(64)),
        ]
        var serial: Float = 0
        var stored: [String: [Float]] = [:]
        func add(_ name: String, _ dims: [Int]) {
            let values = (0..<dims.reduce(1, *)).map { _ -> Float in serial += 1; return serial }
            stored[name] = values
            b.tensors.append((name: name, dims: dims, type: .f32, data: f32(values)))
        }
        add("token_embd.weight", [8, 5]); add("output_norm.weight", [8]); add("output.weight", [8, 5])
        for l in [0, 2] {
            add("blk.\(l).attn_norm.weight", [8]); add("blk.\(l).attn_q.weight", [8, 8]); add("blk.\(l).attn_k.weight", [8, 4])
            add("blk.\(l).attn_v.weight", [8, 4]); add("blk.\(l).attn_output.weight", [8, 8])
            add("blk.\(l).attn_q.bias", [8]); add("blk.\(l).attn_k.bias", [4]); add("blk.\(l).attn_v.bias", [4])
        }
        for (l, ffn) in [(0, 6), (1, 4)] {
            add("blk.\(l).ffn_norm.weight", [8]); add("blk.\(l).ffn_gate.weight", [8, ffn])
            add("blk.\(l).ffn_up.weight", [8, ffn]); add("blk.\(l).ffn_down.weight", [ffn, 8])
        }
        let path = try b.write(to: dir, name: "deci.gguf")
        let ckpt = try CheckpointLoader.load(path: path)
        XCTAssertEqual(ckpt.config.architecture, "deci")
        XCTAssertEqual(ckpt.config.layers, [
            LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 4, ffnDim: 6),
            LayerSpec(queryHeads: 0, kvHeads: 0, headDim: 4, ffnDim: 4, hasAttention: false),
            LayerSpec(queryHeads: 2, kvHeads: 1, headDim: 4, ffnDim: 0, hasMLP: false),
        ])
        XCTAssertEqual(ckpt.config.vocabSize, 5)
        XCTAssertFalse(ckpt.config.tiedEmbeddings)
        XCTAssertTrue(ckpt.config.attentionBias)
        XCTAssertEqual(ckpt.config.ropeTheta, 500000)
        let w = ckpt.weights
        XCTAssertEqual(w.head, stored["output.weight"])
        XCTAssertTrue(w.layers[1].wq.isEmpty && w.layers[1].attentionNorm.isEmpty)
        XCTAssertTrue(w.layers[2].gate.isEmpty && w.layers[2].mlpNorm.isEmpty)
        XCTAssertEqual(w.layers[1].down, stored["blk.1.ffn_down.weight"])
        // head width 4: rows (0,1,2,3) of each head become (0,2,1,3); biases too; v untouched.
        let q = try XCTUnwrap(stored["blk.2.attn_q.weight"])
        let rows = [0, 2, 1, 3, 4, 6, 5, 7]
        XCTAssertEqual(w.layers[2].wq, rows.flatMap { q[$0 * 8..<($0 + 1) * 8] })
        XCTAssertEqual(w.layers[0].bq, rows.map { stored["blk.0.attn_q.bias"]![$0] })
        XCTAssertEqual(w.layers[0].bk, [0, 2, 1, 3].map { stored["blk.0.attn_k.bias"]![$0] })
        XCTAssertEqual(w.layers[0].bv, stored["blk.0.attn_v.bias"])
        XCTAssertEqual(w.layers[0].wv, stored["blk.0.attn_v.weight"])

        // A per-layer array of the wrong length is rejected, naming the key.
        b.metadata[5] = ("deci.feed_forward_length", .int32s([6, 4]))
        let short = try b.write(to: dir, name: "short.gguf")
        XCTAssertThrowsError(try CheckpointLoader.load(path: short)) { error in
            XCTAssertEqual((error as? CheckpointError)?.description.contains("deci.feed_forward_length"), true, "\(error)")
        }
    }

    /// Metadata of every scalar type reads back through the accessors.
    func testEveryMetadataValueType() throws {
        var b = GGUFBuilder()
        b.metadata = [("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-300)),
                      ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("f32", .float32(1.5)), ("b", .bool(true)),
                      ("s", .string("héllo")), ("u64", .uint64(1 << 40)), ("i64", .int64(-(1 << 40))), ("f64", .float64(2.25)),
                      ("strs", .strings(["a", "", "ü"])), ("ints", .int32s([1, -2])), ("floats", .float32s([0.5, -1]))]
        let g = try GGUFFile(path: b.write(to: dir, name: "meta.gguf"))
        XCTAssertEqual(g.metadataKeys, b.metadata.map(\.0))
        XCTAssertEqual(g.metadata["u8"]?.int, 200)
        XCTAssertEqual(g.metadata["i8"]?.int, -5)
        XCTAssertEqual(g.metadata["u16"]?.int, 60000)
        XCTAssertEqual(g.metadata["i16"]?.int, -300)
        XCTAssertEqual(g.metadata["u32"]?.int, 4_000_000_000)
        XCTAssertEqual(g.metadata["i32"]?.int, -7)
        XCTAssertEqual(g.metadata["f32"]?.float, 1.5)
        XCTAssertEqual(g.metadata["b"]?.bool, true)
        XCTAssertEqual(g.metadata["s"]?.string, "héllo")
        XCTAssertEqual(g.metadata["u64"]?.int, 1 << 40)
        XCTAssertEqual(g.metadata["i64"]?.int, -(1 << 40))
        XCTAssertEqual(g.metadata["f64"]?.double, 2.25)
        XCTAssertEqual(g.metadata["strs"]?.strings, ["a", "", "ü"])
        XCTAssertEqual(g.metadata["ints"]?.ints, [1, -2])
        XCTAssertEqual(g.metadata["ints"]?.array, [.int32(1), .int32(-2)])
        XCTAssertEqual(g.metadata["floats"]?.floats, [0.5, -1])
        XCTAssertTrue(g.tensorInfos.isEmpty)
    }

    /// stories260K-hf split over two shards with an index loads identically to the single file.
    func testShardedSafetensorsMatchesSingleFile() throws {
        let source = try Shared.url("fixtures/models/stories260K-hf")
        let single = try SafetensorsFile(path: source.appendingPathComponent("model.safetensors").path)
        let target = dir.appendingPathComponent("sharded")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: target.appendingPathComponent("config.json"))
        var weightMap: [String: String] = [:]
        let halves = [Array(single.tensorInfos.prefix(20)), Array(single.tensorInfos.dropFirst(20))]
        for (k, infos) in halves.enumerated() {
            let shard = "model-0000\(k + 1)-of-00002.safetensors"
            var header: [String: Any] = [:]
            var data = Data()
            for info in infos {
                let bytes = try single.file.bytes(at: info.byteRange.lowerBound, length: info.byteRange.count, "copy")
                header[info.name] = ["dtype": info.dtype, "shape": info.shape, "data_offsets": [data.count, data.count + bytes.count]]
                data.append(contentsOf: bytes)
                weightMap[info.name] = shard
            }
            let json = try JSONSerialization.data(withJSONObject: header)
            var out = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
            try (out + json + data).write(to: target.appendingPathComponent(shard))
        }
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
            .write(to: target.appendingPathComponent("model.safetensors.index.json"))
        let sharded = try CheckpointLoader.load(path: target.path)
        let reference = try CheckpointLoader.load(path: source.path)
        XCTAssertEqual(sharded.config, reference.config)
        XCTAssertEqual(sharded.weights.tokenEmbedding, reference.weights.tokenEmbedding)
        for (a, b) in zip(sharded.weights.layers, reference.weights.layers) {
            XCTAssertEqual([a.wq, a.wk, a.wv, a.wo, a.gate, a.up, a.down, a.attentionNorm, a.mlpNorm],
                           [b.wq, b.wk, b.wv, b.wo, b.gate, b.up, b.down, b.attentionNorm, b.mlpNorm])
        }
        guard case .none = sharded.tokenizer else { return XCTFail("no tokenizer was copied, got \(sharded.tokenizer)") }
    }
}
