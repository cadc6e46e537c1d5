import XCTest
import Foundation
import FixtureSupport

/// Every family through the whole job with the built binary, on the tiny transformers-made models of
/// `Tests/TransformerTests/Fixtures/families` (their GGUFs, converted by llama.cpp's convert_hf_to_gguf.py): a short
/// policy-gradient run writes a plan at the budget, the plan exports as a Hugging Face folder (GGUF for llama3), and
/// the export loads back and measures. The numbers themselves are checked elsewhere (FamilyGoldenTests, FamilyExportTests); this
/// pins that `prune` and `export` work on every architecture, not only on LLaMA.
final class FamilyPruneTests: XCTestCase {
    static let families = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TransformerTests/Fixtures/families").standardizedFileURL

    func testPolicyGradientRunAndExportOnEveryFamily() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("family-prune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        for family in ["llama3", "mistral", "qwen2", "qwen3", "phi3", "phi3-longrope", "gemma3"] {
            let model = Self.families.appendingPathComponent("\(family).gguf").path
            XCTAssertTrue(FileManager.default.fileExists(atPath: model), "missing fixture \(model)")
            let run = scratch.appendingPathComponent("\(family)-run")
            let prune = try Shared.run(["prune", "--model", model, "--mlp-rate", "0.5", "--attention-rate", "0",
                                        "--scope", "per-layer", "--channel-multiple", "8", "--init", "magnitude",
                                        "--steps", "4", "--k", "2", "--batch", "2", "--seq", "32", "--eval-every", "2",
                                        "--eval-windows", "2", "--seed", "1", "--run", run.path, "--shared", Shared.root.path])
            XCTAssertEqual(prune.status, 0, "\(family): \(prune.stderr)")
            let planURL = run.appendingPathComponent("plan.json")
            let plan = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: planURL)) as? [String: Any], family)
            let kept = try XCTUnwrap(plan["kept_parameters"] as? [String: Int], family)
            let dense = try XCTUnwrap(plan["dense_parameters"] as? [String: Int], family)
            XCTAssertEqual(kept["attention"], dense["attention"], "\(family): attention kept (--attention-rate 0)")
            XCTAssertEqual(Double(try XCTUnwrap(kept["mlp"])), Double(try XCTUnwrap(dense["mlp"])) / 2, accuracy: 0.05 * Double(dense["mlp"] ?? 0),
                           "\(family): half the MLP kept")

            // A GGUF's Llama 3 RoPE factors have no config.json form (README), so llama3 goes to GGUF.
            let format = family == "llama3" ? "gguf" : "hf"
            let folder = scratch.appendingPathComponent(format == "hf" ? "\(family)-hf" : "\(family).gguf").path
            let export = try Shared.run(["export", "--model", model, "--plan", planURL.path, "--format", format, "--out", folder])
            XCTAssertEqual(export.status, 0, "\(family): \(export.stderr)")
            let ppl = try Shared.run(["eval", "ppl", "--model", folder, "--data", "tinystories", "--context", "32",
                                      "--limit-windows", "2", "--json", "--shared", Shared.root.path])
            XCTAssertEqual(ppl.status, 0, "\(family): \(ppl.stderr)")
            let report = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(ppl.stdout.utf8)) as? [String: Any])?["report"] as? [String: Any], family)
            let value = try XCTUnwrap(report["ppl_window_mean"] as? Double, family)
            XCTAssertTrue(value.isFinite && value > 1, "\(family): perplexity \(value)")
        }
    }
}
