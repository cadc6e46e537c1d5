/// A JSON value written exactly as built: object members keep their order and are never merged. Token texts
/// need this: Swift `String` equality is canonical equivalence, so a `[String: Any]` (and so
/// `JSONSerialization`) would fold distinct tokens such as U+03AF "ί" and U+1F77 "ί" (both in LLaMA's
/// SentencePiece vocabulary) into one key.
public indirect enum JSONWriter: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([JSONWriter])
    case object([(String, JSONWriter)])

    /// UTF-8 JSON text. `pretty` puts each member of an object, and each element of an array that holds
    /// objects or arrays, on its own line (two-space indent); arrays of scalars stay on one line.
    public func encoded(pretty: Bool) -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out, pretty: pretty, depth: 0)
        if pretty { out.append(0x0A) }
        return out
    }

    private func write(into out: inout [UInt8], pretty: Bool, depth: Int) {
        func newline(_ d: Int) {
            guard pretty else { return }
            out.append(0x0A)
            out.append(contentsOf: [UInt8](repeating: 0x20, count: 2 * d))
        }
        switch self {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .bool(let b): out.append(contentsOf: Array((b ? "true" : "false").utf8))
        case .int(let i): out.append(contentsOf: Array(String(i).utf8))
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            let nested = pretty && items.contains { if case .array = $0 { return true }; if case .object = $0 { return true }; return false }
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")); if pretty && !nested { out.append(0x20) } }
                if nested { newline(depth + 1) }
                item.write(into: &out, pretty: pretty, depth: depth + 1)
            }
            if nested { newline(depth) }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (k, (key, value)) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(0x20) }
                value.write(into: &out, pretty: pretty, depth: depth + 1)
            }
            if !members.isEmpty { newline(depth) }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// RFC 8259 string: `"` and `\` escaped, control characters as `\n`, `\t`, ... or `\u00XX`; everything else
    /// as its UTF-8 bytes.
    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
