import FixtureSupport
import Foundation
import XCTest

/// `policyprune eval zeroshot` end to end: bad input errors, and a small JSON run.
final class ZeroShotCLITests: XCTestCase {
    /// Runs the built binary (see `Shared.run`).
    func run(_ arguments: [String]) throws -> BinaryRun { try Shared.run(arguments) }

    var smol: String { get throws { try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path } }

    func testUnknownTaskListsKnownTasks() throws {
        let r = try run(["eval", "zeroshot", "--model", smol, "--tasks", "piqa,mmlu"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("unknown zero-shot task 'mmlu'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("piqa, hellaswag, winogrande, arc_easy, arc_challenge, boolq, openbookqa"), r.stderr)
    }

    /// A malformed line names the file and its line number, before the model is loaded.
    func testMalformedDataLineNamesFileAndLine() throws {
        let shared = FileManager.default.temporaryDirectory.appendingPathComponent("pp-zs-bad-\(getpid())")
        defer { try? FileManager.default.removeItem(at: shared) }
        let arc = shared.appendingPathComponent("data/arc")
        try FileManager.default.createDirectory(at: arc, withIntermediateDirectories: true)
        let good = #"{"id": "a", "question": {"stem": "Q?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "A"}"#
        let file = arc.appendingPathComponent("ARC-Easy-Test.jsonl")
        try (good + "\n" + #"{"id": "b", "question": "#  + "\n").write(to: file, atomically: true, encoding: .utf8)
        let r = try run(["eval", "zeroshot", "--model", smol, "--tasks", "arc_easy", "--shared", shared.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(file.path):2:"), r.stderr)
        // A record that parses but lacks a field is reported at its line too.
        try (good + "\n\n" + #"{"id": "c", "answerKey": "A"}"# + "\n").write(to: file, atomically: true, encoding: .utf8)
        let missing = try run(["eval", "zeroshot", "--model", smol, "--tasks", "arc_easy", "--shared", shared.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("\(file.path):3:"), missing.stderr)
    }

    /// Three examples of two tasks as JSON: the numbers lm-eval gives on the same examples.
    func testJSONRunOnFewExamples() throws {
        let r = try run(["eval", "zeroshot", "--model", smol, "--tasks", "arc_easy,boolq", "--limit", "3", "--json", "--per-example"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let reports = try XCTUnwrap(json["reports"] as? [[String: Any]])
        XCTAssertEqual(reports.map { $0["task"] as? String }, ["arc_easy", "boolq"])
        for report in reports {
            let task = try XCTUnwrap(report["task"] as? String)
            let fixture: [[String: Any]] = try Shared.json("fixtures/zeroshot/\(task).json").get("examples")
            let results = try XCTUnwrap(report["results"] as? [[String: Any]])
            XCTAssertEqual(results.count, 3)
            for (ours, theirs) in zip(results, fixture) {
                let a = try XCTUnwrap(ours["loglik"] as? [Double]), b: [Double] = try theirs.get("loglik")
                if let message = compareAll(a, b, Tolerance(absolute: 1e-3), "\(task) loglik") { XCTFail(message) }
            }
        }
        XCTAssertTrue(r.stderr.contains("arc_easy ["), "progress bar on stderr: \(r.stderr)")
    }
}
