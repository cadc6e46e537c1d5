import Checkpoints
import Corpora
import Evaluation
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
    /// and no more windows moved by over 1 % (reference 8 / 9, ours 0 / 4). That also bounds the mean movement well
    /// under issue 12's 1 % (0.6 × 0.570 % and 0.75 × 0.607 %). The worst single window is not bounded: on the plan
    /// ours (4.25 %) is worse than the reference's (3.43 %), window 39 of NLL 13.5 in both (RESULTS.md).
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
            XCTAssertEqual(referenceF32.count, 64)
            XCTAssertEqual(referenceW8A8.count, 64)
            guard referenceF32.count == 64, referenceW8A8.count == 64 else { return }
            let f32 = try Int8ForwardTests.windowMeans(try model.prepared(mask: mask), windows)
            let int8 = try Int8ForwardTests.windowMeans(try model.prepared(mask: mask, precision: .int8), windows)
            for w in 0..<64 { XCTAssertEqual(f32[w], referenceF32[w], accuracy: 1e-4, "\(name) window \(w): f32") }
            print(String(format: "%@: f32 windows differ from the reference's by at most %.2e", name,
                         zip(f32, referenceF32).map { abs($0 - $1) }.max() ?? 0))

            let ours = WindowMovement(reference: f32, other: int8), theirs = WindowMovement(reference: referenceF32, other: referenceW8A8)
            print(String(format: "%@: int8 moves windows by %.3f%% on average (max %.3f%%), %d over 1 %%; reference W8A8 %.3f%% (max %.3f%%), %d",
                         name, 100 * ours.meanRelative, 100 * ours.maxRelative, ours.windowsOverThreshold,
                         100 * theirs.meanRelative, 100 * theirs.maxRelative, theirs.windowsOverThreshold))
            XCTAssertLessThanOrEqual(ours.meanRelative, ratio * theirs.meanRelative, "\(name): mean |rel diff| per window against \(ratio) × the reference's")
            XCTAssertLessThanOrEqual(ours.windowsOverThreshold, theirs.windowsOverThreshold, "\(name): windows moved by more than 1 %")
        }
    }
}
