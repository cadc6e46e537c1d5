import Foundation

/// Normalizers (HF `normalizer`; llama.cpp's SentencePiece whitespace escaping), applied to each plain-text
/// fragment before pre-tokenization.
indirect enum Normalizer: Sendable {
    /// Prepends `text` to a non-empty fragment.
    case prepend(String)
    /// Replaces every occurrence of a literal string.
    case replace(String, String)
    /// Unicode NFC / NFKC / NFD / NFKD.
    case nfc, nfkc, nfd, nfkd
    case lowercase
    case sequence([Normalizer])

    func apply(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .prepend(let p): return s.isEmpty ? s : Array(p.unicodeScalars) + s
        case .replace(let a, let b): return Self.replace(s, Array(a.unicodeScalars), Array(b.unicodeScalars))
        case .nfc: return Array(Self.string(s).precomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkc: return Array(Self.string(s).precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfd: return Array(Self.string(s).decomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkd: return Array(Self.string(s).decomposedStringWithCompatibilityMapping.unicodeScalars)
        case .lowercase: return Array(Self.string(s).lowercased().unicodeScalars)
        case .sequence(let list): return list.reduce(s) { $1.apply($0) }
        }
    }

    private static func string(_ s: [Unicode.Scalar]) -> String { String(String.UnicodeScalarView(s)) }

    private static func replace(_ s: [Unicode.Scalar], _ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard !a.isEmpty else { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if s[i] == a[0] && i + a.count <= s.count && s[i..<(i + a.count)].elementsEqual(a) {
                out.append(contentsOf: b); i += a.count
            } else { out.append(s[i]); i += 1 }
        }
        return out
    }
}

/// When a Metaspace pre-tokenizer prepends its replacement character.
enum PrependScheme: String, Sendable { case always, first, never }

/// One pre-tokenizer step: it refines the current pieces (and may rewrite text, as ByteLevel's prefix
/// space and Metaspace do).
enum PreTokenizerStep: Sendable {
    /// A regex split (Isolated behaviour: matches and the text between them are pieces).
    case pattern(SplitPattern)
    /// HF ByteLevel: optional prefix space, then the GPT-2 pattern when `useRegex`. The byte mapping itself
    /// happens in the model.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// HF Metaspace: spaces become `replacement`, optional prepend, optional split before each replacement.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)

    func apply(_ pieces: [[Unicode.Scalar]], firstFragment: Bool) -> [[Unicode.Scalar]] {
        switch self {
        case .pattern(let p):
            return Self.refine(pieces, p)
        case .byteLevel(let addPrefixSpace, let useRegex):
            let prefixed = addPrefixSpace ? pieces.map { $0.first == " " ? $0 : [" "] + $0 } : pieces
            return useRegex ? Self.refine(prefixed, .gpt2) : prefixed
        case .metaspace(let r, let scheme, let split):
            var out: [[Unicode.Scalar]] = []
            for (k, piece) in pieces.enumerated() {
                var p = piece.map { $0 == " " ? r : $0 }
                let prepend = scheme == .always || (scheme == .first && firstFragment && k == 0)
                if prepend && p.first != r { p.insert(r, at: 0) }
                guard split else { out.append(p); continue }
                var start = 0
                for i in 1..<max(1, p.count) where p[i] == r {
                    out.append(Array(p[start..<i])); start = i
                }
                if start < p.count { out.append(Array(p[start...])) }
            }
            return out
        }
    }

    private static func refine(_ pieces: [[Unicode.Scalar]], _ p: SplitPattern) -> [[Unicode.Scalar]] {
        var out: [[Unicode.Scalar]] = []
        var ends: [Int] = []
        for piece in pieces {
            ends.removeAll(keepingCapacity: true)
            p.split(piece, 0..<piece.count, into: &ends)
            var start = 0
            for e in ends where e > start { out.append(Array(piece[start..<e])); start = e }
        }
        return out
    }
}

/// How ids become text again.
enum DecoderRule: Sendable {
    /// GPT-2 byte-level characters back to bytes.
    case byteLevel
    /// SentencePiece: `▁` → space, `<0xXX>` → byte; `stripLeadingSpace` removes the dummy-prefix space.
    case sentencePiece(stripLeadingSpace: Bool)
}
