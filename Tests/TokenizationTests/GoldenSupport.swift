import Essentials
import Corpora
import Foundation
import XCTest
import FixtureSupport

/// Shared readers for the tokenizer goldens (fixtures README §1).
enum TokenizerGoldens {
    /// sha256 of the ids written as decimal, comma-joined, ASCII (fixtures README conventions).
    static func idsSHA256(_ ids: [Int]) -> String {
        SHA256.hex(ids: ids)
    }

    /// An eval text: the exact bytes of `models/eval_texts/<name>` as UTF-8, trailing newline included.
    static func evalText(_ name: String) throws -> String {
        String(decoding: try Shared.data("models/eval_texts/\(name)"), as: UTF8.self)
    }

    /// The `tricky` cases of a goldens file.
    static func tricky(_ json: [String: Any]) throws -> [[String: Any]] {
        try json.get("tricky", as: [[String: Any]].self)
    }

    /// First differing index of two id lists, for failure messages.
    static func firstDifference(_ a: [Int], _ b: [Int]) -> String {
        let n = min(a.count, b.count)
        for i in 0..<n where a[i] != b[i] {
            return "first difference at [\(i)]: \(a[i]) vs \(b[i]); counts \(a.count) vs \(b.count); context actual \(Array(a[max(0, i - 3)..<min(a.count, i + 5)])) expected \(Array(b[max(0, i - 3)..<min(b.count, i + 5)]))"
        }
        return "counts \(a.count) vs \(b.count)"
    }

    /// HF `wikitext-2-raw-v1` test rows rebuilt from wiki.test.raw.gz: each line keeps its "\n";
    /// whitespace-only lines become ""; joined with "\n\n" (fixtures README conventions).
    static func wikitextJoined(lines: Int? = nil) throws -> String {
        let bytes = [UInt8](try Shared.data("data/wikitext2/wiki.test.raw.gz"))
        // The file's only whitespace characters are " " and "\n" (checked when the fixture was made), so a
        // byte test matches Python's str.strip() here.
        var rows: [String] = []
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            end = min(end + 1, bytes.count)
            let line = bytes[start..<end]
            rows.append(line.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x09 || $0 == 0x0D } ? "" : String(decoding: line, as: UTF8.self))
            start = end
        }
        if let lines { rows = Array(rows.prefix(lines)) }
        return rows.joined(separator: "\n\n")
    }
}
