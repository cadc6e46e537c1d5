import Essentials
import Foundation
import Transformer

/// One line of `log.jsonl` for a training step (spec §6.1 item 1 asks for these diagnostics).
public struct StepLogRecord: Codable, Sendable, Equatable {
    /// Always "step".
    public var event = "step"
    /// 0-based index of the mini-batch.
    public var iteration: Int
    /// Valid steps done after this one (the schedules' position).
    public var step: Int
    /// True when every sample loss was NaN and nothing changed (spec §1.6).
    public var skipped: Bool
    /// L(m_k) per sample; null for NaN.
    public var sampleLosses: [Double?]
    /// Mean of the valid sample losses.
    public var meanLoss: Double?
    /// δ used for the gradient.
    public var baseline: Double?
    /// Learning rates used.
    public var learningRate: PerKind
    /// ρ_t of the projection.
    public var keepRatio: Double
    /// Mean keep probability after the update.
    public var meanScore: PerKind
    /// Fraction of keep probabilities exactly 0 after the update.
    public var fractionAtZero: PerKind
    /// Fraction of keep probabilities exactly 1.
    public var fractionAtOne: PerKind
    /// Kept fraction of the hard mask at ρ_t, per kind, and the kept share of attention+MLP parameters.
    public var hardMaskKept: PerKind
    /// Kept share of attention+MLP parameters under the hard mask.
    public var hardMaskKeptParameters: Double
    /// Euclidean norms of the gradient per kind.
    public var gradientNorm: PerKind
    /// Wall-clock seconds: the whole step, gathering masked weights, forward passes.
    public var stepSeconds: Double
    /// Seconds spent gathering the kept weights (K masks).
    public var gatherSeconds: Double
    /// Seconds spent in the K forward passes.
    public var forwardSeconds: Double
    /// Keep ratio of the attention projection (absent in logs of older versions; `keepRatio` is the MLP's).
    public var attentionKeepRatio: Double?
    /// Epoch of the calibration stream this batch came from (1-based).
    public var epoch: Int?

    enum CodingKeys: String, CodingKey {
        case event, iteration, step, skipped, baseline
        case sampleLosses = "sample_losses", meanLoss = "mean_loss", learningRate = "learning_rate"
        case keepRatio = "keep_ratio", meanScore = "mean_score", fractionAtZero = "fraction_at_0"
        case fractionAtOne = "fraction_at_1", hardMaskKept = "hard_mask_kept"
        case hardMaskKeptParameters = "hard_mask_kept_parameters", gradientNorm = "gradient_norm"
        case stepSeconds = "step_seconds", gatherSeconds = "gather_seconds", forwardSeconds = "forward_seconds"
        case attentionKeepRatio = "attention_keep_ratio", epoch
    }
}

/// One line of `log.jsonl` for a held-out evaluation of the hard mask (C4 validation windows).
public struct HeldoutLogRecord: Codable, Sendable, Equatable {
    /// Always "heldout".
    public var event = "heldout"
    /// Evaluated before mini-batch `iteration` (== steps: after the last one).
    public var iteration: Int
    /// Valid steps done.
    public var step: Int
    /// Keep ratio of the hard mask (MLP; attention in `attentionKeepRatio`).
    public var keepRatio: Double
    /// Keep ratio of the attention hard mask (absent in logs of older versions).
    public var attentionKeepRatio: Double?
    /// Mean token NLL (nats) over all windows of the hard mask (the plan the run would return); perplexity = exp
    /// of it.
    public var meanNLL: Double
    /// Mean token NLL over the same windows of masks sampled from the keep probabilities (what the estimator
    /// optimises), averaged over `sampledMasks` draws from a stream of their own; nil when not measured.
    public var sampledMeanNLL: Double?
    /// Number of sampled masks behind `sampledMeanNLL`.
    public var sampledMasks: Int?
    /// True when this evaluation's hard mask is the best so far (the one the run would return now).
    public var best: Bool?
    /// exp(mean NLL).
    public var perplexity: Double
    /// Windows and tokens predicted.
    public var windows: Int
    /// Kept share of attention+MLP parameters under the hard mask.
    public var keptParameters: Double
    /// Seconds taken.
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case event, iteration, step, perplexity, windows, seconds
        case keepRatio = "keep_ratio", meanNLL = "mean_nll", keptParameters = "kept_parameters"
        case attentionKeepRatio = "attention_keep_ratio", sampledMeanNLL = "sampled_mean_nll", sampledMasks = "sampled_masks", best
    }
}

/// Reading and truncating `log.jsonl`.
enum RunLog {
    /// Just enough of a line to know what it is.
    struct Head: Decodable {
        var event: String
        var iteration: Int
    }

    /// Keeps only lines from before `iteration` (a resumed run rewrites what follows its checkpoint).
    static func truncate(_ url: URL, before iteration: Int) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else { return }
        var kept = Data()
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: true) {
            guard let head = try? JSONDecoder().decode(Head.self, from: Data(line)), head.iteration < iteration else { continue }
            kept.append(contentsOf: line)
            kept.append(0x0A)
        }
        do { try AtomicFile.write(kept, to: url) } catch {
            throw RunError.writeFailed(path: url.path, reason: "\(error)")
        }
    }

    /// All step and held-out records, in file order (unparseable lines skipped).
    static func read(_ url: URL) -> (steps: [StepLogRecord], heldout: [HeldoutLogRecord]) {
        guard let data = FileManager.default.contents(atPath: url.path) else { return ([], []) }
        var steps: [StepLogRecord] = [], heldout: [HeldoutLogRecord] = []
        let decoder = JSONDecoder()
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: true) {
            let d = Data(line)
            guard let head = try? decoder.decode(Head.self, from: d) else { continue }
            if head.event == "step", let r = try? decoder.decode(StepLogRecord.self, from: d) { steps.append(r) }
            if head.event == "heldout", let r = try? decoder.decode(HeldoutLogRecord.self, from: d) { heldout.append(r) }
        }
        return (steps, heldout)
    }
}

/// Appends JSON lines to a file (one `write` per line, so a kill never leaves half a line behind in practice).
final class JSONLinesWriter {
    private let handle: FileHandle
    private let path: String
    private let encoder: JSONEncoder

    init(_ url: URL) throws {
        path = url.path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw RunError.writeFailed(path: path, reason: "cannot create")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw RunError.writeFailed(path: path, reason: "cannot open") }
        handle = h
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
    }

    deinit { try? handle.close() }

    func append<T: Encodable>(_ record: T) throws {
        do {
            var line = try encoder.encode(record)
            line.append(0x0A)
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        } catch {
            throw RunError.writeFailed(path: path, reason: "\(error)")
        }
    }
}
