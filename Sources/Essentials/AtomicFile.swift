import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing a file so that its final name only ever holds complete contents: everything is written under a hidden
/// temporary name in the destination folder, then renamed into place. The one atomic writer: run files
/// (`write`), `score`'s plans and scores, and the exports (`place`, through Checkpoints' `AtomicOutput`).
public enum AtomicFile {
    /// A failed write; the temporary file has been removed.
    public struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        /// The system's reason (e.g. "No space left on device").
        public let reason: String
        /// The reason.
        public var description: String { reason }
        /// A failure with this reason.
        public init(reason: String) { self.reason = reason }
    }

    /// Writes `data` to `url` via `temporary` (default: `.tmp-<name>` beside it): write, fsync, rename over the
    /// final name, fsync the folder.
    public static func write(_ data: Data, to url: URL, temporary: URL? = nil) throws {
        let tmp = temporary ?? url.deletingLastPathComponent().appendingPathComponent(".tmp-" + url.lastPathComponent)
        // O_TRUNC without O_EXCL: a temporary left by a killed run is simply overwritten.
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Failure(reason: String(cString: strerror(errno))) }
        var failed: String?
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                #if canImport(Glibc)
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                #else
                let n = Darwin.write(fd, raw.baseAddress! + done, raw.count - done)
                #endif
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = String(cString: strerror(errno)); return
                }
                done += n
            }
        }
        if failed == nil, fsync(fd) != 0 { failed = String(cString: strerror(errno)) }
        if close(fd) != 0, failed == nil { failed = String(cString: strerror(errno)) }
        if failed == nil, rename(tmp.path, url.path) != 0 { failed = String(cString: strerror(errno)) }
        if let failed {
            unlink(tmp.path)
            throw Failure(reason: failed)
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// Renames the finished `temporary` (a file or a folder) to `path`. An existing `path` is first moved aside,
    /// put back if the rename fails, and removed once the new one is in place. The caller decides whether
    /// replacing is allowed.
    public static func place(_ temporary: String, at path: String) throws {
        var aside: String? = nil
        if exists(path) {
            let old = temporaryName(for: path, tag: "old")
            if rename(path, old) != 0 {
                throw Failure(reason: "cannot move the old output aside: \(String(cString: strerror(errno)))")
            }
            aside = old
        }
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            if let aside { _ = rename(aside, path) }
            throw Failure(reason: reason)
        }
        if let aside { try? FileManager.default.removeItem(atPath: aside) }
    }

    /// Whether anything (even a dangling link) is at `path`.
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The folder `path` is in ("." for a bare name).
    public static func parentFolder(of path: String) -> String {
        let folder = ((path as NSString).standardizingPath as NSString).deletingLastPathComponent
        return folder.isEmpty ? "." : folder
    }

    /// A hidden, unique name beside `path`: `.<name>.<tag>-<8 hex digits>`.
    public static func temporaryName(for path: String, tag: String) -> String {
        let name = ((path as NSString).standardizingPath as NSString).lastPathComponent
        return (parentFolder(of: path) as NSString).appendingPathComponent(".\(name).\(tag)-\(UUID().uuidString.prefix(8))")
    }
}
