/// Errors reading a corpus or task file; each names the file.
public enum CorpusError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(file: String)
    case unreadable(file: String, reason: String)
    case corrupt(file: String, reason: String)
    /// A JSON-lines record (1-based `line`) that does not parse or lacks a field.
    case badRecord(file: String, line: Int, reason: String)
    case unknownDataset(name: String)
    /// No shared data folder was found; `tried` lists the candidates in order.
    case dataRootNotFound(tried: [String])
    case tooShort(file: String, tokens: Int, needed: Int)
    /// A caller-supplied argument out of range (window length, counts).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .fileNotFound(let f): return "\(f): file not found"
        case .unreadable(let f, let r): return "\(f): cannot read: \(r)"
        case .corrupt(let f, let r): return "\(f): corrupt: \(r)"
        case .badRecord(let f, let l, let r): return "\(f):\(l): \(r)"
        case .unknownDataset(let n): return "unknown data set '\(n)' (expected wikitext2, ptb, tinystories, c4 or a file path)"
        case .dataRootNotFound(let tried):
            return "shared data folder not found (tried \(tried.joined(separator: ", "))); pass --data-root or set POLICYPRUNE_SHARED"
        case .tooShort(let f, let t, let n): return "\(f): only \(t) tokens, need at least \(n)"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        }
    }
}
