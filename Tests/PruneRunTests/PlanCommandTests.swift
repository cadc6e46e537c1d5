import XCTest
import Checkpoints
import FixtureSupport
import Pruning

/// `policyprune plan` against a real run with the same options (issue 14): the predicted peak memory and the
/// predicted export size are within 10 % of what the run and the export of its plan measure. Times are printed,
/// never asserted (speed belongs in benchmarks).
final class PlanCommandTests: XCTestCase {
    struct PlanJSON: Decodable {
        struct Size: Decodable { var dtype: String; var bytes: Int }
        var peak_memory_bytes: Int
        var sizes: [Size]
        var steps: Int
        var step_seconds: Double
        var kept_total_parameters: Int
    }

    func testPredictionsMatchARealRun() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let shared = Shared.root.path
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let common = ["--model", model, "--attention-rate", "0.25", "--mlp-rate", "0.3", "--init", "wanda-sp", "--init-windows", "8",
                      "--init-seq", "256", "--batch", "8", "--k", "2", "--eval-every", "10", "--eval-windows", "16", "--shared", shared]
        let plan = try Shared.run(["plan"] + common + ["--steps", "20", "--dtypes", "f32,f16", "--json"])
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let predicted = try JSONDecoder().decode(PlanJSON.self, from: Data(plan.stdout.utf8))
        XCTAssertEqual(predicted.steps, 20)
        XCTAssertGreaterThan(predicted.step_seconds, 0)

        let run = scratch.appendingPathComponent("run")
        let prune = try Shared.run(["prune"] + common + ["--steps", "20", "--checkpoint-every", "20", "--seed", "1", "--run", run.path])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        let line = try XCTUnwrap(prune.stdout.split(separator: "\n").first { $0.hasPrefix("memory") }, prune.stdout)
        let measuredMiB = try XCTUnwrap(Double(line.split(separator: " ").compactMap { Double($0) }.first ?? .nan))
        let predictedMiB = Double(predicted.peak_memory_bytes) / 1_048_576
        XCTAssertEqual(predictedMiB, measuredMiB, accuracy: 0.1 * measuredMiB, "peak memory: plan \(predictedMiB) MiB, run \(measuredMiB) MiB")

        let planFile = run.appendingPathComponent("plan.json").path
        let runPlan = try PrunePlan.decode(Data(contentsOf: URL(fileURLWithPath: planFile)))
        XCTAssertEqual(runPlan.keptParameters.total, predicted.kept_total_parameters, "same budget, same parameters")
        for size in predicted.sizes {
            let out = scratch.appendingPathComponent("pruned-\(size.dtype).gguf").path
            let export = try Shared.run(["export", "--model", model, "--plan", planFile, "--format", "gguf", "--dtype", size.dtype, "--out", out])
            XCTAssertEqual(export.status, 0, export.stderr)
            let bytes = Double((try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0)
            XCTAssertEqual(Double(size.bytes), bytes, accuracy: 0.1 * bytes, "\(size.dtype) export: plan \(size.bytes), real \(bytes)")
        }
        print("plan: peak \(predictedMiB) MiB vs run \(measuredMiB) MiB; step \(predicted.step_seconds) s; sizes \(predicted.sizes.map { "\($0.dtype) \($0.bytes)" })")
    }
}
