import Essentials

/// Everything that can be wrong with a checkpoint file. Every case names the file and, where there is one,
/// the tensor or metadata key.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(file: String)
    case unreadable(file: String, reason: String)
    case truncated(file: String, what: String, needed: Int, available: Int)
    case badMagic(file: String, found: String)
    case unsupportedVersion(file: String, version: Int)
    case unknownValueType(file: String, key: String, type: Int)
    case unknownTensorType(file: String, tensor: String, type: String)
    case missingKey(file: String, key: String)
    case badValue(file: String, key: String, value: String, reason: String)
    case missingTensor(file: String, tensor: String)
    case unexpectedTensor(file: String, tensor: String)
    case shapeMismatch(file: String, tensor: String, expected: String, found: String)
    case unknownArchitecture(file: String, architecture: String)
    case corrupt(file: String, reason: String)

    /// One line naming the file and, where there is one, the tensor or key.
    public var description: String {
        switch self {
        case .fileNotFound(let f): return "\(f): file not found"
        case .unreadable(let f, let r): return "\(f): cannot read: \(r)"
        case .truncated(let f, let w, let n, let a): return "\(f): truncated: \(w) needs \(n) bytes, only \(a) available"
        case .badMagic(let f, let m): return "\(f): not a recognised checkpoint (magic \(m))"
        case .unsupportedVersion(let f, let v): return "\(f): unsupported format version \(v)"
        case .unknownValueType(let f, let k, let t): return "\(f): metadata key '\(k)' has unknown value type \(t)"
        case .unknownTensorType(let f, let t, let ty): return "\(f): tensor '\(t)' has unsupported type \(ty)"
        case .missingKey(let f, let k): return "\(f): missing key '\(k)'"
        case .badValue(let f, let k, let v, let r): return "\(f): key '\(k)' has bad value \(v): \(r)"
        case .missingTensor(let f, let t): return "\(f): missing tensor '\(t)'"
        case .unexpectedTensor(let f, let t): return "\(f): unexpected tensor '\(t)'"
        case .shapeMismatch(let f, let t, let e, let g): return "\(f): tensor '\(t)' has shape \(g), expected \(e)"
        case .unknownArchitecture(let f, let a): return "\(f): unknown architecture '\(a)'"
        case .corrupt(let f, let r): return "\(f): corrupt: \(r)"
        }
    }
}

extension CheckpointError {
    /// The checkpoint form of a mapped-file error: the same case and the same text.
    public init(_ error: MappedFileError) {
        switch error {
        case .fileNotFound(let file): self = .fileNotFound(file: file)
        case .unreadable(let file, let reason): self = .unreadable(file: file, reason: reason)
        case .truncated(let file, let what, let needed, let available):
            self = .truncated(file: file, what: what, needed: needed, available: available)
        }
    }
}

extension MappedFile {
    /// Maps a checkpoint (or any file a reader of this module reads); its errors are `CheckpointError`s.
    public convenience init(checkpoint path: String) throws {
        try self.init(path: path, errors: { CheckpointError($0) })
    }
}
