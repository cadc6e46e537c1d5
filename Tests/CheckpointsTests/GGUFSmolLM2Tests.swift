import XCTest
import FixtureSupport
@testable import Checkpoints

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (models/smollm2-135m-instruct-q4_1).
final class GGUFSmolLM2Tests: XCTestCase {
    static var path: String { get throws { try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path } }

    func testMetadataAndTensorInfos() throws {
        let gguf = try GGUFFile(path: Self.path)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.metadataKeys.count, 33)
        XCTAssertEqual(gguf.metadataKeys.first, "general.architecture")
        XCTAssertEqual(gguf.architecture, "llama")
        XCTAssertEqual(gguf.alignment, 32)
        XCTAssertEqual(gguf.metadata["llama.block_count"], .uint32(30))
        XCTAssertEqual(gguf.metadata["llama.rope.freq_base"]?.float, 100000)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.model"]?.string, "gpt2")
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.add_bos_token"]?.bool, false)
        let tokens = try XCTUnwrap(gguf.metadata["tokenizer.ggml.tokens"]?.strings)
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(tokens[0], "<|endoftext|>")
        XCTAssertEqual(tokens[1], "<|im_start|>")
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.merges"]?.strings?.count, 48900)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.token_type"]?.ints?.count, 49152)
        XCTAssertEqual(gguf.metadata["general.languages"]?.array, [.string("en")])
        XCTAssertEqual(gguf.tensorInfos.count, 272)
        let q = try XCTUnwrap(gguf.tensorInfo(named: "blk.0.attn_k.weight"))
        XCTAssertEqual(q.dims, [576, 192])     // ggml order: ne0 (input) first
        XCTAssertEqual(q.shape, [192, 576])
        XCTAssertEqual(q.type, .q4_1)
        XCTAssertEqual(gguf.tensorInfo(named: "token_embd.weight")?.type, .q8_0)
    }

    /// Reference: gguf-py 0.19.0 `GGUFReader` + `quants.dequantize` (/tmp script: for each tensor print the float64
    /// sum, the float64 sum of |w|, and the bits of elements 1000..<1004 of the flattened float32 array).
    /// Tolerance: elements exact (same operation order as ggml); sums rel 1e-9 (only the summation order differs,
    /// in float64 over at most 2.8e7 terms).
    func testDequantisedTensorsMatchGGUFPy() throws {
        let gguf = try GGUFFile(path: Self.path)
        let refs: [(String, Double, Double, [UInt32])] = [
            ("token_embd.weight", -15353.04449415207, 2802153.619805813, [0x3bf2e000, 0x3d455600, 0xbdae9100, 0xbd97cc00]),
            ("blk.0.ffn_down.weight", 150.63577270507812, 128458.06286621094, [0x3e7b6000, 0xbcf80000, 0xbe9cb000, 0xbe9cb000]),
            ("blk.29.attn_k.weight", 87.89241790771484, 11157.1625289917, [0x3c918000, 0x3e07d800, 0x3d26e000, 0xbbab0000]),
        ]
        let tol = Tolerance(relative: 1e-9)
        for (name, sum, absSum, bits) in refs {
            let w = try gguf.floats(named: name)
            XCTAssertTrue(tol.accepts(w.reduce(0.0) { $0 + Double($1) }, sum), name)
            XCTAssertTrue(tol.accepts(w.reduce(0.0) { $0 + abs(Double($1)) }, absSum), name)
            XCTAssertEqual(w[1000..<1004].map(\.bitPattern), bits, name)
        }
        XCTAssertEqual(try gguf.floats(named: "output_norm.weight").reduce(0.0) { $0 + Double($1) }, 1038.33203125)
    }

    func testLoadsAsCanonicalModel() throws {
        let ckpt = try CheckpointLoader.load(path: Self.path)
        XCTAssertEqual(ckpt.format, .gguf)
        let c = ckpt.config
        XCTAssertEqual(c.architecture, "llama")
        XCTAssertEqual(c.layers.count, 30)
        XCTAssertEqual(c.hiddenSize, 576)
        XCTAssertEqual(c.vocabSize, 49152)
        XCTAssertEqual(Set(c.layers), [LayerSpec(queryHeads: 9, kvHeads: 3, headDim: 64, ffnDim: 1536)])
        XCTAssertTrue(c.tiedEmbeddings)
        XCTAssertNil(ckpt.weights.head)
        XCTAssertEqual(c.ropeTheta, 100000)
        XCTAssertEqual(c.normEpsilon, 1e-5, accuracy: 1e-11)  // stored as float32 9.9999997e-06
        XCTAssertEqual(c.contextLength, 8192)
        XCTAssertFalse(c.attentionBias)
        guard case .gguf(let tok) = ckpt.tokenizer else { return XCTFail("tokenizer should be the GGUF itself") }
        XCTAssertEqual(tok.metadata["tokenizer.ggml.pre"]?.string, "smollm")
        // q rows converted to rotate-half: canonical row c*32 + i of head h = GGUF row 2i + c.
        let gguf = try GGUFFile(path: Self.path)
        let raw = try gguf.floats(named: "blk.3.attn_q.weight")   // [576 rows, 576]
        let wq = ckpt.weights.layers[3].wq
        for (h, c, i) in [(0, 0, 1), (0, 1, 0), (8, 1, 31), (4, 0, 17)] {
            let canonical = h * 64 + c * 32 + i, original = h * 64 + 2 * i + c
            XCTAssertTrue(wq[canonical * 576..<(canonical + 1) * 576].elementsEqual(raw[original * 576..<(original + 1) * 576]),
                          "canonical row \(canonical) should be GGUF row \(original)")
        }
        XCTAssertFalse(wq[576..<1152].elementsEqual(raw[576..<1152]), "the permutation must not be the identity")
    }
}
