/// The pre-tokenizer regexes written as matchers over Unicode scalars (Swift `Regex` is far too slow for
/// whole corpora). Each follows llama.cpp's hand-written equivalents (`unicode_regex_split_custom_gpt2` /
/// `_llama3`), which match the regex semantics; every character of the input ends up in exactly one piece.
enum SplitPattern: Equatable, Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2, SmolLM).
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (LLaMA-3); with `maxDigits` 1 it is Qwen2's pattern (`\p{N}` instead of `\p{N}{1,3}`).
    case llama3(maxDigits: Int)
    /// `\p{N}` (each number character alone) or `\p{N}+`: the matches and the text between them.
    case digits(individual: Bool)
    /// `[\p{P}\$\+<=>\^~\|]+` (first step of llama.cpp's BPE "default" pre-tokenizer).
    case punctuation
    /// `[0-9][0-9][0-9]` (last step of llama.cpp's BPE "default" pre-tokenizer).
    case asciiDigitTriples

    /// The regex this matcher implements, as tokenizer.json `Split` and llama.cpp write it.
    var regex: String {
        switch self {
        case .gpt2: return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3(let maxDigits):
            let digits = maxDigits == 1 ? #"\p{N}"# : #"\p{N}{1,"# + "\(maxDigits)}"
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"# + digits + #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .digits(let individual): return individual ? #"\p{N}"# : #"\p{N}+"#
        case .punctuation: return #"[\p{P}\$\+<=>\^~\|]+"#
        case .asciiDigitTriples: return "[0-9][0-9][0-9]"
        }
    }

    /// The known regex sources (as written in tokenizer.json files and llama.cpp) → matcher.
    static func recognise(_ regex: String) -> SplitPattern? {
        // llama.cpp's "default" BPE pre-tokenizer writes GPT-2's without the final `|\s+`, which changes no split:
        // the whitespace that `\s+` would take is then text between matches, a piece of its own all the same.
        let gpt2NoTail = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#
        if regex == gpt2NoTail { return .gpt2 }
        let known: [SplitPattern] = [.gpt2, .llama3(maxDigits: 3), .llama3(maxDigits: 1), .digits(individual: true),
                                     .digits(individual: false), .punctuation, .asciiDigitTriples]
        return known.first { $0.regex == regex }
    }

    /// Appends the end offsets (exclusive) of the pieces of `s[range]` to `ends`.
    func split(_ s: [Unicode.Scalar], _ range: Range<Int>, into ends: inout [Int]) {
        switch self {
        case .gpt2: Self.gpt2(s, range, &ends)
        case .llama3(let maxDigits): Self.llama3(s, range, maxDigits, &ends)
        case .digits(let individual): Self.digits(s, range, individual, &ends)
        case .punctuation: Self.runs(s, range, &ends) { Self.isPunctuation($0) }
        case .asciiDigitTriples:
            var pos = range.lowerBound
            while pos < range.upperBound {
                if pos + 3 <= range.upperBound && s[pos..<(pos + 3)].allSatisfy({ $0.value >= 48 && $0.value <= 57 }) {
                    pos += 3
                } else {
                    pos += 1
                    while pos < range.upperBound && !(pos + 3 <= range.upperBound && s[pos..<(pos + 3)].allSatisfy({ $0.value >= 48 && $0.value <= 57 })) { pos += 1 }
                }
                ends.append(pos)
            }
        }
    }

    private static func gpt2(_ s: [Unicode.Scalar], _ range: Range<Int>, _ ends: inout [Int]) {
        let end = range.upperBound
        @inline(__always) func cls(_ i: Int) -> ScalarClass? { i < end ? ScalarClass.of(s[i]) : nil }
        @inline(__always) func isOther(_ c: ScalarClass?) -> Bool { c.map { $0.isEmpty } ?? false }
        var pos = range.lowerBound
        while pos < end {
            let c = s[pos]
            if c == "'" && pos + 1 < end {
                let n1 = s[pos + 1]
                if n1 == "s" || n1 == "t" || n1 == "m" || n1 == "d" { pos += 2; ends.append(pos); continue }
                if pos + 2 < end {
                    let n2 = s[pos + 2]
                    if (n1 == "r" && n2 == "e") || (n1 == "v" && n2 == "e") || (n1 == "l" && n2 == "l") {
                        pos += 3; ends.append(pos); continue
                    }
                }
            }
            let head = c == " " ? cls(pos + 1) : cls(pos)
            if let h = head, h.contains(.letter) || h.contains(.number) {
                let want: ScalarClass = h.contains(.letter) ? .letter : .number
                if c == " " { pos += 1 }
                while let k = cls(pos), k.contains(want) { pos += 1 }
                ends.append(pos); continue
            }
            if isOther(head) {
                if c == " " { pos += 1 }
                while isOther(cls(pos)) { pos += 1 }
                ends.append(pos); continue
            }
            var spaces = 0
            while let k = cls(pos + spaces), k.contains(.whitespace) { spaces += 1 }
            if spaces > 1 && pos + spaces < end { pos += spaces - 1; ends.append(pos); continue }  // \s+(?!\S)
            if spaces > 0 { pos += spaces; ends.append(pos); continue }                             // \s+
            pos += 1; ends.append(pos)
        }
    }

    private static func llama3(_ s: [Unicode.Scalar], _ range: Range<Int>, _ maxDigits: Int, _ ends: inout [Int]) {
        let end = range.upperBound
        @inline(__always) func cls(_ i: Int) -> ScalarClass? { i < end ? ScalarClass.of(s[i]) : nil }
        @inline(__always) func isOther(_ c: ScalarClass?) -> Bool { c.map { $0.isEmpty } ?? false }
        @inline(__always) func lower(_ i: Int) -> Unicode.Scalar {
            let v = s[i].value
            return v >= 65 && v <= 90 ? Unicode.Scalar(v + 32)! : s[i]
        }
        var pos = range.lowerBound
        while pos < end {
            let c = s[pos]
            let k0 = ScalarClass.of(c)
            if c == "'" && pos + 1 < end {
                let n1 = lower(pos + 1)
                if n1 == "s" || n1 == "t" || n1 == "m" || n1 == "d" { pos += 2; ends.append(pos); continue }
                if pos + 2 < end {
                    let n2 = lower(pos + 2)
                    if (n1 == "r" && n2 == "e") || (n1 == "v" && n2 == "e") || (n1 == "l" && n2 == "l") {
                        pos += 3; ends.append(pos); continue
                    }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == "\r" || c == "\n" || k0.contains(.number)) {
                if k0.contains(.letter) || (cls(pos + 1)?.contains(.letter) ?? false) {
                    pos += 1
                    while let k = cls(pos), k.contains(.letter) { pos += 1 }
                    ends.append(pos); continue
                }
            }
            // \p{N}{1,maxDigits}
            if k0.contains(.number) {
                var run = 0
                while let k = cls(pos), k.contains(.number) {
                    pos += 1; run += 1
                    if run == maxDigits { ends.append(pos); run = 0 }
                }
                if run > 0 { ends.append(pos) }
                continue
            }
            // " ?[^\s\p{L}\p{N}]+[\r\n]*"
            let head = c == " " ? cls(pos + 1) : k0
            if isOther(head) {
                if c == " " { pos += 1 }
                while isOther(cls(pos)) { pos += 1 }
                while pos < end && (s[pos] == "\r" || s[pos] == "\n") { pos += 1 }
                ends.append(pos); continue
            }
            var spaces = 0
            var afterLastNewline = 0
            while let k = cls(pos + spaces), k.contains(.whitespace) {
                let w = s[pos + spaces]
                if w == "\r" || w == "\n" { afterLastNewline = pos + spaces + 1 }
                spaces += 1
            }
            if afterLastNewline > 0 { pos = afterLastNewline; ends.append(pos); continue }           // \s*[\r\n]+
            if spaces > 1 && pos + spaces < end { pos += spaces - 1; ends.append(pos); continue }  // \s+(?!\S)
            if spaces > 0 { pos += spaces; ends.append(pos); continue }                             // \s+
            pos += 1; ends.append(pos)
        }
    }

    private static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "$", "+", "<", "=", ">", "^", "~", "|": return true
        default:
            switch c.properties.generalCategory {
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                 .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
            default: return false
            }
        }
    }

    /// Maximal runs of characters in the class, and the text between them.
    private static func runs(_ s: [Unicode.Scalar], _ range: Range<Int>, _ ends: inout [Int], _ inClass: (Unicode.Scalar) -> Bool) {
        var pos = range.lowerBound
        while pos < range.upperBound {
            let want = inClass(s[pos])
            pos += 1
            while pos < range.upperBound && inClass(s[pos]) == want { pos += 1 }
            ends.append(pos)
        }
    }

    private static func digits(_ s: [Unicode.Scalar], _ range: Range<Int>, _ individual: Bool, _ ends: inout [Int]) {
        var pos = range.lowerBound
        let end = range.upperBound
        while pos < end {
            if ScalarClass.of(s[pos]).contains(.number) {
                pos += 1
                if !individual { while pos < end && ScalarClass.of(s[pos]).contains(.number) { pos += 1 } }
            } else {
                while pos < end && !ScalarClass.of(s[pos]).contains(.number) { pos += 1 }
            }
            ends.append(pos)
        }
    }
}
