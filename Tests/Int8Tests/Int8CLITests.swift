import FixtureSupport
import Foundation
import XCTest

/// `policyprune bench --compute int8` and `--pg-step` end to end (stories260K, tiny shapes: checks output, not speed).
final class Int8CLITests: XCTestCase {
    /// `--json` reports every forward row with f32 and int8 times and their ratio, and the GEMM rows with the
    /// oneDNN rates.
    func testBenchInt8JSON() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--json", "--batch", "2", "--seq", "16", "--repeats", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let forward = try XCTUnwrap(json["forward"] as? [[String: Any]])
        XCTAssertEqual(forward.map { $0["name"] as? String }, ["dense", "masked, 50% of groups/channels kept", "dense, decoder stack only",
                                                               "masked stack, 50% of groups/channels kept"])
        for row in forward {
            XCTAssertNotNil(row["f32Seconds"] as? Double)
            XCTAssertNotNil(row["int8Seconds"] as? Double)
            XCTAssertNotNil(row["int8SpeedUp"] as? Double)
        }
        let gemm = try XCTUnwrap(json["gemm"] as? [[String: Any]])
        XCTAssertEqual(gemm.count, 5)
        XCTAssertNotNil(gemm[0]["dnnlU8S8S32GOPS"] as? Double)
    }

    /// Without oneDNN, asking for int8 fails with exit status 1 and a message naming the library and the package;
    /// f32 still runs.
    func testInt8WithoutOneDNNIsATypedError() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let missing = ["POLICYPRUNE_DNNL": "/nonexistent/libdnnl.so.2"]
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--batch", "1", "--seq", "8", "--repeats", "1"], environment: missing)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("libdnnl.so.2") && run.stderr.contains("apt-get install libdnnl-dev"), run.stderr)
        let f32 = try Shared.run(["bench", "--model", model, "--batch", "1", "--seq", "8", "--repeats", "1", "--keep", "0"], environment: missing)
        XCTAssertEqual(f32.status, 0, f32.stderr)
        XCTAssertTrue(f32.stdout.contains("oneDNN: not available"), f32.stdout)
    }

    /// `bench --pg-step --compute int8 --json`: one step row per precision with every part's seconds positive (the
    /// sample and update parts may round to 0 on this tiny model, so they are only finite and ≥ 0), the parts adding
    /// up to no more than the step, both precisions sampling the same masks, and the f32/int8 ratio. Speed is not
    /// asserted.
    func testBenchPGStepJSON() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--pg-step", "--k", "3", "--json",
                                  "--batch", "2", "--seq", "16", "--repeats", "1", "--keep", "0.6"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let step = try XCTUnwrap(json["pgStep"] as? [String: Any], run.stdout)
        XCTAssertEqual(step["k"] as? Int, 3)
        XCTAssertEqual(step["keepProbability"] as? Double, 0.6)
        let rows = try XCTUnwrap(step["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["precision"] as? String }, ["f32", "int8"])
        for row in rows {
            for key in ["gatherSeconds", "forwardSeconds", "stepSeconds", "beyondForwardsFraction"] {
                let value = try XCTUnwrap(row[key] as? Double, "\(key) in \(row)")
                XCTAssertTrue(value.isFinite && value > 0, "\(key) = \(value)")
            }
            for key in ["sampleSeconds", "updateSeconds", "hardMaskSeconds"] {
                let value = try XCTUnwrap(row[key] as? Double, "\(key) in \(row)")
                XCTAssertTrue(value.isFinite && value >= 0, "\(key) = \(value)")
            }
            let parts = ["sampleSeconds", "gatherSeconds", "forwardSeconds", "updateSeconds", "hardMaskSeconds"].map { row[$0] as? Double ?? .nan }
            XCTAssertLessThanOrEqual(parts.reduce(0, +), (row["stepSeconds"] as? Double ?? 0) * (1 + 1e-9))
            XCTAssertLessThan(row["beyondForwardsFraction"] as? Double ?? 1, 1)
            let losses = try XCTUnwrap(row["sampleLosses"] as? [Double])
            XCTAssertEqual(losses.count, 3)
            XCTAssertTrue(losses.allSatisfy { $0.isFinite && $0 > 0 }, "\(losses)")
        }
        // Same seed, same masks: the int8 losses are the f32 ones up to int8 rounding (stories260K's NLL ≈ 6).
        let f32 = rows[0]["sampleLosses"] as? [Double] ?? [], int8 = rows[1]["sampleLosses"] as? [Double] ?? []
        for (a, b) in zip(f32, int8) { XCTAssertEqual(a, b, accuracy: 0.05 * a) }
        let ratio = try XCTUnwrap(step["f32OverInt8"] as? Double)
        XCTAssertTrue(ratio.isFinite && ratio > 0)
    }

    /// The text table has one column per precision and a row per part; f32 alone has no ratio line; a K below 2 is a
    /// usage error.
    func testBenchPGStepTable() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let run = try Shared.run(["bench", "--model", model, "--pg-step", "--batch", "2", "--seq", "16", "--repeats", "1", "--keep", "0.5"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for line in ["policy-gradient step: K = 2 masks", "sample K masks", "gather kept weights (K models)", "K forwards (tokenNLL)",
                     "estimator + update + projection", "hard mask (step log)", "beyond the K forwards (share of the step)"] {
            XCTAssertTrue(run.stdout.contains(line), "missing '\(line)' in\n\(run.stdout)")
        }
        XCTAssertTrue(run.stdout.contains("f32 s"), run.stdout)
        XCTAssertFalse(run.stdout.contains("int8 s "), run.stdout)
        XCTAssertFalse(run.stdout.contains("f32 step / int8 step"), run.stdout)
        let bad = try Shared.run(["bench", "--model", model, "--pg-step", "--k", "1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--k must be at least 2"), bad.stderr)
    }
}

/// `bench --calibrate-sgemm` (issue 12 item 3) writes this machine's per-shape table, and later processes follow it.
final class SgemmCalibrationCLITests: XCTestCase {
    func testCalibrationIsWrittenAndFollowed() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-cal-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("nested/sgemm.json")
        let environment = ["POLICYPRUNE_SGEMM_CALIBRATION": file.path]
        let run = try Shared.run(["bench", "--model", model, "--calibrate-sgemm", "--batch", "2", "--seq", "16", "--repeats", "1", "--json"],
                                 environment: environment)
        XCTAssertEqual(run.status, 0, run.stderr)
        let saved = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        let entries = try XCTUnwrap(saved["entries"] as? [[String: Any]])
        // stories260K (hidden 64, q/k/v 128, o 64, ffn 172): 4 projections x 2 fractions less the halved q/k/v, which
        // is o's shape (32 x 64 x 64), then 2 attention GEMMs and the head.
        XCTAssertEqual(entries.count, 10)
        XCTAssertTrue(entries.allSatisfy { ["openblas", "dnnl"].contains($0["backend"] as? String ?? "") })
        let forwards = try XCTUnwrap(saved["forwardSeconds"] as? [String: Double])
        XCTAssertEqual(Set(forwards.keys), ["per shape", "openblas", "dnnl"], "whole forwards timed under each candidate")
        let decision = try XCTUnwrap(saved["decision"] as? String)
        if decision != "per shape" {
            let library = decision.contains("dnnl") ? "dnnl" : "openblas"
            XCTAssertTrue(entries.allSatisfy { $0["backend"] as? String == library }, "\(decision): every entry follows it")
        }
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? NSDictionary, saved as NSDictionary)

        let bench = try Shared.run(["bench", "--model", model, "--batch", "1", "--seq", "8", "--repeats", "1", "--keep", "0", "--json"],
                                   environment: environment)
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any])
        XCTAssertTrue((report["f32GEMMReason"] as? String)?.contains("per shape from the calibration \(file.path)") == true,
                      "\(report["f32GEMMReason"] ?? "none")")

        // POLICYPRUNE_SGEMM overrides it; another machine's file is refused with a note naming it.
        let pinned = try Shared.run(["bench", "--model", model, "--batch", "1", "--seq", "8", "--repeats", "1", "--keep", "0", "--json"],
                                    environment: environment.merging(["POLICYPRUNE_SGEMM": "openblas"]) { $1 })
        XCTAssertEqual(pinned.status, 0, pinned.stderr)
        XCTAssertTrue(pinned.stdout.contains("POLICYPRUNE_SGEMM=openblas"), pinned.stdout)
        var other = saved
        other["machine"] = "another CPU"
        try JSONSerialization.data(withJSONObject: other).write(to: file)
        let refused = try Shared.run(["bench", "--model", model, "--batch", "1", "--seq", "8", "--repeats", "1", "--keep", "0"],
                                     environment: environment)
        XCTAssertEqual(refused.status, 0, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("measured for another machine"), refused.stderr)

        // A place that cannot hold the file: a typed error naming it, exit 1, nothing written.
        let blocked = dir.appendingPathComponent("plain-file")
        try Data("x".utf8).write(to: blocked)
        let unwritable = blocked.appendingPathComponent("sgemm.json").path
        let failed = try Shared.run(["bench", "--model", model, "--calibrate-sgemm", "--batch", "1", "--seq", "8", "--repeats", "1"],
                                    environment: ["POLICYPRUNE_SGEMM_CALIBRATION": unwritable])
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertTrue(failed.stderr.contains("\(unwritable): cannot write"), failed.stderr)
    }
}

/// `bench --compute int8 --nll-windows N --plan P`: the int8 accuracy check on a real plan (issue 12 item 2).
final class BenchPlanNLLTests: XCTestCase {
    func testPlanAddsAnNLLRow() throws {
        let model = try Shared.url("models/stories260K/stories260K.bin").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-benchplan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = dir.appendingPathComponent("half.json").path
        let score = try Shared.run(["score", "--model", model, "--metric", "magnitude", "--rate", "0.5", "--out", plan])
        XCTAssertEqual(score.status, 0, score.stderr)
        let run = try Shared.run(["bench", "--model", model, "--compute", "int8", "--nll-windows", "4", "--plan", plan, "--keep", "0",
                                  "--batch", "2", "--seq", "32", "--repeats", "1", "--nll-weight-rounding", "fp16,int8", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let rows = try XCTUnwrap(json["nll"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["dense", "plan half.json"])
        for row in rows {
            let f32 = try XCTUnwrap(row["f32MeanNLL"] as? Double), int8 = try XCTUnwrap(row["int8MeanNLL"] as? Double)
            XCTAssertEqual(row["windows"] as? Int, 4)
            XCTAssertTrue(f32.isFinite && f32 > 0 && int8.isFinite && int8 > 0)
            let over = try XCTUnwrap(row["windowsOverOnePercent"] as? Int)
            XCTAssertTrue((0...4).contains(over), "\(over) of 4 windows")
            let worst = try XCTUnwrap(row["worstWindow"] as? Int)
            XCTAssertTrue((0..<4).contains(worst))
            // The yardstick rows, in the order asked: fp16 (11 significant bits) moves the windows less than int8
            // codes (at most 8 bits per row) do.
            let rounding = try XCTUnwrap(row["weightRounding"] as? [[String: Any]])
            XCTAssertEqual(rounding.map { $0["rounding"] as? String }, ["fp16", "int8"])
            let fp16 = try XCTUnwrap((rounding[0]["movement"] as? [String: Any])?["meanRelative"] as? Double)
            let int8Weights = try XCTUnwrap((rounding[1]["movement"] as? [String: Any])?["meanRelative"] as? Double)
            XCTAssertTrue(fp16 < int8Weights, "fp16 \(fp16) vs int8 weights \(int8Weights)")
        }
        XCTAssertNotEqual(rows[0]["f32MeanNLL"] as? Double, rows[1]["f32MeanNLL"] as? Double, "the plan's model is another model")

        let bare = try Shared.run(["bench", "--model", model, "--plan", plan])
        XCTAssertNotEqual(bare.status, 0)
        XCTAssertTrue(bare.stderr.contains("--plan adds a row to the --nll-windows comparison"), bare.stderr)

        let unknown = try Shared.run(["bench", "--model", model, "--compute", "int8", "--nll-windows", "4", "--nll-weight-rounding", "bf16,fp8"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("unknown weight rounding 'fp8'"), unknown.stderr)
        let alone = try Shared.run(["bench", "--model", model, "--compute", "int8", "--nll-weight-rounding", "bf16"])
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.stderr.contains("--nll-weight-rounding adds rows to the --nll-windows comparison"), alone.stderr)
        let smoothed = try Shared.run(["bench", "--model", model, "--compute", "int8", "--nll-windows", "4", "--int8-calibration", "2",
                                       "--nll-weight-rounding", "int8"])
        XCTAssertNotEqual(smoothed.status, 0)
        XCTAssertTrue(smoothed.stderr.contains("--nll-weight-rounding int8 rounds the unsmoothed weights"), smoothed.stderr)
    }
}
