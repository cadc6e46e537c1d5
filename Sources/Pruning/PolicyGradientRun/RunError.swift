import Essentials

/// Errors of a policy-gradient run directory. Every case names the path or the option.
public enum RunError: Error, CustomStringConvertible, Equatable {
    /// A new run was asked for in a folder that already holds one.
    case runExists(directory: String, model: String)
    /// `--resume` on a folder without `options.json`.
    case notARunDirectory(directory: String, reason: String)
    /// The model given (or found at the recorded path) is not the one the run was made for.
    case modelMismatch(directory: String, recordedPath: String, recordedSHA256: String, givenPath: String, givenSHA256: String)
    /// The tokenised data differ from the run's record (another tokenizer or another data file).
    case dataMismatch(what: String, recorded: String, found: String)
    /// No checkpoint could be read.
    case noUsableCheckpoint(directory: String, reasons: [String])
    /// A checkpoint could not be written; the previous good one is untouched.
    case checkpointWrite(path: String, reason: String, lastGood: String?)
    /// Any other file could not be written.
    case writeFailed(path: String, reason: String)
    /// A file could not be read or parsed.
    case unreadable(path: String, reason: String)
    /// Too little data for the asked batch.
    case notEnoughData(what: String, blocks: Int, needed: Int)
    /// A rank of a multi-rank run built options that differ from rank 0's in these `options.json` keys.
    case ranksDisagree(rank: Int, keys: [String])

    /// One line naming the file or option.
    public var description: String {
        switch self {
        case .runExists(let d, let m):
            return "\(d) already holds a run (of \(m)); continue it with `policyprune prune --resume \(d)` or choose another --run folder"
        case .notARunDirectory(let d, let r):
            return "\(d) is not a policy-gradient run directory: \(r)"
        case .modelMismatch(let d, let rp, let rs, let gp, let gs):
            return "the run in \(d) was made for another model: it records \(rp) (sha256 \(rs.prefix(16))…), but \(gp) has sha256 \(gs.prefix(16))…"
        case .dataMismatch(let w, let r, let f):
            return "\(w) differ from the run's record (sha256 \(r.prefix(16))… recorded, \(f.prefix(16))… now): another tokenizer or data file"
        case .noUsableCheckpoint(let d, let reasons):
            return "\(d): no usable checkpoint (" + reasons.joined(separator: "; ") + ")"
        case .checkpointWrite(let p, let r, let lastGood):
            return "cannot write checkpoint \(p): \(r). " + (lastGood.map { "The last good checkpoint \($0) is intact; free space and resume." } ?? "No earlier checkpoint exists.")
        case .writeFailed(let p, let r):
            return "cannot write \(p): \(r)"
        case .unreadable(let p, let r):
            return "cannot read \(p): \(r)"
        case .notEnoughData(let w, let b, let n):
            return "\(w): \(b) blocks, at least \(n) needed"
        case .ranksDisagree(let rank, let keys):
            return "rank \(rank) built other run options than rank 0 (options.json keys: \(keys.joined(separator: ", "))): every rank needs "
                + "the same model file, data and thread counts (pass POLICYPRUNE_THREADS / OPENBLAS_NUM_THREADS to every rank, e.g. mpirun -x)"
        }
    }
}
