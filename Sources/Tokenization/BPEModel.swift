import Foundation

/// The BPE model shared by GGUF (`llama` and `gpt2`) and Hugging Face tokenizers: a pre-token's initial symbols
/// (its bytes through the byte-level map, or its characters with byte fallback) merged by `PairMerge`,
/// by merge rank (lowest first) or by token score (highest first), leftmost on ties.
final class BPEModel: @unchecked Sendable {
    /// How a pre-token becomes initial symbols.
    enum Alphabet {
        /// GPT-2 byte level: every UTF-8 byte is the token of its byte-level character.
        case byteLevel
        /// One symbol per Unicode scalar; a scalar that is not a token becomes its `<0xXX>` byte tokens when
        /// `byteFallback` (else the unknown token, or nothing without one).
        case characters(byteFallback: Bool)
    }

    let alphabet: Alphabet
    /// Token text as stored (byte-level or `▁` text).
    let tokens: [String]
    /// text → id (the last id wins for duplicate texts, as llama.cpp's `token_to_id`).
    let ids: [String: Int32]
    let unknownID: Int32?
    /// Whether a pre-token that is itself a token is emitted whole (HF `ignore_merges`, llama.cpp LLaMA-3).
    let ignoreMerges: Bool
    /// HF `fuse_unk`: consecutive unknown tokens become one.
    let fuseUnknown: Bool
    private let rules: Rules
    private let byteTokens: [Int32]        // byte → its byte-level token (byteLevel) or `<0xXX>` token (fallback); -1 if absent
    private let scalarIDs: [Unicode.Scalar: Int32]
    private let cache = Cache()

    struct Rules: MergeRules {
        /// `left << 32 | right` → (priority, merged id).
        let pairs: [UInt64: (Float, Int32)]
        @inline(__always) func merge(_ left: Int32, _ right: Int32) -> (priority: Float, merged: Int32)? {
            guard left >= 0, right >= 0, let m = pairs[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] else { return nil }
            return (m.0, m.1)
        }
    }

    /// Per-pre-token results, so each distinct word is merged once.
    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var words: [[UInt8]: [Int32]] = [:]
    }

    /// Merge source: ranked pairs of token texts, or token scores (SentencePiece BPE).
    enum Merges {
        case ranked([(String, String)])
        case scores([Float])
    }

    init(tokens: [String], merges: Merges, alphabet: Alphabet, unknownID: Int?, ignoreMerges: Bool, fuseUnknown: Bool) {
        self.tokens = tokens
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }
        self.ids = ids
        self.alphabet = alphabet
        self.unknownID = unknownID.map(Int32.init)
        self.ignoreMerges = ignoreMerges
        self.fuseUnknown = fuseUnknown
        var pairs: [UInt64: (Float, Int32)] = [:]
        @inline(__always) func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        switch merges {
        case .ranked(let list):
            pairs.reserveCapacity(list.count)
            for (rank, (a, b)) in list.enumerated() {
                guard let l = ids[a], let r = ids[b], let m = ids[a + b] else { continue }
                let k = key(l, r)
                if pairs[k] == nil { pairs[k] = (-Float(rank), m) }  // the first (lowest) rank of a pair counts
            }
        case .scores(let scores):
            for (text, m) in ids {
                let scalars = Array(text.unicodeScalars)
                guard scalars.count >= 2 else { continue }
                for k in 1..<scalars.count {
                    var left = String.UnicodeScalarView(), right = String.UnicodeScalarView()
                    left.append(contentsOf: scalars[..<k]); right.append(contentsOf: scalars[k...])
                    guard let l = ids[String(left)], let r = ids[String(right)] else { continue }
                    pairs[key(l, r)] = (Int(m) < scores.count ? scores[Int(m)] : 0, m)
                }
            }
        }
        rules = Rules(pairs: pairs)
        var byteTokens = [Int32](repeating: -1, count: 256)
        var scalarIDs: [Unicode.Scalar: Int32] = [:]
        switch alphabet {
        case .byteLevel:
            for b in 0..<256 { byteTokens[b] = ids[String(ByteLevel.characters[b])] ?? -1 }
        case .characters:
            for b in 0..<256 { byteTokens[b] = ids[String(format: "<0x%02X>", b)] ?? -1 }
            for (text, id) in ids {
                var it = text.unicodeScalars.makeIterator()
                if let s = it.next(), it.next() == nil { scalarIDs[s] = id }
            }
        }
        self.byteTokens = byteTokens
        self.scalarIDs = scalarIDs
    }

    /// Appends the tokens of one pre-token.
    func encode(_ piece: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        if piece.isEmpty { return }
        var utf8: [UInt8] = []
        utf8.reserveCapacity(piece.count)
        for s in piece { appendUTF8(s, &utf8) }
        cache.lock.lock()
        let hit = cache.words[utf8]
        cache.lock.unlock()
        if let hit { for t in hit { out.append(Int(t)) }; return }
        let result = merge(piece, utf8)
        cache.lock.lock()
        if cache.words.count > 1_000_000 { cache.words.removeAll(keepingCapacity: true) }
        cache.words[utf8] = result
        cache.lock.unlock()
        for t in result { out.append(Int(t)) }
    }

    private func merge(_ piece: ArraySlice<Unicode.Scalar>, _ utf8: [UInt8]) -> [Int32] {
        if ignoreMerges {
            let whole: String
            switch alphabet {
            case .byteLevel: whole = ByteLevel.encode(utf8)
            case .characters: whole = String(String.UnicodeScalarView(piece))
            }
            if let id = ids[whole] { return [id] }
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(utf8.count)
        switch alphabet {
        case .byteLevel:
            for b in utf8 {
                let t = byteTokens[Int(b)]
                if t >= 0 { symbols.append(t) } else if let u = unknownID { symbols.append(u) }
            }
        case .characters(let byteFallback):
            var scratch: [UInt8] = []
            for s in piece {
                if let id = scalarIDs[s] { symbols.append(id); continue }
                scratch.removeAll(keepingCapacity: true)
                appendUTF8(s, &scratch)
                if byteFallback, scratch.allSatisfy({ byteTokens[Int($0)] >= 0 }) {
                    for b in scratch { symbols.append(byteTokens[Int(b)]) }
                } else if let u = unknownID {
                    if !(fuseUnknown && symbols.last == u) { symbols.append(u) }
                }
            }
        }
        PairMerge.run(&symbols, rules: rules)
        return symbols
    }

    @inline(__always) private func appendUTF8(_ s: Unicode.Scalar, _ out: inout [UInt8]) {
        let v = s.value
        switch v {
        case 0..<0x80: out.append(UInt8(v))
        case 0x80..<0x800: out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }
}
