import Essentials
import Foundation

/// Reading text and JSON-lines files (gunzipping `.gz`), with errors that name the file.
public enum TextFiles {
    /// The file's bytes, decompressed when the name ends in `.gz` (a damaged stream is `CorpusError.corrupt`).
    public static func bytes(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else { throw CorpusError.fileNotFound(file: url.path) }
        let raw: Data
        do { raw = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw CorpusError.unreadable(file: url.path, reason: "\(error)")
        }
        guard url.pathExtension == "gz" else { return raw }
        do { return try Gzip.decompress(raw, file: url.path) } catch let error as GzipError {
            throw CorpusError.corrupt(file: error.file, reason: error.reason)
        }
    }

    /// The file decoded as UTF-8; invalid UTF-8 is an error, not replaced.
    public static func string(_ url: URL) throws -> String {
        try utf8(bytes(url), file: url.path)
    }

    /// Decodes UTF-8 strictly.
    public static func utf8(_ data: Data, file: String) throws -> String {
        let decoded = data.withUnsafeBytes { raw in String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) }
        guard let text = decoded else { throw CorpusError.corrupt(file: file, reason: "not valid UTF-8") }
        return text
    }

    /// The lines of a text (split on `"\n"` only, like Python's `str.split("\n")`), each without its `"\n"`.
    /// A final newline does not produce an extra empty line.
    public static func lines(_ text: String) -> [Substring] {
        var result = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") { result.removeLast() }
        return result
    }

    /// The JSON objects of a JSON-lines file, one per non-empty line, in order.
    /// - Parameter limit: stop after this many records.
    public static func jsonLines(_ url: URL, limit: Int? = nil) throws -> [[String: JSONValue]] {
        try numberedJSONLines(url, limit: limit).map(\.record)
    }

    /// `jsonLines` with each record's 1-based line number in the file (blank lines are skipped but counted),
    /// so later field errors can name the right line.
    public static func numberedJSONLines(_ url: URL, limit: Int? = nil) throws -> [(line: Int, record: [String: JSONValue])] {
        let data = try bytes(url)
        return try data.withUnsafeBytes { raw -> [(line: Int, record: [String: JSONValue])] in
            let all = raw.bindMemory(to: UInt8.self)
            var records: [(line: Int, record: [String: JSONValue])] = []
            var lineNumber = 0
            var start = 0
            while start < all.count && records.count < (limit ?? Int.max) {
                var end = start
                while end < all.count && all[end] != 0x0A { end += 1 }
                lineNumber += 1
                let line = UnsafeBufferPointer(rebasing: all[start..<end])
                start = end + 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let value: JSONValue
                do { value = try JSONValue.parse(line) } catch {
                    throw CorpusError.badRecord(file: url.path, line: lineNumber, reason: "\(error)")
                }
                guard case .object(let record) = value else {
                    throw CorpusError.badRecord(file: url.path, line: lineNumber, reason: "not a JSON object")
                }
                records.append((lineNumber, record))
            }
            return records
        }
    }

    /// A string field of a JSON record, or an error naming the file, line and key.
    static func stringField(_ record: [String: JSONValue], _ key: String, file: String, line: Int) throws -> String {
        guard case .string(let value)? = record[key] else {
            throw CorpusError.badRecord(file: file, line: line, reason: "missing or non-string field '\(key)'")
        }
        return value
    }
}

/// Python `str` semantics that the reference loaders rely on (whitespace, `strip`, `capitalize`), on Unicode
/// scalars, so lengths and edits match Python character for character.
public enum PythonString {
    /// Python's `str.isspace()` for one code point: Unicode whitespace (bidi WS/B/S or category Zs),
    /// including the ASCII separators U+001C...U+001F.
    public static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `s.strip()`.
    public static func strip(_ s: Substring) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isWhitespace($0) }),
              let last = scalars.lastIndex(where: { !isWhitespace($0) }) else { return "" }
        return String(scalars[first...last])
    }

    /// `s.strip()`.
    public static func strip(_ s: String) -> String { strip(s[...]) }

    /// `s.rstrip()`.
    public static func rstrip(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let last = scalars.lastIndex(where: { !isWhitespace($0) }) else { return "" }
        return String(scalars[...last])
    }

    /// True when `s.strip()` is empty (`not s.strip()`).
    public static func isBlank(_ s: Substring) -> Bool {
        s.unicodeScalars.allSatisfy(isWhitespace)
    }

    /// `s.capitalize()` (Python 3.8+): the first code point title-cased, the rest lower-cased.
    public static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return first.properties.titlecaseMapping + String(s.unicodeScalars.dropFirst()).lowercased()
    }

    /// Number of code points, Python's `len(s)`.
    public static func length(_ s: String) -> Int { s.unicodeScalars.count }

    /// `s.replace(old, new)`: non-overlapping, left to right, compared code point by code point (no Unicode
    /// canonical equivalence, unlike `String.replacingOccurrences`). Works on UTF-8 bytes: UTF-8 is
    /// self-synchronising, so a byte match of a valid pattern is a code-point match.
    public static func replace(_ s: String, _ old: String, _ new: String) -> String {
        let pattern = Array(old.utf8), source = Array(s.utf8)
        guard !pattern.isEmpty, source.count >= pattern.count else { return s }
        var out: [UInt8] = []
        var i = 0, runStart = 0
        let first = pattern[0], last = source.count - pattern.count
        while i <= last {
            guard source[i] == first else { i += 1; continue }
            var k = 1
            while k < pattern.count && source[i + k] == pattern[k] { k += 1 }
            if k == pattern.count {
                if out.isEmpty { out.reserveCapacity(source.count) }
                out.append(contentsOf: source[runStart..<i])
                out.append(contentsOf: new.utf8)
                i += pattern.count
                runStart = i
            } else {
                i += 1
            }
        }
        let changed = runStart > 0
        if changed { out.append(contentsOf: source[runStart...]) }
        return changed ? String(decoding: out, as: UTF8.self) : s
    }
}
