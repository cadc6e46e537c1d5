import Corpora
import Essentials
import Foundation
import Kernels

/// Every piece of state a run needs to continue exactly (design.md decision 4): the optimizer state (scores,
/// baseline, schedule position), the iteration counter, the mask generator and the data order.
public struct RunCheckpoint: Codable, Sendable, Equatable {
    /// The format version this tool writes and reads.
    public static let currentFormatVersion = 1

    /// Format version of the file.
    public var formatVersion: Int
    /// sha256 of the model the run belongs to.
    public var modelSHA256: String
    /// Mini-batches consumed (valid and skipped steps).
    public var iteration: Int
    /// Scores, δ, and the number of valid steps (the schedules' position).
    public var state: PolicyGradientState
    /// The generator of the Bernoulli masks.
    public var maskGenerator: Xoshiro256
    /// Position in the calibration stream.
    public var dataOrder: DataOrder
    /// Wall-clock seconds spent so far (informational; not part of the result).
    public var elapsedSeconds: Double
    /// The best hard mask among the held-out evaluations before `iteration` (nil before the first one, and in
    /// checkpoints of older versions): what the run returns unless a later evaluation beats it.
    public var best: BestHeldout?

    /// A checkpoint of the current format version.
    public init(modelSHA256: String, iteration: Int, state: PolicyGradientState, maskGenerator: Xoshiro256,
                dataOrder: DataOrder, elapsedSeconds: Double, best: BestHeldout? = nil) {
        formatVersion = Self.currentFormatVersion
        self.modelSHA256 = modelSHA256
        self.iteration = iteration
        self.state = state
        self.maskGenerator = maskGenerator
        self.dataOrder = dataOrder
        self.elapsedSeconds = elapsedSeconds
        self.best = best
    }
}

/// The keep probabilities whose hard mask scored the lowest held-out NLL so far (issue 11: a run never returns
/// worse than it started, since step 0 is evaluated too).
public struct BestHeldout: Codable, Sendable, Equatable {
    /// Iteration of the evaluation (0 = the starting plan).
    public var iteration: Int
    /// Valid steps done at that evaluation.
    public var step: Int
    /// Held-out mean token NLL of its hard mask.
    public var meanNLL: Double
    /// The keep probabilities then.
    public var keepProbabilities: KeepProbabilities

    /// A best-so-far record.
    public init(iteration: Int, step: Int, meanNLL: Double, keepProbabilities: KeepProbabilities) {
        self.iteration = iteration
        self.step = step
        self.meanNLL = meanNLL
        self.keepProbabilities = keepProbabilities
    }
}

/// The `checkpoint/` folder of a run: `checkpoint-<iteration>.ckpt` files, each written to a temporary file,
/// flushed, and renamed into place, so a kill or a failed write never leaves a half-written checkpoint under a
/// final name. The latest two are kept. A file starts with a line `policyprune-checkpoint 1 sha256=<hex>` over the
/// JSON that follows, so truncation or bit rot is detected and the previous checkpoint used instead.
public struct CheckpointStore: Sendable {
    /// The folder.
    public let directory: URL
    /// How many checkpoints survive a write.
    public static let kept = 2
    static let magic = "policyprune-checkpoint"

    /// The store in `directory` (the run's `checkpoint/`).
    public init(directory: URL) { self.directory = directory }

    /// The file name of the checkpoint after `iteration` mini-batches.
    public static func fileName(iteration: Int) -> String { String(format: "checkpoint-%08d.ckpt", iteration) }

    /// The temporary name a checkpoint is written under before the rename.
    public static func temporaryName(iteration: Int) -> String { ".tmp-" + fileName(iteration: iteration) }

    /// Checkpoint files present, newest (highest iteration) first.
    public func files() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasPrefix("checkpoint-") && $0.hasSuffix(".ckpt") }.sorted(by: >)
            .map { directory.appendingPathComponent($0) }
    }

    /// Serialises a checkpoint: the header line, then JSON.
    public static func encode(_ checkpoint: RunCheckpoint) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(checkpoint)
        var data = Data("\(magic) \(RunCheckpoint.currentFormatVersion) sha256=\(SHA256.hex(body))\n".utf8)
        data.append(body)
        return data
    }

    /// Parses a checkpoint file's bytes, checking the header, the digest and the format version.
    public static func decode(_ data: Data) throws -> RunCheckpoint {
        guard let newline = data.firstIndex(of: 0x0A) else { throw CheckpointFault("no header line") }
        let header = String(decoding: data[data.startIndex..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 3, header[0] == magic, header[2].hasPrefix("sha256=") else { throw CheckpointFault("bad header") }
        guard header[1] == "\(RunCheckpoint.currentFormatVersion)" else {
            throw CheckpointFault("format version \(header[1]), this tool reads \(RunCheckpoint.currentFormatVersion)")
        }
        let body = data[(newline + 1)...]
        let digest = SHA256.hex(Data(body))
        guard "sha256=" + digest == header[2] else { throw CheckpointFault("checksum mismatch (truncated or damaged)") }
        do {
            return try JSONDecoder().decode(RunCheckpoint.self, from: Data(body))
        } catch {
            throw CheckpointFault("undecodable: \(error)")
        }
    }

    /// Writes `checkpoint` atomically, then deletes all but the newest `kept` checkpoints. On any failure the
    /// temporary file is removed and no existing checkpoint is touched.
    /// - Returns: the file written.
    @discardableResult
    public func write(_ checkpoint: RunCheckpoint) throws -> URL {
        let final = directory.appendingPathComponent(Self.fileName(iteration: checkpoint.iteration))
        let temporary = directory.appendingPathComponent(Self.temporaryName(iteration: checkpoint.iteration))
        let lastGood = files().first?.lastPathComponent
        func failure(_ reason: String) -> RunError {
            RunError.checkpointWrite(path: final.path, reason: reason, lastGood: lastGood)
        }
        let data: Data
        do { data = try Self.encode(checkpoint) } catch { throw failure("cannot encode: \(error)") }
        do {
            try AtomicFile.write(data, to: final, temporary: temporary)
        } catch let error as AtomicFile.Failure {
            throw failure(error.reason)
        }
        for old in files().dropFirst(Self.kept) { try? FileManager.default.removeItem(at: old) }
        return final
    }

    /// The newest checkpoint that reads back intact and passes `check`. A damaged one is renamed to
    /// `<name>.corrupt` and reported in `messages`, and the next older one is tried.
    public func latest(check: (RunCheckpoint) throws -> Void = { _ in }) throws -> (checkpoint: RunCheckpoint, file: URL, messages: [String]) {
        var messages: [String] = []
        var reasons: [String] = []
        let candidates = files()
        for (i, file) in candidates.enumerated() {
            do {
                let data = try Data(contentsOf: file)
                let checkpoint = try Self.decode(data)
                try check(checkpoint)
                return (checkpoint, file, messages)
            } catch {
                let reason = "\(file.lastPathComponent): \(error)"
                reasons.append(reason)
                let next = i + 1 < candidates.count ? candidates[i + 1].lastPathComponent : nil
                messages.append("checkpoint \(file.lastPathComponent) is corrupt (\(error)); "
                                + (next.map { "using the previous checkpoint \($0)" } ?? "no earlier checkpoint"))
                try? FileManager.default.moveItem(at: file, to: file.appendingPathExtension("corrupt"))
            }
        }
        throw RunError.noUsableCheckpoint(directory: directory.path, reasons: reasons.isEmpty ? ["none written yet"] : reasons)
    }
}

/// A checkpoint file that does not read back.
struct CheckpointFault: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
