import Essentials
import Foundation
import Kernels

/// A numeric field of a binary header: where it is, how wide, and what it holds (for the case's description).
struct HeaderField {
    /// Byte offset in the file.
    var offset: Int
    /// Width in bytes (1, 2, 4 or 8).
    var width: Int
    /// What the field is (`tensor count`, `'llama.block_count' value`, `dimension 1 of 'token_embd.weight'`).
    var name: String
}

/// Seeded mutations of a seed file's bytes: byte flips, truncation, edge values in numeric header fields, and
/// structure-aware JSON edits. Every choice comes from `rng`, so a case is reproduced by its seed and index.
struct Mutator {
    /// The values a hostile header uses: 0, 1, 2^31−1, 2^32−1, 2^63−1 (and −1, the all-ones pattern).
    static let edgeValues: [UInt64] = [0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF]

    var rng: Xoshiro256

    init(seed: UInt64) { rng = Xoshiro256(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// XORs `count` random bytes in `data[range]` with a random non-zero byte.
    mutating func flip(_ data: inout Data, count: Int, in range: Range<Int>) -> String {
        let r = range.clamped(to: 0..<data.count)
        guard !r.isEmpty else { return "no flip (empty range)" }
        var where_: [Int] = []
        for _ in 0..<count {
            let i = r.lowerBound + below(r.count)
            data[data.startIndex + i] ^= UInt8(1 + below(255))
            where_.append(i)
        }
        return "flip bytes \(where_.prefix(8).map(String.init).joined(separator: ","))"
    }

    /// Cuts the data at a random point.
    mutating func truncate(_ data: inout Data) -> String {
        let at = below(data.count)
        data = data.prefix(at)
        return "truncate at \(at)"
    }

    /// Writes an edge value (little-endian, truncated to the field's width) into `field`.
    mutating func edge(_ data: inout Data, _ field: HeaderField) -> String {
        let value = pick(Self.edgeValues)
        guard field.offset + field.width <= data.count else { return "no edit (field beyond end)" }
        for b in 0..<field.width {
            data[data.startIndex + field.offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b)))
        }
        return "\(field.name) := \(value) (\(field.width) bytes at \(field.offset))"
    }

    /// One of the generic byte-level mutations (flips in the first `headerBytes`, anywhere, or truncation).
    mutating func bytes(_ data: inout Data, headerBytes: Int) -> String {
        switch below(4) {
        case 0: return flip(&data, count: 1 + below(3), in: 0..<min(headerBytes, data.count))
        case 1: return flip(&data, count: 1 + below(8), in: 0..<data.count)
        case 2: return truncate(&data)
        default: return flip(&data, count: 1, in: 0..<min(headerBytes, data.count))
        }
    }

    // MARK: JSON

    /// A structure-aware edit of a JSON document: a random node (object member, array element or leaf) is
    /// replaced by an edge number, a wrong type, a long array or null, removed, or duplicated. Falls back to a
    /// byte mutation when the data is not JSON.
    mutating func json(_ data: inout Data) -> String {
        guard let root = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return bytes(&data, headerBytes: data.count)
        }
        var seen = 0
        var chosen: [JSONStep] = []
        // Reservoir-sample one path, visiting at most 4,000 nodes so a large tokenizer.json stays cheap.
        func visit(_ node: Any, _ path: [JSONStep]) {
            guard seen < 4000 else { return }
            seen += 1
            if below(seen) == 0 { chosen = path }
            if let o = node as? [String: Any] {
                for k in o.keys.sorted() { visit(o[k]!, path + [.key(k)]) }
            } else if let a = node as? [Any] {
                for (i, e) in a.prefix(200).enumerated() { visit(e, path + [.index(i)]) }
            }
        }
        visit(root, [])
        let replacements: [(String, Any?)] = [
            ("0", 0), ("1", 1), ("2^31-1", Int(Int32.max)), ("2^32-1", Int(UInt32.max)), ("2^63-1", Int.max), ("-1", -1),
            ("1e308", 1e308), ("0.5", 0.5), ("\"x\"", "x"), ("null", NSNull()), ("[]", [Any]()), ("{}", [String: Any]()),
            ("[0 x 100000]", [Int](repeating: 0, count: 100_000)), ("[2^31-1, 2^63-1]", [Int(Int32.max), Int.max]),
            ("removed", nil), ("\"F64\"", "F64"), ("[1, 2^63-1]", [1, Int.max]),
        ]
        let (label, value) = pick(replacements)
        let edited = Self.replacing(root, at: chosen[...], with: value)
        guard let out = try? JSONSerialization.data(withJSONObject: edited ?? NSNull(), options: [.fragmentsAllowed]) else {
            return bytes(&data, headerBytes: data.count)
        }
        data = out
        return "json \(chosen.map(\.description).joined()) := \(label)"
    }

    enum JSONStep: CustomStringConvertible {
        case key(String), index(Int)
        var description: String {
            switch self {
            case .key(let k): return ".\(k.prefix(40))"
            case .index(let i): return "[\(i)]"
            }
        }
    }

    /// `node` with the value at `path` replaced (`nil` removes it).
    static func replacing(_ node: Any, at path: ArraySlice<JSONStep>, with value: Any?) -> Any? {
        guard let step = path.first else { return value }
        switch step {
        case .key(let k):
            guard var o = node as? [String: Any], let child = o[k] else { return node }
            o[k] = replacing(child, at: path.dropFirst(), with: value)
            return o
        case .index(let i):
            guard var a = node as? [Any], i < a.count else { return node }
            if let v = replacing(a[i], at: path.dropFirst(), with: value) { a[i] = v } else { a.remove(at: i) }
            return a
        }
    }
}

/// The numeric fields of a GGUF header (counts, key/string/array lengths, value types, integer values, tensor
/// n_dims, dimensions, types and offsets), found by walking the header the way the format defines it.
enum GGUFFields {
    static func walk(_ d: Data) -> [HeaderField] {
        let bytes = [UInt8](d)
        var fields: [HeaderField] = []
        var o = 0
        func u(_ at: Int, _ w: Int) -> UInt64? {
            guard at >= 0, at + w <= bytes.count else { return nil }
            var v: UInt64 = 0
            for b in 0..<w { v |= UInt64(bytes[at + b]) << (8 * UInt64(b)) }
            return v
        }
        func field(_ w: Int, _ name: String) -> UInt64? {
            guard let v = u(o, w) else { return nil }
            fields.append(HeaderField(offset: o, width: w, name: name))
            o += w
            return v
        }
        func string(_ name: String) -> String? {
            guard let n = field(8, "length of \(name)"), n <= UInt64(bytes.count - o) else { return nil }
            let s = String(decoding: bytes[o..<(o + Int(n))], as: UTF8.self)
            o += Int(n)
            return s
        }
        let sizes: [UInt64: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
        func value(_ type: UInt64, _ key: String, depth: Int) -> Bool {
            if let w = sizes[type] { return field(w, "'\(key)' value") != nil }
            if type == 8 { return string("'\(key)' string") != nil }
            guard type == 9, depth < 3, let et = field(4, "'\(key)' array element type"), let n = field(8, "'\(key)' array length") else { return false }
            if let w = sizes[et] {
                // Only the first few elements are worth listing; skip the rest.
                for i in 0..<Int(min(n, 4)) { _ = field(w, "'\(key)'[\(i)]") }
                o += w * Int(max(0, min(n, UInt64(bytes.count)) - min(n, 4)))
                return o <= bytes.count
            }
            for _ in 0..<min(n, UInt64(bytes.count)) { guard value(et, key, depth: depth + 1) else { return false } }
            return true
        }
        o = 8
        guard let tensors = field(8, "tensor count"), let kvs = field(8, "metadata count") else { return fields }
        for i in 0..<min(kvs, 10_000) {
            guard let key = string("key \(i)"), let type = field(4, "'\(key)' value type"), value(type, key, depth: 0) else { return fields }
        }
        for i in 0..<min(tensors, 10_000) {
            guard let name = string("tensor name \(i)"), let n = field(4, "n_dims of '\(name)'"), n <= 4 else { return fields }
            for k in 0..<Int(n) { _ = field(8, "dimension \(k) of '\(name)'") }
            _ = field(4, "type of '\(name)'")
            _ = field(8, "offset of '\(name)'")
        }
        return fields
    }
}
