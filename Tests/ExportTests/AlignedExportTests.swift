import XCTest
import Checkpoints
import FixtureSupport
import Pruning

/// Issue 14 "shapes that deploy well": with `--channel-multiple 32` (the default) a SmolLM2 plan keeps a multiple
/// of 32 MLP channels in every layer at the requested budget, and its Q8_0 GGUF export stores every 2-D weight as
/// Q8_0 (no F16 fallback); the same plan unaligned (`--channel-multiple 1`) falls back, which shows the check bites.
final class AlignedExportTests: XCTestCase {
    func testAlignedPlanExportsWithoutF16Fallback() throws {
        let model = try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aligned-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var sizes: [String: Int] = [:]
        for multiple in [32, 1] {
            let plan = scratch.appendingPathComponent("plan-\(multiple).json").path
            // Global magnitude scores give every layer its own width (811-like), the case that fell back.
            let score = try Shared.run(["score", "--model", model, "--metric", "magnitude", "--scope", "global",
                                        "--attention-rate", "0", "--mlp-rate", "0.5", "--channel-multiple", "\(multiple)", "--out", plan])
            XCTAssertEqual(score.status, 0, score.stderr)
            let decoded = try PrunePlan.decode(Data(contentsOf: URL(fileURLWithPath: plan)))
            let kept = decoded.layers.map(\.keptChannels.count)
            let total = 30 * 1536
            XCTAssertLessThanOrEqual(kept.reduce(0, +), total - total / 2, "the budget is met")
            if multiple == 32 {
                XCTAssertTrue(kept.allSatisfy { $0 % 32 == 0 }, "\(kept)")
                XCTAssertGreaterThan(kept.reduce(0, +), total - total / 2 - 32, "within one block of the budget")
            } else {
                XCTAssertFalse(kept.allSatisfy { $0 % 32 == 0 }, "the unaligned plan must have odd widths for this test to bite")
            }
            let out = scratch.appendingPathComponent("pruned-\(multiple).gguf").path
            let export = try Shared.run(["export", "--model", model, "--plan", plan, "--format", "gguf", "--dtype", "q8_0", "--out", out])
            XCTAssertEqual(export.status, 0, export.stderr)
            let gguf = try GGUFFile(path: out)
            let f16 = gguf.tensorInfos.filter { $0.type == .f16 }.map(\.name)
            if multiple == 32 {
                XCTAssertEqual(f16, [], "aligned plan: no F16 fallback")
                XCTAssertFalse(export.stderr.contains("instead of Q8_0"), export.stderr)
            } else {
                XCTAssertFalse(f16.isEmpty, "unaligned plan: ffn_down rows fall back to F16")
            }
            sizes["\(multiple)"] = (try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        }
        print("Q8_0 GGUF of SmolLM2 at 50 % of the MLP (magnitude, global): aligned \(sizes["32"] ?? 0) bytes, unaligned \(sizes["1"] ?? 0) bytes")
        XCTAssertLessThan(sizes["32"] ?? .max, sizes["1"] ?? 0)
    }
}
