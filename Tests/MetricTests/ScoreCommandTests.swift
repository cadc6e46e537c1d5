import FixtureSupport
import Foundation
import XCTest

/// End-to-end: the built `policyprune` binary writes a plan with `score`, applies it with `eval ppl --plan`, and
/// rejects bad input with a message and a non-zero exit.
final class ScoreCommandTests: XCTestCase {
    struct Output { let status: Int32; let stdout: String; let stderr: String }

    func run(_ arguments: [String]) throws -> Output {
        let binary = Shared.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            struct BinaryMissing: Error, CustomStringConvertible { let description: String }
            throw BinaryMissing(description: "policyprune binary missing at \(binary.path); build the package first")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["POLICYPRUNE_SHARED"] = Shared.root.path
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// `--granularity query-heads` on stories260K (8 query heads in 4 KV groups per layer): the plan lists kept
    /// query heads, its kept KV groups are exactly the groups of those heads, `eval ppl --plan` runs it, and an
    /// export compacts it when every kept group keeps as many heads as the others, else refuses naming the layer.
    func testScoreQueryHeadsThenEvalAndExport() throws {
        let stories = try Shared.url("models/stories260K/stories260K.bin").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metric-qh-tests-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let plan = folder.appendingPathComponent("plan.json").path
        let score = try run(["score", "--model", stories, "--metric", "wanda-sp", "--granularity", "query-heads",
                             "--attention-rate", "0.5", "--mlp-rate", "0.3", "--calibration-windows", "4", "--calibration-length", "64",
                             "--out", plan])
        XCTAssertEqual(score.status, 0, score.stderr)
        XCTAssertTrue(score.stdout.contains("query heads"), score.stdout)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: plan))) as? [String: Any])
        XCTAssertEqual((json["options"] as? [String: Any])?["granularity"] as? String, "query-heads")
        let layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        var equalGroups = true
        for layer in layers {
            let heads = try XCTUnwrap(layer["kept_query_heads"] as? [Int]), groups = try XCTUnwrap(layer["kept_kv_groups"] as? [Int])
            XCTAssertEqual(heads.count, 4, "per layer: half of 8 heads")
            XCTAssertEqual(groups, Array(Set(heads.map { $0 / 2 })).sorted(), "a group is kept exactly while one of its heads is")
            let perGroup = groups.map { g in heads.filter { $0 / 2 == g }.count }
            equalGroups = equalGroups && Set(perGroup).count == 1
        }
        let eval = try run(["eval", "ppl", "--model", stories, "--plan", plan, "--data", "tinystories", "--limit-windows", "4", "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let export = try run(["export", "--model", stories, "--plan", plan, "--format", "hf", "--out", folder.appendingPathComponent("hf").path])
        if equalGroups {
            XCTAssertEqual(export.status, 0, export.stderr)
        } else {
            XCTAssertNotEqual(export.status, 0)
            XCTAssertTrue(export.stderr.contains("kept_query_heads"), export.stderr)
        }
    }

    func testScoreThenEvalWithPlan() throws {
        let stories = try Shared.url("models/stories260K/stories260K.bin").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metric-tests-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let plan = folder.appendingPathComponent("plan.json").path

        let score = try run(["score", "--model", stories, "--metric", "wanda-sp", "--rate", "0.3", "--calibration-windows", "4",
                             "--calibration-length", "64", "--out", plan])
        XCTAssertEqual(score.status, 0, score.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: plan))) as? [String: Any])
        XCTAssertEqual(json["method"] as? String, "wanda-sp")
        XCTAssertEqual((json["options"] as? [String: Any])?["scope"] as? String, "per_layer", "per-layer is the default scope")
        XCTAssertEqual((json["model_sha256"] as? String)?.count, 64)
        XCTAssertEqual((json["calibration_sha256"] as? String)?.count, 64)
        XCTAssertEqual((json["layers"] as? [Any])?.count, 5)

        let eval = try run(["eval", "ppl", "--model", stories, "--plan", plan, "--data", "tinystories", "--limit-windows", "4", "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("ppl_window_mean"))

        let generate = try run(["generate", "--model", stories, "--plan", plan, "--prompt", "Once upon a time", "--max-tokens", "4", "--json"])
        XCTAssertEqual(generate.status, 0, generate.stderr)

        // A plan for another model: SmolLM2's tokenizer/shape differ from stories260K → rejected, non-zero exit.
        var tampered = json
        tampered["model_sha256"] = String(repeating: "0", count: 64)
        let other = folder.appendingPathComponent("other.json").path
        try JSONSerialization.data(withJSONObject: tampered).write(to: URL(fileURLWithPath: other))
        let wrongHash = try run(["eval", "ppl", "--model", stories, "--plan", other, "--data", "tinystories", "--limit-windows", "1"])
        XCTAssertNotEqual(wrongHash.status, 0)
        XCTAssertTrue(wrongHash.stderr.contains("model_sha256") && wrongHash.stderr.contains(other), wrongHash.stderr)

        // Ids out of range.
        var layers = try XCTUnwrap(json["layers"] as? [[String: Any]])
        layers[0]["kept_channels"] = [0, 1, 999]
        tampered = json
        tampered["layers"] = layers
        let outOfRange = folder.appendingPathComponent("range.json").path
        try JSONSerialization.data(withJSONObject: tampered).write(to: URL(fileURLWithPath: outOfRange))
        let range = try run(["generate", "--model", stories, "--plan", outOfRange, "--prompt", "Hi", "--max-tokens", "1"])
        XCTAssertNotEqual(range.status, 0)
        XCTAssertTrue(range.stderr.contains("999"), range.stderr)

        // Missing plan file.
        let missing = try run(["eval", "ppl", "--model", stories, "--plan", folder.appendingPathComponent("none.json").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("--plan"), missing.stderr)
    }

    func testBadRateAndGranularity() throws {
        let stories = try Shared.url("models/stories260K/stories260K.bin").path
        for rate in ["0", "1", "1.5", "-0.2"] {
            let r = try run(["score", "--model", stories, "--metric", "magnitude", "--rate", rate, "--out", "/tmp/never.json"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--rate"), r.stderr)
        }
        let r = try run(["score", "--model", stories, "--metric", "block-influence", "--granularity", "channels", "--rate", "0.3",
                         "--out", "/tmp/never.json"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--granularity"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/never.json"))
    }

    /// `score --save-scores` writes the metric's order, and a PG run started from it (`--init-scores F --mapping
    /// plan`) starts at the score plan: each layer of its initial plan keeps a subset of the score plan's channels
    /// (the run's global count is at most a few channels below the per-layer plans' sum).
    func testSavedScoresStartARunAtThePlan() throws {
        let stories = try Shared.url("models/stories260K/stories260K.bin").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("saved-scores-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let plan = folder.appendingPathComponent("plan.json").path, scores = folder.appendingPathComponent("scores.json").path
        let score = try run(["score", "--model", stories, "--metric", "wanda-sp", "--attention-rate", "0", "--mlp-rate", "0.3",
                             "--calibration-windows", "4", "--calibration-length", "64", "--out", plan, "--save-scores", scores])
        XCTAssertEqual(score.status, 0, score.stderr)
        let runDir = folder.appendingPathComponent("run").path
        let prune = try run(["prune", "--model", stories, "--attention-rate", "0", "--mlp-rate", "0.3", "--init-scores", scores,
                             "--mapping", "plan", "--steps", "1", "--eval-every", "0", "--eval-windows", "2", "--run", runDir])
        XCTAssertEqual(prune.status, 0, prune.stderr)
        func kept(_ path: String) throws -> [Set<Int>] {
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            let layers = try XCTUnwrap(object?["layers"] as? [[String: Any]])
            return try layers.map { Set(try XCTUnwrap($0["kept_channels"] as? [Int])) }
        }
        let planned = try kept(plan), started = try kept(runDir + "/initial-plan.json")
        XCTAssertEqual(planned.count, started.count)
        for (l, (a, b)) in zip(planned, started).enumerated() {
            XCTAssertTrue(b.isSubset(of: a), "layer \(l): the run starts inside the score plan")
            XCTAssertLessThanOrEqual(a.count - b.count, 1, "layer \(l)")
        }
    }
}
