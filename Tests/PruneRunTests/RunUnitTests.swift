import Essentials
import XCTest
import Corpora
import FixtureSupport
import Kernels
@testable import Pruning

/// In-process tests of the run machinery: data order, checkpoint files (atomicity, corruption, write failures),
/// initial scores. No model needed.
final class RunUnitTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pg-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// A restored `DataOrder` continues exactly where the original was, across epoch boundaries; each epoch is a
    /// permutation with a partial tail skipped.
    func testDataOrderResumesExactlyAndCoversEachEpoch() throws {
        var a = DataOrder(blockCount: 10, seed: 7)
        var cacheA: [Int]? = nil
        var first: [Int] = []
        for _ in 0..<3 { first += a.nextBatch(3, cache: &cacheA) }   // one epoch: 9 of 10 blocks, tail skipped
        XCTAssertEqual(Set(first).count, 9)
        XCTAssertEqual(a.epoch, 1)
        var stream: [[Int]] = []
        for _ in 0..<2 { stream.append(a.nextBatch(3, cache: &cacheA)) }
        let saved = try JSONDecoder().decode(DataOrder.self, from: JSONEncoder().encode(a))
        for _ in 0..<7 { stream.append(a.nextBatch(3, cache: &cacheA)) }
        var b = saved
        var cacheB: [Int]? = nil
        var resumed: [[Int]] = Array(stream.prefix(2))
        for _ in 0..<7 { resumed.append(b.nextBatch(3, cache: &cacheB)) }
        XCTAssertEqual(resumed, stream)
        XCTAssertEqual(a, b)
        XCTAssertGreaterThanOrEqual(a.epoch, 3)
    }

    func sampleCheckpoint(iteration: Int, seed: UInt64 = 1) -> RunCheckpoint {
        var rng = Xoshiro256(seed: seed)
        let s = KeepProbabilities(attention: (0..<3).map { _ in (0..<4).map { _ in rng.nextUnitDouble() } },
                                  mlp: (0..<3).map { _ in (0..<50).map { _ in rng.nextUnitDouble() * 1e-3 + Double(rng.next() % 2) * 0.1 } })
        var baseline = MovingAverageBaseline(kind: .slidingWindow, window: 3)
        for _ in 0..<5 { baseline.update(meanLoss: rng.nextUnitDouble() * 7) }
        return RunCheckpoint(modelSHA256: "abc", iteration: iteration, state: PolicyGradientState(keepProbabilities: s, baseline: baseline, step: iteration),
                             maskGenerator: rng, dataOrder: DataOrder(blockCount: 99, seed: 3), elapsedSeconds: 1.5)
    }

    /// Checkpoints read back bit for bit (every Double), and only the newest two survive.
    func testCheckpointRoundTripIsExactAndKeepsLatestTwo() throws {
        let store = CheckpointStore(directory: scratch)
        for i in [5, 10, 15] { try store.write(sampleCheckpoint(iteration: i, seed: UInt64(i))) }
        XCTAssertEqual(store.files().map(\.lastPathComponent), ["checkpoint-00000015.ckpt", "checkpoint-00000010.ckpt"])
        let (latest, file, messages) = try store.latest()
        XCTAssertEqual(file.lastPathComponent, "checkpoint-00000015.ckpt")
        XCTAssertTrue(messages.isEmpty)
        let expected = sampleCheckpoint(iteration: 15, seed: 15)
        XCTAssertEqual(latest, expected)
        for (x, y) in zip(latest.state.keepProbabilities.mlp.joined(), expected.state.keepProbabilities.mlp.joined()) {
            XCTAssertEqual(x.bitPattern, y.bitPattern)
        }
        XCTAssertEqual(latest.state.baseline.value?.bitPattern, expected.state.baseline.value?.bitPattern)
    }

    /// A damaged newest checkpoint is set aside and the previous one is used, and the message says so.
    func testCorruptLatestCheckpointFallsBackToPrevious() throws {
        let store = CheckpointStore(directory: scratch)
        try store.write(sampleCheckpoint(iteration: 5))
        let newest = try store.write(sampleCheckpoint(iteration: 10))
        var bytes = try Data(contentsOf: newest)
        bytes[bytes.count - 20] ^= 0x01
        try bytes.write(to: newest)
        let (c, file, messages) = try store.latest()
        XCTAssertEqual(c.iteration, 5)
        XCTAssertEqual(file.lastPathComponent, "checkpoint-00000005.ckpt")
        XCTAssertEqual(messages.count, 1)
        XCTAssertTrue(messages[0].contains("checkpoint-00000010.ckpt is corrupt"), messages[0])
        XCTAssertTrue(messages[0].contains("using the previous checkpoint checkpoint-00000005.ckpt"), messages[0])
        XCTAssertTrue(FileManager.default.fileExists(atPath: newest.path + ".corrupt"))

        // Truncated (a half-written file under the final name cannot happen, but a damaged disk can do this).
        let only = try store.write(sampleCheckpoint(iteration: 10))
        try Data(try Data(contentsOf: only).prefix(100)).write(to: only)
        try Data("garbage".utf8).write(to: scratch.appendingPathComponent("checkpoint-00000005.ckpt"))
        XCTAssertThrowsError(try store.latest()) { error in
            guard case RunError.noUsableCheckpoint(_, let reasons) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(reasons.count, 2)
        }
    }

    /// Disk full while checkpointing: the write fails with the system's reason, names the last good checkpoint,
    /// leaves no temporary file, and the last good checkpoint still loads. Simulated by pointing the temporary
    /// name at /dev/full (every write there fails with ENOSPC), which works even as root, unlike a read-only folder.
    func testDiskFullLeavesLastGoodCheckpoint() throws {
        let store = CheckpointStore(directory: scratch)
        try store.write(sampleCheckpoint(iteration: 5))
        let tmp = scratch.appendingPathComponent(CheckpointStore.temporaryName(iteration: 10))
        try FileManager.default.createSymbolicLink(atPath: tmp.path, withDestinationPath: "/dev/full")
        XCTAssertThrowsError(try store.write(sampleCheckpoint(iteration: 10))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("No space left on device"), text)
            XCTAssertTrue(text.contains("checkpoint-00000010.ckpt"), text)
            XCTAssertTrue(text.contains("last good checkpoint checkpoint-00000005.ckpt is intact"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path), "temporary removed")
        XCTAssertEqual(store.files().map(\.lastPathComponent), ["checkpoint-00000005.ckpt"])
        XCTAssertEqual(try store.latest().checkpoint, sampleCheckpoint(iteration: 5))
    }

    /// The random init of spec §3.4: per-layer sigmap of normal draws has mean μ (clip aside), is seeded, and every
    /// value lies in [0, 1].
    func testRandomInit() throws {
        let config = try TinyConfig.make()
        let a = InitialScores.random(config: config, mapping: .sigmap, keepRatio: 0.7, seed: 9)
        XCTAssertEqual(a, InitialScores.random(config: config, mapping: .sigmap, keepRatio: 0.7, seed: 9))
        XCTAssertNotEqual(a, InitialScores.random(config: config, mapping: .sigmap, keepRatio: 0.7, seed: 10))
        try a.validate(against: config)
        for v in a.attention + a.mlp {
            XCTAssertTrue(v.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertEqual(v.reduce(0, +) / Double(v.count), 0.7, accuracy: 0.02)
        }
    }

    /// A scores file must fit the model.
    func testScoresFileValidation() throws {
        let config = try TinyConfig.make()
        let good = ScoresFile(modelSHA256: "x", step: 3, keepProbabilities: .uniform(config, value: 0.5))
        let url = scratch.appendingPathComponent("scores.json")
        try good.jsonData().write(to: url)
        XCTAssertEqual(try ScoresFile.read(url, config: config), good)
        var bad = good
        bad.keepProbabilities.mlp[0].removeLast()
        try bad.jsonData().write(to: url)
        XCTAssertThrowsError(try ScoresFile.read(url, config: config)) { XCTAssertTrue("\($0)".contains("does not fit the model"), "\($0)") }
    }
}

import Checkpoints

/// A small uniform config for tests that need shapes only.
enum TinyConfig {
    static func make() throws -> ModelConfig {
        let checkpoint = try CheckpointLoader.load(path: try Shared.url("models/stories260K/stories260K.bin").path)
        return checkpoint.config
    }
}
