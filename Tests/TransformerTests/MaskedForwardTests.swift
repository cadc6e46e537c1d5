import Checkpoints
import FixtureSupport
import Foundation
import Transformer
import XCTest

/// Masked-forward goldens (fixtures/pruning/masked_forward_*.json, README §4): the gathered forward pass must equal
/// transformers with the multiply-by-mask hooks. Each case has a layer with zero KV groups and one with zero
/// channels. Tolerance: mean NLL abs 1e-4 (stories260K; SmolLM2 dense and keep-0.95), 2e-4 for SmolLM2's heavy
/// masks (NLL ~15, where float32 vs float64 single-token NLLs already differ by 1.4e-3).
final class MaskedForwardTests: XCTestCase {
    func check(model: LanguageModel, fixture: String, tokenGoldens: String, heavyTolerance: Double) throws {
        let golden = try Shared.json(fixture)
        let ids: [Int] = try Shared.json(tokenGoldens).get("eval_texts", "general_en.txt", "ids")
        XCTAssertEqual(ids.count, try golden.get("n_tokens", as: Int.self))
        let cases: [[String: Any]] = try golden.get("cases")
        XCTAssertGreaterThanOrEqual(cases.count, 5)
        for c in cases {
            let name: String = try c.get("name")
            let expected: Double = try c.get("mean_nll")
            var mask: StructureMask? = nil
            if c["kept_kv_groups"] != nil {
                let groups: [[Int]] = try (c.get("kept_kv_groups") as [Any]).map { try XCTUnwrap($0 as? [NSNumber]).map(\.intValue) }
                let channels: [[Int]] = try (c.get("kept_mlp_channels") as [Any]).map { try XCTUnwrap($0 as? [NSNumber]).map(\.intValue) }
                mask = StructureMask(layers: zip(groups, channels).map { StructureMask.Layer(keptKVGroups: $0, keptChannels: $1) })
            }
            let nll = try model.prepared(mask: mask).tokenNLL([ids])[0]
            let mean = nll.reduce(0, +) / Double(nll.count)
            let tol = expected > 5 ? heavyTolerance : 1e-4
            XCTAssertEqual(mean, expected, accuracy: tol, "\(fixture) case \(name)")
        }
    }

    func testStories260K() throws {
        try check(model: ForwardGoldenTests.model("models/stories260K/stories260K.bin"), fixture: "fixtures/pruning/masked_forward_stories260K.json",
                  tokenGoldens: "fixtures/tokenizers/stories260K_goldens.json", heavyTolerance: 1e-4)
    }

    func testSmolLM2() throws {
        try check(model: SmolLM2.shared(), fixture: "fixtures/pruning/masked_forward_smollm2-135m.json",
                  tokenGoldens: "fixtures/tokenizers/smollm2_goldens.json", heavyTolerance: 2e-4)
    }

    /// A mask with everything removed leaves only embeddings → final norm → head, and a bad mask is a typed error.
    func testEmptyAndInvalidMasks() throws {
        let model = try ForwardGoldenTests.model("models/stories260K/stories260K.bin")
        let empty = StructureMask(layers: model.config.layers.map { _ in StructureMask.Layer(keptKVGroups: [], keptChannels: []) })
        let nll = try model.prepared(mask: empty).tokenNLL([[1, 403, 407]])[0]
        XCTAssertEqual(nll.count, 2)
        XCTAssertTrue(nll.allSatisfy(\.isFinite))
        var bad = StructureMask.dense(model.config)
        bad.layers[0].keptKVGroups = [0, 9]
        XCTAssertThrowsError(try model.prepared(mask: bad)) {
            XCTAssertEqual($0 as? MaskError, .outOfRange(layer: 0, what: "KV group", id: 9, limit: 4))
        }
        bad = StructureMask.dense(model.config)
        bad.layers.removeLast()
        XCTAssertThrowsError(try model.prepared(mask: bad))
    }

    /// `embed` + `applyLayers` over consecutive ranges is the forward pass split up (what Wanda-sp's staged
    /// init relies on): layer by layer gives bit-for-bit the layer-output activations of one uninterrupted pass.
    func testLayerRangesComposeExactly() throws {
        final class LastOutput: ForwardObserver {
            var values: [Float] = []
            let layer: Int
            init(layer: Int) { self.layer = layer }
            func observe(layer: Int, point: ProbePoint, values: UnsafePointer<Float>, rows: Int, width: Int) {
                if layer == self.layer && point == .layerOutput { self.values = Array(UnsafeBufferPointer(start: values, count: rows * width)) }
            }
        }
        let model = try ForwardGoldenTests.model("models/stories260K/stories260K.bin")
        let windows = [[1, 403, 407, 261, 378, 10], [1, 20, 30, 40, 50, 60]]
        let count = model.config.layers.count
        let whole = LastOutput(layer: count - 1)
        try model.dense.observe(windows, observer: whole)
        var hidden = try model.dense.embed(windows)
        for l in 0..<count { model.dense.applyLayers(l..<(l + 1), to: &hidden, batch: 2, length: 6) }
        XCTAssertEqual(hidden, whole.values, "layer by layer equals one pass, exactly")
        var twoRanges = try model.dense.embed(windows)
        model.dense.applyLayers(0..<2, to: &twoRanges, batch: 2, length: 6)
        model.dense.applyLayers(2..<count, to: &twoRanges, batch: 2, length: 6)
        XCTAssertEqual(twoRanges, whole.values)
    }
}
