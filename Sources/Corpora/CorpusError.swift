/// Errors reading a corpus; each names the file.
public enum CorpusError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(file: String)
    case corrupt(file: String, reason: String)
    case unknownDataset(name: String)
    case tooShort(file: String, tokens: Int, needed: Int)

    public var description: String {
        switch self {
        case .fileNotFound(let f): return "\(f): file not found"
        case .corrupt(let f, let r): return "\(f): corrupt: \(r)"
        case .unknownDataset(let n): return "unknown data set '\(n)' (expected wikitext2, ptb, tinystories, c4 or a file path)"
        case .tooShort(let f, let t, let n): return "\(f): only \(t) tokens, need at least \(n)"
        }
    }
}
