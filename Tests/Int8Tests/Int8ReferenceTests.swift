import Checkpoints
import Corpora
import FixtureSupport
import Foundation
import Transformer
import XCTest

/// PolicyPrune's int8 forward against an independent PyTorch reference of plain W8A8 (per-row s8 weights, per-token
/// u8 activations with a zero point, no outlier handling): `Fixtures/w8a8-reference/make_w8a8_reference.py` (torch
/// 2.13 + transformers 5.24) scored the first 64 WikiText-2 windows of 128 tokens of SmolLM2, dense and with a 50 %
/// PG plan whose kept channels it stores, in f32 and fake-quantized.
final class Int8ReferenceTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/w8a8-reference/w8a8_smollm2_wikitext2_w128.json")

    /// (1) Our f32 window NLLs are the reference's f32 ones within 1e-4 abs per window (the fixtures README's token
    /// NLL tolerance; measured ≤ 1.1e-5, the plan's NLL-13.5 window). (2) On the same windows our int8 forward moves
    /// them less than the reference's W8A8 does, by what the per-token outlier decomposition buys: mean |rel diff| at
    /// most 0.6 × the reference's dense and 0.75 × on the plan (reference 0.570 % / 0.607 %; ours 0.248 % / 0.380 %,
    /// ratios 0.44 / 0.63; without the decomposition ours are 0.488 % / 0.493 %, ratios 0.86 / 0.81, which fail),
    /// and no more windows moved by over 1 % (reference 8 / 9, ours 0 / 4). (3) The requirement on the same
    /// numbers: mean |rel diff| ≤ 1 % per window, the measure in which the developers' guide quotes this scheme
    /// (0.5 % on average).
    func testInt8MovesWindowsLessThanTheReferenceW8A8() throws {
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as? [String: Any])
        XCTAssertEqual(json["n_windows"] as? Int, 64)
        XCTAssertEqual(json["window"] as? Int, 128)
        let windowNLL = try XCTUnwrap(json["window_nll"] as? [String: [String: [Double]]])
        let kept = try XCTUnwrap(json["plan_kept_channels"] as? [[Int]])

        let (model, tokenizer) = try Int8ForwardTests.smolLM2()
        let config = model.config
        XCTAssertEqual(kept.count, config.layers.count)
        let plan = StructureMask(layers: zip(config.layers, kept).map { spec, channels in
            StructureMask.Layer(keptKVGroups: Array(0..<spec.kvHeads), keptChannels: channels)
        })
        let text = try Dataset.wikitext2.text(dataRoot: try DataRoot.resolve(explicit: Shared.root.appendingPathComponent("data").path))
        let windows = try EvalWindows(tokens: tokenizer.encode(text, addSpecialTokens: true), context: 128, limit: 64, source: "wikitext2").windows
        XCTAssertEqual(windows.count, 64)

        for (name, mask, ratio) in [("dense", nil, 0.6), ("plan", plan, 0.75)] as [(String, StructureMask?, Double)] {
            let reference = try XCTUnwrap(windowNLL[name])
            let referenceF32 = try XCTUnwrap(reference["f32"]), referenceW8A8 = try XCTUnwrap(reference["w8a8u"])
            let f32 = try Int8ForwardTests.windowMeans(try model.prepared(mask: mask), windows)
            let int8 = try Int8ForwardTests.windowMeans(try model.prepared(mask: mask, precision: .int8), windows)
            for w in 0..<64 { XCTAssertEqual(f32[w], referenceF32[w], accuracy: 1e-4, "\(name) window \(w): f32") }

            func moved(_ q: [Double], _ base: [Double]) -> (mean: Double, overOnePercent: Int) {
                let rel = zip(base, q).map { abs($1 - $0) / $0 }
                return (rel.reduce(0, +) / Double(rel.count), rel.filter { $0 > 0.01 }.count)
            }
            let ours = moved(int8, f32), theirs = moved(referenceW8A8, referenceF32)
            print(String(format: "%@: int8 moves windows by %.3f%% on average, %d over 1 %%; reference W8A8 %.3f%%, %d",
                         name, 100 * ours.mean, ours.overOnePercent, 100 * theirs.mean, theirs.overOnePercent))
            XCTAssertLessThanOrEqual(ours.mean, ratio * theirs.mean, "\(name): mean |rel diff| per window against \(ratio) × the reference's")
            XCTAssertLessThanOrEqual(ours.overOnePercent, theirs.overOnePercent, "\(name): windows moved by more than 1 %")
            XCTAssertLessThanOrEqual(ours.mean, 0.01, "\(name): issue 12's 1 % per window")
        }
    }
}
