import ArgumentParser
import Corpora
import Essentials
import Foundation
import Pruning
import Transformer

/// Errors about a plan file or a model's identity; each names the option and the file.
enum PlanFileError: Error, CustomStringConvertible {
    /// The plan file is missing, unreadable or not a valid plan.
    case unreadable(option: String, path: String, reason: String)
    /// The plan does not fit the model (shape, ids or hash).
    case mismatch(option: String, path: String, model: String, reason: String)
    /// The output could not be written.
    case unwritable(option: String, path: String, reason: String)
    /// The model path could not be hashed.
    case modelUnreadable(path: String, reason: String)

    var description: String {
        switch self {
        case .unreadable(let option, let path, let reason): return "\(option) \(path): \(reason)"
        case .mismatch(let option, let path, let model, let reason): return "\(option) \(path) does not fit --model \(model): \(reason)"
        case .unwritable(let option, let path, let reason): return "\(option) \(path): cannot write: \(reason)"
        case .modelUnreadable(let path, let reason): return "--model \(path): cannot hash: \(reason)"
        }
    }
}

/// The model's `ModelFingerprint`, a failure reported as `--model`'s.
func modelSHA256(_ path: String) throws -> String {
    do { return try ModelFingerprint.sha256(path: path) } catch let failure as ModelFingerprint.Failure {
        throw PlanFileError.modelUnreadable(path: failure.path, reason: failure.reason)
    }
}

/// `--plan P`: apply a prune plan (from `score` or `prune`) before running the model.
struct PlanOptions: ParsableArguments {
    @Option(help: "Apply this prune plan (plan.json) to the model before running it.") var plan: String?

    /// The model to run: the dense model, or the model with the plan's structure mask after checking that the plan
    /// fits it (layer count, ids in range, parameter count and model sha256).
    func prepared(_ loaded: ModelOptions.Loaded, modelPath: String) throws -> PreparedModel {
        guard let mask = try structureMask(loaded, modelPath: modelPath) else { return loaded.model.dense }
        return try loaded.model.prepared(mask: mask)
    }

    /// The plan's structure mask after the checks of `prepared` (nil without `--plan`).
    func structureMask(_ loaded: ModelOptions.Loaded, modelPath: String) throws -> StructureMask? {
        guard let plan else { return nil }
        let decoded = try Self.read(plan, option: "--plan")
        let hash = try modelSHA256(modelPath)
        do {
            try decoded.validate(against: loaded.model.config, modelSHA256: hash)
            let mask = decoded.structureMask
            try mask.validate(against: loaded.model.config)
            note(String(format: "plan %@: %@, rate %.4f of attention+MLP (%.4f of all parameters)", plan, decoded.method,
                        decoded.achievedRate.attentionMLP, decoded.achievedRate.wholeModel))
            return mask
        } catch let error as PruningError {
            throw PlanFileError.mismatch(option: "--plan", path: plan, model: modelPath, reason: error.description)
        } catch let error as MaskError {
            throw PlanFileError.mismatch(option: "--plan", path: plan, model: modelPath, reason: error.description)
        }
    }

    /// Reads and decodes a plan file, naming the option and the file in every error.
    static func read(_ path: String, option: String) throws -> PrunePlan {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw PlanFileError.unreadable(option: option, path: path, reason: "cannot read the file")
        }
        do { return try PrunePlan.decode(data) } catch let error as PruningError {
            throw PlanFileError.unreadable(option: option, path: path, reason: error.description)
        } catch let DecodingError.keyNotFound(key, _) {
            throw PlanFileError.unreadable(option: option, path: path, reason: "not a prune plan: missing key '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let keyPath = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw PlanFileError.unreadable(option: option, path: path, reason: "not a prune plan: bad value at '\(keyPath)'")
        } catch {
            throw PlanFileError.unreadable(option: option, path: path, reason: "not a prune plan (invalid JSON)")
        }
    }
}

/// Writes `data` to `path` atomically (`AtomicFile.write`), creating its folder first; errors name `option`.
func writeAtomically(_ data: Data, to path: String, option: String) throws {
    let url = URL(fileURLWithPath: path)
    do {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(data, to: url)
    } catch let failure as AtomicFile.Failure {
        throw PlanFileError.unwritable(option: option, path: path, reason: failure.reason)
    } catch {
        throw PlanFileError.unwritable(option: option, path: path, reason: error.localizedDescription)
    }
}
