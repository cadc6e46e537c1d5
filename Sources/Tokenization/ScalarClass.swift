/// The character classes the pre-tokenizer patterns use: `\p{L}`, `\p{N}` (Unicode general categories) and
/// `\s` (the White_Space property, as Oniguruma and llama.cpp use it). ASCII is answered from a table.
struct ScalarClass: OptionSet {
    let rawValue: UInt8
    static let letter = ScalarClass(rawValue: 1)
    static let number = ScalarClass(rawValue: 2)
    static let whitespace = ScalarClass(rawValue: 4)

    private static let ascii: [ScalarClass] = (0..<128).map { slow(Unicode.Scalar(UInt8($0))) }

    @inline(__always) static func of(_ s: Unicode.Scalar) -> ScalarClass {
        s.value < 128 ? ascii[Int(s.value)] : slow(s)
    }

    private static func slow(_ s: Unicode.Scalar) -> ScalarClass {
        let p = s.properties
        if p.isWhitespace { return .whitespace }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return []
        }
    }
}

/// GPT-2's reversible byte ⇄ printable-character map (`bytes_to_unicode`): printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100... in order, so byte-level tokens are valid text.
enum ByteLevel {
    /// byte → character.
    static let characters: [Unicode.Scalar] = {
        var keep = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { keep[b] = true }
        for b in 0xA1...0xAC { keep[b] = true }
        for b in 0xAE...0xFF { keep[b] = true }
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if keep[b] { out[b] = Unicode.Scalar(UInt8(b)) } else { out[b] = Unicode.Scalar(256 + n)!; n += 1 }
        }
        return out
    }()

    /// character → byte.
    static let bytes: [Unicode.Scalar: UInt8] = {
        var d: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { d[c] = UInt8(b) }
        return d
    }()

    /// The byte-level text of UTF-8 bytes.
    static func encode<S: Sequence>(_ utf8: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in utf8 { s.append(characters[Int(b)]) }
        return String(s)
    }

    /// The bytes of a byte-level text; characters outside the map contribute their own UTF-8.
    static func decode(_ text: String, into out: inout [UInt8]) {
        for c in text.unicodeScalars {
            if let b = bytes[c] { out.append(b) } else { out.append(contentsOf: String(c).utf8) }
        }
    }
}
