import Foundation

/// The identity of a model on disk, recorded in every plan (`model_sha256`) and run (`options.json`) and checked on
/// `--plan` and `--resume`: the sha256 of the file, or for a folder the sha256 of the sorted list of its top-level
/// regular files with their own sha256 (`name sha256\n` lines).
public enum ModelFingerprint {
    /// A model path that cannot be hashed.
    public struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        /// The path given.
        public let path: String
        /// Why (e.g. "no such file or directory").
        public let reason: String
        /// `<path>: cannot hash: <reason>`.
        public var description: String { "\(path): cannot hash: \(reason)" }
    }

    /// The hex digest of the file or folder at `path`.
    public static func sha256(path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(path: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else { return try fileSHA256(path) }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path).sorted() } catch {
            throw Failure(path: path, reason: "cannot list the folder")
        }
        var listing = ""
        for name in names {
            let full = (path as NSString).appendingPathComponent(name)
            var sub: ObjCBool = false
            guard FileManager.default.fileExists(atPath: full, isDirectory: &sub), !sub.boolValue else { continue }
            listing += "\(name) \(try fileSHA256(full))\n"
        }
        return SHA256.hex(listing)
    }

    /// The hex sha256 of one file, streamed in 4 MiB pieces.
    public static func fileSHA256(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw Failure(path: path, reason: "cannot open") }
        defer { try? handle.close() }
        var digest = SHA256()
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 4 << 20) ?? Data() } catch {
                throw Failure(path: path, reason: error.localizedDescription)
            }
            if chunk.isEmpty { break }
            digest.update(chunk)
        }
        return SHA256.hexString(digest.finalize())
    }
}
