import XCTest
import FixtureSupport

/// `prune --time-budget`: the steps come from a probe step, are printed with the schedule they imply, and end up in
/// `options.json`; a duration that does not parse is refused before anything runs. No wall-clock assertion: only
/// that the derived count is positive and recorded.
final class TimeBudgetTests: XCTestCase {
    func testStepsDerivedFromABudget() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pg-budget-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let run = try Shared.run(["prune", "--model", model, "--mlp-rate", "0.3", "--attention-rate", "0", "--init", "random",
                                  "--time-budget", "4s", "--batch", "4", "--eval-windows", "4", "--eval-every", "0",
                                  "--run", dir.path, "--shared", Shared.root.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let line = try XCTUnwrap(run.stderr.split(separator: "\n").first { $0.hasPrefix("time budget") }, run.stderr)
        XCTAssertTrue(line.contains("cosine LR over"), String(line))
        let options = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("options.json"))) as? [String: Any]
        let steps = try XCTUnwrap(options?["steps"] as? Int)
        XCTAssertGreaterThanOrEqual(steps, 1)
        XCTAssertTrue(line.contains("-> \(steps) steps"), String(line))

        let bad = try Shared.run(["prune", "--model", model, "--time-budget", "soon", "--run", dir.path + "-bad", "--shared", Shared.root.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--time-budget"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "-bad"))
    }
}
