/// A token matched in the raw text before normalization (HF `added_tokens`, llama.cpp control and
/// user-defined tokens).
struct AddedToken: Sendable {
    /// The literal text matched.
    let content: [Unicode.Scalar]
    let id: Int
    /// Special (control) tokens are matched only when parsing special tokens; others always.
    let special: Bool
    /// Whitespace before (`lstrip`) / after (`rstrip`) a match is swallowed.
    let lstrip: Bool
    let rstrip: Bool
}

/// A piece of the raw text: plain text to tokenize, or an added token already resolved.
enum Fragment {
    case text(ArraySlice<Unicode.Scalar>)
    case token(Int)
}

/// Splits text on added tokens, leftmost match first and the longest at a position (HF's Aho–Corasick
/// leftmost-longest; llama.cpp's longest-token-first partition gives the same split unless matches overlap).
struct AddedTokenSplitter: Sendable {
    private let byFirstScalar: [Unicode.Scalar: [AddedToken]]

    init(_ tokens: [AddedToken]) {
        var d: [Unicode.Scalar: [AddedToken]] = [:]
        for t in tokens where !t.content.isEmpty { d[t.content[0], default: []].append(t) }
        for k in d.keys { d[k]!.sort { $0.content.count > $1.content.count } }
        byFirstScalar = d
    }

    var isEmpty: Bool { byFirstScalar.isEmpty }

    func split(_ s: [Unicode.Scalar], parseSpecial: Bool) -> [Fragment] {
        if byFirstScalar.isEmpty { return s.isEmpty ? [] : [.text(s[...])] }
        var out: [Fragment] = []
        var textStart = 0
        var pos = 0
        let n = s.count
        while pos < n {
            guard let candidates = byFirstScalar[s[pos]],
                  let match = candidates.first(where: { t in
                      (parseSpecial || !t.special) && pos + t.content.count <= n && s[pos..<(pos + t.content.count)].elementsEqual(t.content)
                  }) else { pos += 1; continue }
            var textEnd = pos
            if match.lstrip { while textEnd > textStart && s[textEnd - 1].properties.isWhitespace { textEnd -= 1 } }
            if textEnd > textStart { out.append(.text(s[textStart..<textEnd])) }
            out.append(.token(match.id))
            pos += match.content.count
            if match.rstrip { while pos < n && s[pos].properties.isWhitespace { pos += 1 } }
            textStart = pos
        }
        if textStart < n { out.append(.text(s[textStart..<n])) }
        return out
    }
}
