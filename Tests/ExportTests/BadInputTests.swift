import Checkpoints
import FixtureSupport
import Foundation
import Pruning
import Transformer
import XCTest

/// Bad input (issue 6): a plan for another model, an output path that exists, an unwritable destination. Each is a
/// typed error, and no file (not even a temporary) is left behind.
final class BadInputTests: XCTestCase {
    func request(_ m: TestModel, format: ExportFormat) -> ExportRequest {
        ExportRequest(config: m.model.config, weights: m.model.weights, format: format, dtype: .f32,
                      tokenizer: m.checkpoint.tokenizer, name: "test")
    }

    func testPlanForAnotherModelIsRejected() throws {
        let stories = try Models.stories(), smol = try Models.smol()
        let plan = try Plans.heterogeneous(stories.model.config)
        XCTAssertThrowsError(try plan.compact(config: smol.model.config, weights: smol.model.weights)) { error in
            XCTAssertEqual(error as? PruningError, .layerCount(what: "plan", expected: 30, found: 5))
        }
        // Same layer count, different model: the recorded dense parameter count gives it away.
        var other = stories.model.config
        other.layers = other.layers.map { var l = $0; l.ffnDim = 173; return l }
        var otherWeights = stories.model.weights
        otherWeights.layers = otherWeights.layers.map { l in
            var l = l
            l.gate += [Float](repeating: 0, count: 64); l.up += [Float](repeating: 0, count: 64)
            var down: [Float] = []
            for r in 0..<64 {
                down.append(contentsOf: l.down[(r * 172)..<((r + 1) * 172)])
                down.append(0)
            }
            l.down = down
            return l
        }
        XCTAssertThrowsError(try plan.compact(config: other, weights: otherWeights)) { error in
            guard case .invalidValue(let key, _, let reason)? = error as? PruningError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "dense_parameters")
            XCTAssertTrue(reason.contains("another model"), reason)
        }
    }

    func testExistingOutputNeedsForce() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        for format in ExportFormat.allCases {
            let out = folder + "/out-\(format)"
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: out))
            XCTAssertThrowsError(try ModelExporter.export(request(m, format: format), to: out, force: false)) {
                XCTAssertEqual($0 as? CheckpointWriteError, .outputExists(path: out))
            }
            XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "keep me", "the existing file is untouched")
            // With force the old output is replaced by a complete new one.
            let result = try ModelExporter.export(request(m, format: format), to: out, force: true)
            XCTAssertGreaterThan(result.totalBytes, 1_000_000)
            XCTAssertNoThrow(try CheckpointLoader.load(path: out))
            // ... and replacing an existing export (a folder for hf) works too.
            XCTAssertNoThrow(try ModelExporter.export(request(m, format: format), to: out, force: true))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["out-gguf", "out-hf"], "no temporaries left")
    }

    func testUnwritableDestination() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        let aFile = folder + "/plain-file"
        try Data().write(to: URL(fileURLWithPath: aFile))
        for format in ExportFormat.allCases {
            // The folder is a file / does not exist.
            for out in [aFile + "/model", folder + "/missing/model"] {
                XCTAssertThrowsError(try ModelExporter.export(request(m, format: format), to: out, force: false)) { error in
                    guard case .unwritable(let path, _)? = error as? CheckpointWriteError else { return XCTFail("\(error)") }
                    XCTAssertEqual(path, out)
                }
            }
            // A read-only file system (root ignores permission bits, so use one the kernel refuses).
            XCTAssertThrowsError(try ModelExporter.export(request(m, format: format), to: "/proc/policyprune-export-\(format)", force: false)) { error in
                guard case .unwritable? = error as? CheckpointWriteError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["plain-file"], "no partial files")
    }

    /// A failure in the middle of writing (an extra file with an illegal name, after the weights were written)
    /// leaves nothing at the destination and no temporary folder.
    func testFailureMidWayLeavesNothing() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        var r = request(m, format: .hf)
        r.extraFiles = ["../escape.json": Data()]
        XCTAssertThrowsError(try ModelExporter.export(r, to: folder + "/out", force: false)) { error in
            guard case .unsupportedModel? = error as? CheckpointWriteError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }

    func testDTypeNotInFormat() throws {
        let m = try Models.stories()
        let folder = try temporaryFolder(self)
        for (format, dtype) in [(ExportFormat.hf, WeightDType.q8_0), (.gguf, .bf16)] {
            var r = request(m, format: format)
            r.dtype = dtype
            XCTAssertThrowsError(try ModelExporter.export(r, to: folder + "/x", force: false)) { error in
                guard case .unsupportedDType? = error as? CheckpointWriteError else { return XCTFail("\(error)") }
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }

    /// The built binary: exit code and message for an existing output and for a plan of another model.
    func testCommandLineErrors() throws {
        let folder = try temporaryFolder(self)
        let stories = try Shared.url("models/stories260K/stories260K.bin").path
        let smol = try Shared.url("models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let planPath = folder + "/plan.json"
        try Plans.heterogeneous(try Models.stories().model.config).jsonData().write(to: URL(fileURLWithPath: planPath))

        func run(_ arguments: [String]) throws -> BinaryRun { try Shared.run(arguments) }
        let ok = try run(["export", "--model", stories, "--plan", planPath, "--format", "gguf", "--out", folder + "/s.gguf"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("architecture deci"), ok.stdout)
        let exists = try run(["export", "--model", stories, "--plan", planPath, "--format", "gguf", "--out", folder + "/s.gguf"])
        XCTAssertNotEqual(exists.status, 0)
        XCTAssertTrue(exists.stderr.contains("already exists (pass --force to replace it)"), exists.stderr)
        let wrongModel = try run(["export", "--model", smol, "--plan", planPath, "--format", "hf", "--out", folder + "/smol"])
        XCTAssertNotEqual(wrongModel.status, 0)
        XCTAssertTrue(wrongModel.stderr.contains("does not fit"), wrongModel.stderr)
        let badDType = try run(["export", "--model", stories, "--format", "hf", "--dtype", "q8_0", "--out", folder + "/q"])
        XCTAssertNotEqual(badDType.status, 0)
        XCTAssertTrue(badDType.stderr.contains("not available for --format hf"), badDType.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["plan.json", "s.gguf"])
    }
}
