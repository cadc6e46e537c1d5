import Essentials
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong while writing a checkpoint. Every case names the path.
public enum CheckpointWriteError: Error, CustomStringConvertible, Equatable {
    /// The output path exists and overwriting was not asked for.
    case outputExists(path: String)
    /// The destination cannot be written (missing or read-only folder, a file where a folder is needed, ...).
    case unwritable(path: String, reason: String)
    /// A storage type the format cannot hold.
    case unsupportedDType(format: String, dtype: String)
    /// The model cannot be expressed in the format.
    case unsupportedModel(format: String, reason: String)

    /// One line naming the path or the format.
    public var description: String {
        switch self {
        case .outputExists(let p): return "\(p): already exists (pass --force to replace it)"
        case .unwritable(let p, let r): return "\(p): cannot write: \(r)"
        case .unsupportedDType(let f, let d): return "\(f) cannot store dtype \(d)"
        case .unsupportedModel(let f, let r): return "\(f): \(r)"
        }
    }
}

/// POSIX `write` (the method below shadows the name).
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, pointer, count)
    #else
    return Darwin.write(fd, pointer, count)
    #endif
}

/// A file being written with POSIX calls, so every failure is a typed error naming the path.
final class OutputFile {
    let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// Bytes written so far (including the buffer).
    private(set) var offset = 0

    /// Creates `path` exclusively (it must not exist).
    init(creating path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        if fd < 0 { throw CheckpointWriteError.unwritable(path: path, reason: String(cString: strerror(errno))) }
        buffer.reserveCapacity(1 << 20)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Appends bytes (buffered; flushed in 1 MiB pieces).
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        offset += bytes.count
        if buffer.count + bytes.count <= 1 << 20 {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        try writeAll(bytes)
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Appends zero bytes until `offset` is a multiple of `alignment`.
    func pad(to alignment: Int) throws {
        let n = (alignment - offset % alignment) % alignment
        if n > 0 { try write([UInt8](repeating: 0, count: n)) }
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointWriteError.unwritable(path: path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
    }

    func flush() throws {
        if buffer.isEmpty { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs to disk and closes.
    func finish() throws {
        try flush()
        if fsync(fd) != 0 { throw CheckpointWriteError.unwritable(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
        let rc = close(fd)
        fd = -1
        if rc != 0 { throw CheckpointWriteError.unwritable(path: path, reason: "close: \(String(cString: strerror(errno)))") }
    }
}

/// Atomic placement of an export: everything is written under a hidden temporary name in the destination folder,
/// then renamed into place (`AtomicFile.place`), so a failure or a kill never leaves a partial file at the
/// destination. Adds the export's rules: the folder must exist, an existing output needs `force`, errors are
/// `CheckpointWriteError`s, and a leftover temporary is removed on failure.
public enum AtomicOutput {
    /// Checks that `path` may be written: its folder exists and is a folder, and `path` is absent unless `force`.
    public static func checkDestination(_ path: String, force: Bool) throws {
        let folder = parentFolder(of: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw CheckpointWriteError.unwritable(path: path, reason: "folder \(folder) does not exist")
        }
        guard isDirectory.boolValue else { throw CheckpointWriteError.unwritable(path: path, reason: "\(folder) is not a folder") }
        if !force && exists(path) { throw CheckpointWriteError.outputExists(path: path) }
    }

    /// Writes one file at `path` through `body`, which receives the temporary path to create.
    public static func writeFile(_ path: String, force: Bool, _ body: (String) throws -> Void) throws {
        try checkDestination(path, force: force)
        let temporary = temporaryName(for: path, tag: "tmp")
        do {
            try body(temporary)
            try place(temporary, at: path, force: force)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Assembles a folder at `path`: `body` fills an empty temporary folder, which is then renamed into place.
    public static func writeDirectory(_ path: String, force: Bool, _ body: (String) throws -> Void) throws {
        try checkDestination(path, force: force)
        let temporary = temporaryName(for: path, tag: "tmp")
        if mkdir(temporary, 0o755) != 0 {
            throw CheckpointWriteError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        do {
            try body(temporary)
            try place(temporary, at: path, force: force)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    /// Writes `data` to `path` (inside a folder being assembled; not atomic by itself).
    static func writeData(_ data: Data, to path: String) throws {
        let file = try OutputFile(creating: path)
        try data.withUnsafeBytes { try file.write($0) }
        try file.finish()
    }

    /// Renames `temporary` to `path` (`AtomicFile.place`); an existing `path` only with `force`.
    private static func place(_ temporary: String, at path: String, force: Bool) throws {
        if !force && AtomicFile.exists(path) { throw CheckpointWriteError.outputExists(path: path) }
        do { try AtomicFile.place(temporary, at: path) } catch let error as AtomicFile.Failure {
            throw CheckpointWriteError.unwritable(path: path, reason: error.reason)
        }
    }

    private static func exists(_ path: String) -> Bool { AtomicFile.exists(path) }

    static func parentFolder(of path: String) -> String { AtomicFile.parentFolder(of: path) }

    private static func temporaryName(for path: String, tag: String) -> String { AtomicFile.temporaryName(for: path, tag: tag) }
}
