import XCTest
import FixtureSupport
#if canImport(Glibc)
import Glibc
#endif

/// End-to-end tests of `policyprune prune` on stories260K, running the built binary: exact resume after SIGKILL,
/// same-seed reproducibility and the spread over seeds, fallback from a corrupt checkpoint, a disk-full
/// checkpoint write, and bad input. Every run is small (a few dozen steps of 4 x 128 tokens).
final class PruneCommandTests: XCTestCase {
    struct Result {
        var status: Int32
        var signalled: Bool
        var stdout: String
        var stderr: String
    }

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pg-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    var modelPath: String { get throws { try Shared.url("models/stories260K/stories260K.bin").path } }

    /// The options shared by the runs that are compared byte for byte.
    func runArguments(_ dir: URL, seed: Int = 7, steps: Int = 30) throws -> [String] {
        ["prune", "--model", try modelPath, "--rate", "0.3", "--init", "random", "--steps", "\(steps)", "--batch", "4",
         "--seq", "128", "--k", "2", "--lr", "0.05", "--checkpoint-every", "5", "--eval-every", "10", "--eval-windows", "8",
         "--seed", "\(seed)", "--run", dir.path, "--shared", Shared.root.path]
    }

    /// Starts the binary; `whileRunning` is called repeatedly until it returns true or the process ends.
    @discardableResult
    func launch(_ arguments: [String], whileRunning: ((Process) -> Bool)? = nil) throws -> Result {
        let binary = Shared.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            struct NotBuilt: Error, CustomStringConvertible { let description: String }
            throw NotBuilt(description: "policyprune binary not built at \(binary.path)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let out = scratch.appendingPathComponent("stdout-\(UUID().uuidString)")
        let err = scratch.appendingPathComponent("stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        if let whileRunning {
            while process.isRunning {
                if whileRunning(process) { break }
                usleep(500)
            }
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                      stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }

    func bytes(_ dir: URL, _ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }

    func stepLines(_ dir: URL) -> Int {
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("log.jsonl").path) else { return 0 }
        return String(decoding: data, as: UTF8.self).components(separatedBy: "\"event\":\"step\"").count - 1
    }

    /// The sample losses of every step, in order (everything in the log that does not depend on timing).
    func sampleLosses(_ dir: URL) throws -> [[Double]] {
        let text = String(decoding: try bytes(dir, "log.jsonl"), as: UTF8.self)
        return try text.split(separator: "\n").compactMap { line -> [Double]? in
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            guard object["event"] as? String == "step" else { return nil }
            return try XCTUnwrap(object["sample_losses"] as? [NSNumber]).map(\.doubleValue)
        }
    }

    func assertIdenticalOutcome(_ a: URL, _ b: URL, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try bytes(a, "plan.json"), try bytes(b, "plan.json"), "\(what): plan.json", file: file, line: line)
        XCTAssertEqual(try bytes(a, "scores.json"), try bytes(b, "scores.json"), "\(what): scores.json", file: file, line: line)
        XCTAssertEqual(try sampleLosses(a), try sampleLosses(b), "\(what): per-step sample losses", file: file, line: line)
    }

    /// The whole story of a run: an uninterrupted reference; a run SIGKILLed at a random step after its first
    /// checkpoint and resumed; a same-seed repeat; a corrupt newest checkpoint; a disk-full checkpoint write. All
    /// must end byte-identical to the reference. Then another seed, whose spread is recorded.
    func testKillResumeCorruptDiskFullAndSeeds() throws {
        let t0 = Date()
        let reference = scratch.appendingPathComponent("reference")
        let r = try launch(try runArguments(reference))
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in ["options.json", "log.jsonl", "initial-scores.json", "initial-plan.json", "scores.json", "plan.json", "report.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: reference.appendingPathComponent(name).path), name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: reference.appendingPathComponent("checkpoint").path).sorted(),
                       ["checkpoint-00000025.ckpt", "checkpoint-00000030.ckpt"])
        XCTAssertTrue(r.stderr.contains("steps/s") && r.stderr.contains("ETA") && r.stderr.contains("baseline"), r.stderr)
        XCTAssertTrue(String(decoding: try bytes(reference, "report.svg"), as: UTF8.self).hasPrefix("<svg"))

        // SIGKILL at a random step after the first checkpoint (5): 6 step lines mean checkpoint 5 is on disk.
        let killAt = Int.random(in: 6...26)
        let killed = scratch.appendingPathComponent("killed")
        let k = try launch(try runArguments(killed)) { process in
            if self.stepLines(killed) >= killAt { kill(process.processIdentifier, SIGKILL); return true }
            return false
        }
        print("SIGKILL after \(killAt) step lines; \(self.stepLines(killed)) lines on disk")
        XCTAssertTrue(k.signalled, "the run must have been killed (status \(k.status)); it finished before step \(killAt)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("plan.json").path))
        let resumed = try launch(["prune", "--resume", killed.path, "--shared", Shared.root.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming from checkpoint-"), resumed.stderr)
        try assertIdenticalOutcome(reference, killed, "killed at step \(killAt) and resumed")

        // Same seed, fresh run: the same plan.
        let again = scratch.appendingPathComponent("again")
        XCTAssertEqual(try launch(try runArguments(again)).status, 0)
        try assertIdenticalOutcome(reference, again, "same seed")

        // Corrupt newest checkpoint (30): the run resumes from 25, says so, and ends the same.
        let newest = again.appendingPathComponent("checkpoint/checkpoint-00000030.ckpt")
        var damaged = try Data(contentsOf: newest)
        damaged[damaged.count / 2] ^= 0x20
        try damaged.write(to: newest)
        try FileManager.default.removeItem(at: again.appendingPathComponent("plan.json"))
        let c = try launch(["prune", "--resume", again.path, "--shared", Shared.root.path])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stderr.contains("checkpoint checkpoint-00000030.ckpt is corrupt"), c.stderr)
        XCTAssertTrue(c.stderr.contains("using the previous checkpoint checkpoint-00000025.ckpt"), c.stderr)
        try assertIdenticalOutcome(reference, again, "resumed from the previous checkpoint")

        // Disk full at checkpoint 15: the temporary file of that checkpoint points at /dev/full (ENOSPC on write).
        let full = scratch.appendingPathComponent("full")
        try FileManager.default.createDirectory(at: full.appendingPathComponent("checkpoint"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: full.appendingPathComponent("checkpoint/.tmp-checkpoint-00000015.ckpt").path,
                                                   withDestinationPath: "/dev/full")
        let f = try launch(try runArguments(full))
        XCTAssertNotEqual(f.status, 0)
        XCTAssertTrue(f.stderr.contains("No space left on device"), f.stderr)
        XCTAssertTrue(f.stderr.contains("checkpoint-00000010.ckpt is intact"), f.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full.appendingPathComponent("checkpoint").path).sorted(),
                       ["checkpoint-00000005.ckpt", "checkpoint-00000010.ckpt"])
        let fr = try launch(["prune", "--resume", full.path, "--shared", Shared.root.path])
        XCTAssertEqual(fr.status, 0, fr.stderr)
        try assertIdenticalOutcome(reference, full, "after a failed checkpoint write")

        // Another seed: a different plan; record the spread.
        let other = scratch.appendingPathComponent("seed8")
        XCTAssertEqual(try launch(try runArguments(other, seed: 8)).status, 0)
        let planA = try XCTUnwrap(try JSONSerialization.jsonObject(with: bytes(reference, "plan.json")) as? [String: Any])
        let planB = try XCTUnwrap(try JSONSerialization.jsonObject(with: bytes(other, "plan.json")) as? [String: Any])
        func kept(_ plan: [String: Any]) -> Set<String> {
            var s = Set<String>()
            for (l, layer) in (plan["layers"] as? [[String: Any]] ?? []).enumerated() {
                for g in layer["kept_kv_groups"] as? [Int] ?? [] { s.insert("a\(l).\(g)") }
                for ch in layer["kept_channels"] as? [Int] ?? [] { s.insert("m\(l).\(ch)") }
            }
            return s
        }
        let (ka, kb) = (kept(planA), kept(planB))
        let jaccard = Double(ka.intersection(kb).count) / Double(ka.union(kb).count)
        XCTAssertLessThan(jaccard, 1, "different seeds should give different plans")
        print(String(format: "seed 7 vs seed 8: kept-structure Jaccard overlap %.3f (%d vs %d kept)", jaccard, ka.count, kb.count))
        print(String(format: "end-to-end run test took %.1f s", Date().timeIntervalSince(t0)))
    }

    /// Bad input fails with a message naming the problem and a non-zero exit.
    /// `--granularity heads|sublayers|layers`: short real runs whose plans remove only what the granularity
    /// scores, at the requested rate of those units; incompatible options are refused.
    func testGranularities() throws {
        for (granularity, initMethod) in [("heads", "random"), ("sublayers", "random"), ("layers", "block-influence")] {
            let dir = scratch.appendingPathComponent(granularity)
            let arguments = try runArguments(dir, steps: 6).swapping(["--init", "random"], with: ["--init", initMethod])
                + ["--granularity", granularity, "--init-windows", "4", "--init-seq", "128"]
            let r = try launch(arguments.swapping(["--rate", "0.3"], with: ["--rate", "0.4"]))
            XCTAssertEqual(r.status, 0, "\(granularity): \(r.stderr.suffix(800))")
            let plan = try XCTUnwrap(try JSONSerialization.jsonObject(with: try bytes(dir, "plan.json")) as? [String: Any])
            let layers = try XCTUnwrap(plan["layers"] as? [[String: Any]])
            XCTAssertEqual(layers.count, 5)
            let groups = layers.map { ($0["kept_kv_groups"] as? [Int] ?? []).count }
            let channels = layers.map { ($0["kept_channels"] as? [Int] ?? []).count }
            switch granularity {
            case "heads":
                XCTAssertEqual(channels, Array(repeating: 172, count: 5), "heads never prunes the MLP")
                XCTAssertEqual(groups.reduce(0, +), 12, "20 KV groups at keep ratio 0.6")
            case "sublayers":
                XCTAssertEqual(Set(groups).subtracting([0, 4]), [], "whole attention sublayers: \(groups)")
                XCTAssertEqual(Set(channels).subtracting([0, 172]), [], "whole MLP sublayers: \(channels)")
                XCTAssertEqual(groups.filter { $0 == 4 }.count, 3, "3 of 5 attention sublayers kept")
                XCTAssertEqual(channels.filter { $0 == 172 }.count, 3, "3 of 5 MLP sublayers kept")
            default:
                XCTAssertEqual(zip(groups, channels).filter { $0 == (4, 172) }.count, 3, "3 of 5 blocks kept: \(groups) \(channels)")
                XCTAssertEqual(zip(groups, channels).filter { $0 == (0, 0) }.count, 2, "2 blocks removed whole")
            }
        }
        let bad = scratch.appendingPathComponent("bad-granularity")
        for (extra, expected) in [(["--granularity", "sublayers", "--init", "wanda-sp"], "does not score --granularity sublayers"),
                                  (["--granularity", "layers", "--scope", "per-layer"], "one score per layer"),
                                  (["--granularity", "neurons"], "granularity")] {
            let arguments = try runArguments(bad, steps: 2).swapping(["--init", "random"], with: []) + extra
            let r = try launch(arguments)
            XCTAssertNotEqual(r.status, 0, extra.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(expected), "\(extra): wanted '\(expected)' in \(r.stderr)")
        }
    }

    func testBadInput() throws {
        let dir = scratch.appendingPathComponent("bad")
        var cases: [([String], String)] = [
            (try runArguments(dir).swapping(["--rate", "0.3"], with: ["--rate", "1.5"]), "--rate must be in (0, 1)"),
            (try runArguments(dir).swapping(["--rate", "0.3"], with: ["--rate", "0"]), "--rate must be in (0, 1)"),
            (try runArguments(dir).swapping(["--k", "2"], with: ["--k", "1"]), "--k must be at least 2"),
            (["prune", "--resume", scratch.path], "not a policy-gradient run directory"),
            (["prune", "--model", try modelPath, "--rate", "0.3"], "give exactly one of --run DIR"),
        ]
        // A run directory from another model: a real run of stories260K, resumed with a different model file.
        let small = scratch.appendingPathComponent("small")
        XCTAssertEqual(try launch(try runArguments(small, steps: 2)).status, 0)
        let other = scratch.appendingPathComponent("other.bin")
        var weights = try Data(contentsOf: URL(fileURLWithPath: try modelPath))
        weights[weights.count - 1] ^= 0x01
        try weights.write(to: other)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: try modelPath).deletingLastPathComponent().appendingPathComponent("tok512.bin"),
                                         to: scratch.appendingPathComponent("tok512.bin"))
        cases.append((["prune", "--resume", small.path, "--model", other.path, "--shared", Shared.root.path], "was made for another model"))
        cases.append((try runArguments(small), "already holds a run"))
        for (arguments, expected) in cases {
            let r = try launch(arguments)
            XCTAssertNotEqual(r.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(expected), "\(arguments.joined(separator: " ")): wanted '\(expected)' in: \(r.stderr)")
        }
    }
}

extension Array where Element == String {
    /// The array with the first occurrence of the adjacent pair `old` replaced by `new`.
    func swapping(_ old: [String], with new: [String]) -> [String] {
        for i in 0..<(count - old.count + 1) where Array(self[i..<(i + old.count)]) == old {
            return Array(self[..<i]) + new + Array(self[(i + old.count)...])
        }
        return self
    }
}
