import Foundation

/// A parsed JSON value (what the task and corpus files contain).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The string, if this is one.
    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The number, if this is one.
    public var number: Double? { if case .number(let n) = self { return n } else { return nil } }
    /// The elements, if this is an array.
    public var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// The members, if this is an object.
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    /// Member lookup on an object (nil otherwise).
    public subscript(key: String) -> JSONValue? { object?[key] }

    /// Parses one JSON document (RFC 8259) from UTF-8 bytes; throws `JSONValue.SyntaxError` with the byte offset.
    ///
    /// A small parser of our own: Foundation's `JSONSerialization` on Linux drops a U+FEFF at the start of a string
    /// value (C4 validation document 414 starts with one), and `JSONDecoder` into an enum is ~20x slower.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
        var parser = Parser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("trailing characters") }
        return value
    }

    /// Parses one JSON document from `data`.
    public static func parse(_ data: Data) throws -> JSONValue {
        try data.withUnsafeBytes { try parse($0.bindMemory(to: UInt8.self)) }
    }

    /// Where and why parsing failed.
    public struct SyntaxError: Error, CustomStringConvertible {
        /// Byte offset in the input.
        public let offset: Int
        /// What was wrong.
        public let reason: String
        public var description: String { "JSON syntax error at byte \(offset): \(reason)" }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func error(_ reason: String) -> SyntaxError { SyntaxError(offset: position, reason: reason) }

        mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw error("nesting too deep") }
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var members: [String: JSONValue] = [:]
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    let key = try string()
                    skipWhitespace()
                    try expect(":")
                    members[key] = try value(depth: depth + 1)
                    skipWhitespace()
                    if try separatorOrEnd("}") { return .object(members) }
                }
            case UInt8(ascii: "["):
                position += 1
                var elements: [JSONValue] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(elements) }
                while true {
                    elements.append(try value(depth: depth + 1))
                    skipWhitespace()
                    if try separatorOrEnd("]") { return .array(elements) }
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return .number(try number())
            }
        }

        /// After a value inside a container: `,` (continue) or the closing bracket (done).
        mutating func separatorOrEnd(_ close: Unicode.Scalar) throws -> Bool {
            guard position < bytes.count else { throw error("unexpected end of input") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; return false }
            if bytes[position] == UInt8(ascii: close) { position += 1; return true }
            throw error("expected ',' or '\(close)'")
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            guard position < bytes.count, bytes[position] == UInt8(ascii: c) else { throw error("expected '\(c)'") }
            position += 1
        }

        mutating func literal(_ word: String) throws {
            for c in word.utf8 {
                guard position < bytes.count, bytes[position] == c else { throw error("invalid literal") }
                position += 1
            }
        }

        mutating func number() throws -> Double {
            let start = position
            while position < bytes.count, "+-0123456789.eE".utf8.contains(bytes[position]) { position += 1 }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard !text.isEmpty, let v = Double(text) else { position = start; throw error("invalid value") }
            return v
        }

        /// A string starting at the opening quote. Raw bytes are copied; escapes decoded; the result is validated
        /// as UTF-8.
        mutating func string() throws -> String {
            position += 1
            var out: [UInt8] = []
            var runStart = position
            while true {
                guard position < bytes.count else { throw error("unterminated string") }
                let b = bytes[position]
                if b == UInt8(ascii: "\"") { break }
                if b < 0x20 { throw error("control character in string") }
                if b != UInt8(ascii: "\\") { position += 1; continue }
                out.append(contentsOf: bytes[runStart..<position])
                position += 1
                guard position < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {  // high surrogate: a low one must follow
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate")
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("unpaired surrogate")
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
                default: throw error("invalid escape")
                }
                runStart = position
            }
            out.append(contentsOf: bytes[runStart..<position])
            position += 1
            guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[position]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw error("invalid \\u escape")
                }
                v = v << 4 | d
                position += 1
            }
            return v
        }
    }
}
