#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What can go wrong reading a mapped file; the owner of the file turns it into its own typed error (`errors`).
public enum MappedFileError: Error, Equatable, Sendable {
    /// No file at the path.
    case fileNotFound(file: String)
    /// The file exists but cannot be opened, is a folder, or cannot be mapped.
    case unreadable(file: String, reason: String)
    /// A read of `needed` bytes (`what`) does not fit: only `available` bytes are left.
    case truncated(file: String, what: String, needed: Int, available: Int)
}

/// A whole file memory-mapped read-only. Every read is bounds-checked against the file size first and throws
/// `truncated` (through `errors`) naming the file and what was being read; nothing is copied until asked for.
public final class MappedFile: @unchecked Sendable {
    // @unchecked Sendable: the mapping is read-only and never changes after init, so sharing it is safe.

    /// The path the file was opened with (used in every error).
    public let path: String
    /// File size in bytes.
    public let count: Int
    /// Start of the mapping (nil for an empty file, which has no mapping).
    public let base: UnsafeRawPointer?
    /// Turns a `MappedFileError` into the error the owner's callers expect (Checkpoints: `CheckpointError`).
    public let errors: @Sendable (MappedFileError) -> Error

    /// Maps `path` read-only. Throws `fileNotFound` / `unreadable`, each passed through `errors`.
    public init(path: String, errors: @escaping @Sendable (MappedFileError) -> Error) throws {
        self.path = path
        self.errors = errors
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw errors(.fileNotFound(file: path)) }
            throw errors(.unreadable(file: path, reason: String(cString: strerror(code))))
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 {
            throw errors(.unreadable(file: path, reason: String(cString: strerror(errno))))
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw errors(.unreadable(file: path, reason: "is a directory"))
        }
        count = Int(info.st_size)
        if count == 0 { base = nil; return }
        guard let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw errors(.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))"))
        }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Drops the resident pages wholly inside `bytes` (a range of this mapping) once their tensor has been converted
    /// to Float32, so the file's bytes do not stay in the process's memory next to the converted weights. Only a
    /// hint: the mapping is private and never written, so a later read simply faults the pages in from the file
    /// again (from the page cache).
    public func releasePages(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + bytes.count) / page * page
        guard end > first, let pointer = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(pointer, end - first, MADV_DONTNEED)
    }

    /// Throws `truncated` unless `length` bytes at `offset` lie inside the file.
    @inline(__always)
    public func check(_ offset: Int, _ length: Int, _ what: @autoclosure () -> String) throws {
        if offset < 0 || length < 0 || offset > count || length > count - offset {
            throw errors(.truncated(file: path, what: what(), needed: length, available: max(0, count - max(0, offset))))
        }
    }

    /// A pointer to `length` validated bytes at `offset`.
    public func bytes(at offset: Int, length: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try check(offset, length, what())
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }

    /// A little-endian integer at `offset`.
    @inline(__always)
    public func integer<T: FixedWidthInteger>(_ type: T.Type, at offset: Int, _ what: @autoclosure () -> String) throws -> T {
        try check(offset, MemoryLayout<T>.size, what())
        return T(littleEndian: base!.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// A little-endian IEEE float at `offset`.
    public func float32(at offset: Int, _ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try integer(UInt32.self, at: offset, what()))
    }

    /// A little-endian IEEE double at `offset`.
    public func float64(at offset: Int, _ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try integer(UInt64.self, at: offset, what()))
    }

    /// `length` bytes at `offset` decoded as UTF-8 (invalid sequences repaired with U+FFFD).
    public func string(at offset: Int, length: Int, _ what: @autoclosure () -> String) throws -> String {
        let raw = try bytes(at: offset, length: length, what())
        return String(decoding: raw, as: UTF8.self)
    }
}

/// A forward-moving cursor over a `MappedFile` for sequential formats (GGUF headers, llama2.c headers).
public struct MappedReader {
    /// The file being read.
    public let file: MappedFile
    /// Byte offset of the next read.
    public var offset: Int

    /// A cursor at `offset`.
    public init(_ file: MappedFile, offset: Int = 0) {
        self.file = file
        self.offset = offset
    }

    /// Reads a little-endian integer and advances.
    @inline(__always)
    public mutating func integer<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let v = try file.integer(T.self, at: offset, what())
        offset += MemoryLayout<T>.size
        return v
    }

    /// Reads a little-endian float and advances.
    public mutating func float32(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try integer(UInt32.self, what()))
    }

    /// Reads a little-endian double and advances.
    public mutating func float64(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try integer(UInt64.self, what()))
    }

    /// Reads `length` bytes as UTF-8 and advances.
    public mutating func string(length: Int, _ what: @autoclosure () -> String) throws -> String {
        let s = try file.string(at: offset, length: length, what())
        offset += length
        return s
    }

    /// Skips `length` validated bytes.
    public mutating func skip(_ length: Int, _ what: @autoclosure () -> String) throws {
        try file.check(offset, length, what())
        offset += length
    }
}
