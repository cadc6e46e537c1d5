/// Errors of the pruning math: inputs that do not fit the model or options out of range. Every case names what
/// was wrong, so a user can fix the plan, the options or the model.
public enum PruningError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A plan, score set or mask has a different number of layers than the model.
    case layerCount(what: String, expected: Int, found: Int)
    /// A kept id is outside `0..<limit` for its layer.
    case idOutOfRange(what: String, layer: Int, id: Int, limit: Int)
    /// Kept ids must be strictly ascending (sorted, unique).
    case idsNotAscending(what: String, layer: Int, id: Int)
    /// A per-layer vector has the wrong length (e.g. scores for 7 KV groups in a layer with 8).
    case lengthMismatch(what: String, layer: Int, expected: Int, found: Int)
    /// An option or a decoded field holds a value outside its domain.
    case invalidValue(key: String, value: String, reason: String)
    /// A plan written by a newer tool.
    case unsupportedFormatVersion(found: Int, supported: Int)

    public var description: String {
        switch self {
        case .layerCount(let what, let expected, let found):
            return "\(what): \(found) layers, the model has \(expected)"
        case .idOutOfRange(let what, let layer, let id, let limit):
            return "\(what): layer \(layer): id \(id) out of range 0..<\(limit)"
        case .idsNotAscending(let what, let layer, let id):
            return "\(what): layer \(layer): ids must be ascending and unique (at \(id))"
        case .lengthMismatch(let what, let layer, let expected, let found):
            return "\(what): layer \(layer): \(found) entries, expected \(expected)"
        case .invalidValue(let key, let value, let reason):
            return "\(key) = \(value): \(reason)"
        case .unsupportedFormatVersion(let found, let supported):
            return "plan format version \(found) is not supported (this tool reads version \(supported))"
        }
    }
}
