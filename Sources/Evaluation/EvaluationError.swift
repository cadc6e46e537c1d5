/// Errors from evaluation: a scorer that returns the wrong shape or non-finite values, or bad arguments.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    /// The scorer returned `got` values where `expected` were needed (`what` names the call).
    case scorerShape(what: String, expected: Int, got: Int)
    /// A token NLL or log-likelihood that is NaN or infinite (window or example index, position).
    case nonFinite(what: String, index: Int, position: Int)
    /// A caller-supplied argument out of range.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .scorerShape(let w, let e, let g): return "\(w): scorer returned \(g) values, expected \(e)"
        case .nonFinite(let w, let i, let p): return "\(w): non-finite value at [\(i)][\(p)]"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        }
    }
}
