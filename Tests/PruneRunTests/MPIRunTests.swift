import XCTest
import FixtureSupport
import Kernels
@testable import Pruning
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15: `mpirun -np N policyprune prune` against the one-rank run on stories260K, through the built binary and
/// Open MPI's `mpirun` (CI installs openmpi-bin; these tests fail, never skip, without it). Every run is a few
/// seconds: 30 steps of 4 x 128 tokens, one kernel and one BLAS thread per rank.
final class MPIRunTests: XCTestCase {
    struct Missing: Error, CustomStringConvertible { let description: String }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pg-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// The options shared by the runs compared byte for byte. K = 3 over 2 ranks: an uneven share (rank 0 computes
    /// masks 0 and 2, rank 1 mask 1), and 1 + 2 held-out masks.
    func runArguments(_ dir: URL, extra: [String] = []) throws -> [String] {
        ["prune", "--model", try Shared.url("models/stories260K/stories260K.bin").path, "--rate", "0.3", "--init", "random",
         "--steps", "30", "--batch", "4", "--seq", "128", "--k", "3", "--lr", "0.05", "--checkpoint-every", "5",
         "--eval-every", "10", "--eval-windows", "8", "--seed", "7", "--run", dir.path, "--shared", Shared.root.path] + extra
    }

    /// `mpirun` with the flags a test machine needs: root (CI containers) must be allowed explicitly, and binding
    /// ranks to cores would pin them onto cores other jobs use.
    func mpirun(_ ranks: Int) throws -> [String] {
        let candidates = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Missing(description: "mpirun not found (\(candidates.joined(separator: ", "))): apt-get install openmpi-bin libopenmpi-dev")
        }
        return [path] + (getuid() == 0 ? ["--allow-run-as-root"] : []) + ["--oversubscribe", "--bind-to", "none", "-np", "\(ranks)"]
    }

    /// Runs `command` (the binary's arguments, or a launcher line whose `policyprune` element is replaced by the
    /// binary) with one thread per rank; `whileRunning` is polled until it returns true or the process ends. A run
    /// still alive after `timeout` seconds is killed and fails the test.
    @discardableResult
    func launch(_ command: [String], environment extra: [String: String] = [:], timeout: Double = 120,
                whileRunning: ((Process) -> Bool)? = nil) throws -> Result {
        let binary = Shared.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw Missing(description: "policyprune binary not built at \(binary.path)")
        }
        let line = command.first?.hasPrefix("/") == true ? command.map { $0 == "policyprune" ? binary.path : $0 } : [binary.path] + command
        let process = Process()
        process.executableURL = URL(fileURLWithPath: line[0])
        process.arguments = Array(line.dropFirst())
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("PMI_"))
        }
        environment["POLICYPRUNE_THREADS"] = "1"
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment.merge(extra) { $1 }
        process.environment = environment
        let out = scratch.appendingPathComponent("stdout-\(UUID().uuidString)")
        let err = scratch.appendingPathComponent("stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var polling = whileRunning != nil
        while process.isRunning {
            if polling, whileRunning!(process) { polling = false }
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                XCTFail("\(line.joined(separator: " ")) still running after \(timeout) s")
                break
            }
            usleep(500)
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }

    func bytes(_ dir: URL, _ name: String) throws -> Data { try Data(contentsOf: dir.appendingPathComponent(name)) }

    func stepLines(_ dir: URL) -> Int {
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("log.jsonl").path) else { return 0 }
        return String(decoding: data, as: UTF8.self).components(separatedBy: "\"event\":\"step\"").count - 1
    }

    /// The log's values that do not depend on timing: every step's sample losses and every held-out evaluation's
    /// NLLs, as their JSON text (so a difference in the last bit shows).
    func logValues(_ dir: URL) throws -> [String] {
        let text = String(decoding: try bytes(dir, "log.jsonl"), as: UTF8.self)
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return "?" }
            let keys = object["event"] as? String == "step" ? ["iteration", "sample_losses", "mean_loss"]
                                                            : ["iteration", "mean_nll", "sampled_mean_nll", "best"]
            return keys.map { "\($0)=\(object[$0].map { "\($0)" } ?? "nil")" }.joined(separator: " ")
        }
    }

    func assertIdentical(_ a: URL, _ b: URL, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for name in ["plan.json", "scores.json", "final-plan.json"] {
            XCTAssertEqual(try bytes(a, name), try bytes(b, name), "\(what): \(name)", file: file, line: line)
        }
        XCTAssertEqual(try logValues(a), try logValues(b), "\(what): per-step sample losses and held-out NLLs", file: file, line: line)
    }

    /// The pids whose parent is `pid` (the ranks mpirun started on this machine).
    func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { return false }
            let fields = stat[close.upperBound...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    /// Whether `pid` exists and is not a zombie (a container's init may never reap mpirun's orphans).
    func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.range(of: ")", options: .backwards),
              let state = stat[close.upperBound...].split(separator: " ").first else { return false }
        return state != "Z" && state != "X"
    }

    /// Two ranks give the one-rank run byte for byte (plan, scores, final plan, every sample loss and held-out NLL)
    /// for both policies; rank 0 alone prints the result; the folder holds exactly what a one-rank run writes.
    func testTwoRanksEqualOneRankByteForByte() throws {
        let t0 = Date()
        for (policy, extra) in [("structures", []), ("allocation", ["--policy", "allocation", "--k", "4", "--heldout-samples", "3"])] {
            let one = scratch.appendingPathComponent("one-\(policy)")
            let two = scratch.appendingPathComponent("two-\(policy)")
            let r1 = try launch(try runArguments(one, extra: extra))
            XCTAssertEqual(r1.status, 0, r1.stderr)
            let r2 = try launch(try mpirun(2) + ["policyprune"] + runArguments(two, extra: extra))
            XCTAssertEqual(r2.status, 0, r2.stderr)
            XCTAssertTrue(r2.stderr.contains("2 MPI ranks"), r2.stderr)
            XCTAssertEqual(r2.stdout.components(separatedBy: "plan         ").count - 1, 1, "only rank 0 prints: \(r2.stdout)")
            try assertIdentical(one, two, "\(policy): 2 ranks vs 1")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: two.path).sorted(),
                           try FileManager.default.contentsOfDirectory(atPath: one.path).sorted(), "\(policy): files of the run folder")
        }
        print(String(format: "2-rank vs 1-rank runs took %.1f s", Date().timeIntervalSince(t0)))
    }

    /// A rank SIGKILLed at a random step after the first checkpoint ends the whole job (mpirun's abort: non-zero
    /// status, no rank left, no plan). Resuming with 2 ranks, and a copy with 1 rank, ends byte-identical to the
    /// uninterrupted one-rank run.
    func testKilledTwoRankRunResumesToTheSameResult() throws {
        let reference = scratch.appendingPathComponent("reference")
        XCTAssertEqual(try launch(try runArguments(reference)).status, 0)

        let killAt = Int.random(in: 6...24)
        let killed = scratch.appendingPathComponent("killed")
        var ranks: [Int32] = [], victim: Int32 = 0
        let k = try launch(try mpirun(2) + ["policyprune"] + runArguments(killed)) { process in
            guard self.stepLines(killed) >= killAt else { return false }
            ranks = self.children(of: process.processIdentifier)
            victim = ranks.randomElement() ?? 0
            if victim > 0 { kill(victim, SIGKILL) }
            return true
        }
        print("SIGKILL of rank pid \(victim) (of \(ranks)) after \(killAt) step lines; \(stepLines(killed)) lines on disk")
        XCTAssertEqual(ranks.count, 2, "mpirun's children: \(ranks)")
        XCTAssertNotEqual(k.status, 0, "the job must end when a rank dies: \(k.stderr.suffix(600))")
        for pid in ranks { XCTAssertFalse(isRunning(pid), "rank pid \(pid) still running after mpirun ended") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("plan.json").path), "killed before the end")

        let copy = scratch.appendingPathComponent("killed-copy")
        try FileManager.default.copyItem(at: killed, to: copy)
        let resumed = try launch(try mpirun(2) + ["policyprune", "prune", "--resume", killed.path, "--shared", Shared.root.path])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming from checkpoint-"), resumed.stderr)
        try assertIdentical(reference, killed, "killed 2-rank run resumed with 2 ranks")
        let single = try launch(["prune", "--resume", copy.path, "--shared", Shared.root.path])
        XCTAssertEqual(single.status, 0, single.stderr)
        try assertIdentical(reference, copy, "killed 2-rank run resumed with 1 rank")
    }

    /// A failing rank ends every rank through MPI_Abort with its error: rank 0 refusing an occupied folder, and a
    /// rank whose thread count differs from rank 0's (which would silently change its losses).
    func testAFailingRankEndsTheJobWithItsError() throws {
        let occupied = scratch.appendingPathComponent("occupied")
        XCTAssertEqual(try launch(try runArguments(occupied, extra: ["--steps", "2"])).status, 0)
        let r = try launch(try mpirun(2) + ["policyprune"] + runArguments(occupied), timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 0 of 2: error:") && r.stderr.contains("already holds a run"), r.stderr)

        // MPMD launch: rank 1 runs with 2 kernel threads.
        let mixed = scratch.appendingPathComponent("mixed")
        let arguments = try runArguments(mixed)
        let line = try mpirun(1) + ["/usr/bin/env", "POLICYPRUNE_THREADS=1", "policyprune"] + arguments
            + [":", "-np", "1", "/usr/bin/env", "POLICYPRUNE_THREADS=2", "policyprune"] + arguments
        let m = try launch(line, timeout: 60)
        XCTAssertNotEqual(m.status, 0)
        XCTAssertTrue(m.stderr.contains("rank 1 of 2: error: rank 1 built other run options than rank 0"), m.stderr)
    }

    /// Without a launcher the binary never loads MPI (a bad POLICYPRUNE_MPI is ignored and the run succeeds); under
    /// a launcher, a libmpi that cannot be loaded is a clear error naming the package, before anything is written.
    func testMPIIsLoadedOnlyUnderALauncher() throws {
        let plain = scratch.appendingPathComponent("plain")
        let p = try launch(try runArguments(plain, extra: ["--steps", "2"]), environment: ["POLICYPRUNE_MPI": "/nonexistent/libmpi.so.40"])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertFalse(p.stderr.contains("MPI"), p.stderr)

        let launched = scratch.appendingPathComponent("launched")
        let r = try launch(try runArguments(launched), environment: ["POLICYPRUNE_MPI": "/nonexistent/libmpi.so.40",
                                                                    "OMPI_COMM_WORLD_SIZE": "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("started by an MPI launcher (OMPI_COMM_WORLD_SIZE is set)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("apt-get install openmpi-bin libopenmpi-dev") && r.stderr.contains("/nonexistent/libmpi.so.40"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: launched.path))
    }

    /// Launch detection reads the variables Open MPI, PMIx and PMI launchers set.
    func testLauncherDetection() {
        XCTAssertNil(MPIWorld.launcherVariable(in: ["PATH": "/usr/bin", "OMPI_COMM_WORLD_SIZE": ""]))
        XCTAssertEqual(MPIWorld.launcherVariable(in: ["OMPI_COMM_WORLD_SIZE": "2"]), "OMPI_COMM_WORLD_SIZE")
        XCTAssertEqual(MPIWorld.launcherVariable(in: ["PMIX_RANK": "0"]), "PMIX_RANK")
        XCTAssertEqual(MPIWorld.launcherVariable(in: ["PMI_SIZE": "4"]), "PMI_SIZE")
    }

    /// The arithmetic the byte-identity rests on: every value has exactly one owner, and summing the ranks'
    /// contributions (owner's value, −0.0 elsewhere) in any order returns each value bit for bit, including +0.0,
    /// −0.0, infinities, subnormals and NaN (which must stay NaN: a NaN loss drops its sample).
    func testRankShareSumIsExactInAnyOrder() {
        let values: [Double] = [0.0, -0.0, 5.543_210_987_654_321, .infinity, -.infinity, .leastNonzeroMagnitude,
                                -.leastNormalMagnitude, 1e308, .nan, 3.0, -7.25e-300]
        for ranks in 1...4 {
            var owners = [Int](repeating: 0, count: values.count)
            let contributions = (0..<ranks).map { rank in
                RankShare.contribution(values.indices.map { i in
                    guard RankShare.owner(of: i, ranks: ranks) == rank else { return nil }
                    owners[i] += 1
                    return values[i]
                })
            }
            XCTAssertEqual(owners, [Int](repeating: 1, count: values.count), "\(ranks) ranks: one owner per value")
            for order in [Array(0..<ranks), Array((0..<ranks).reversed()), Array(0..<ranks).shuffled()] {
                var sum = contributions[order[0]]
                for r in order.dropFirst() { sum = zip(sum, contributions[r]).map { $0 + $1 } }
                for (a, b) in zip(sum, values) {
                    XCTAssertTrue(a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN), "\(ranks) ranks, order \(order): \(a) vs \(b)")
                }
            }
        }
        // A plain +0.0 filler would lose the sign of −0.0; the filler must be −0.0.
        XCTAssertEqual((-0.0 + 0.0).sign, .plus)
        XCTAssertEqual((-0.0 + -0.0).sign, .minus)
    }

    /// `RankShare.values` over one process computes every value, in order, and passes the local extras through.
    func testRankShareOnOneProcessComputesEverything() throws {
        var calls: [Int] = []
        let (values, extra) = try RankShare(SingleProcess()).values(count: 4, local: { [1.5] }) { i in
            calls.append(i)
            return Double(i) * 2
        }
        XCTAssertEqual(calls, [0, 1, 2, 3])
        XCTAssertEqual(values, [0, 2, 4, 6])
        XCTAssertEqual(extra, [1.5])
    }
}
