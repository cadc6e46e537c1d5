import Foundation

/// llama2.c `tokenizer.bin` (e.g. stories260K `tok512.bin`) with `run.c` semantics exactly:
/// BOS (1) prepended, a dummy-prefix `" "` token only for non-empty text, one lookup per UTF-8 character
/// (run.c's 4-byte / continuation-byte rule), unknown characters as byte tokens `byte + 3`, then repeated
/// merging of the adjacent pair whose concatenated piece has the highest score (leftmost on ties; the scan
/// includes BOS). Decoding strips the leading space of a piece that follows BOS and turns `<0xXX>` into bytes.
/// run.c has no special-token parsing, so `parseSpecial` is ignored.
public struct Llama2cTokenizer: Tokenizer {
    /// run.c's fixed ids.
    public static let bos = 1, eos = 2, unknown = 0

    /// Raw piece bytes per id.
    let pieces: [[UInt8]]
    /// Merge score per id (float32 as stored).
    let scores: [Float]
    /// The longest piece in bytes, as stored in the header.
    public let maxTokenLength: Int
    /// Piece bytes (≤ 4, packed with the length) → id, for the per-character lookup.
    private let characterIDs: [UInt64: Int32]
    /// `left << 32 | right` → merged id, for every pair whose concatenated piece is in the vocabulary.
    private let pairs: [UInt64: Int32]
    /// The same as a dense `[left * count + right]` table (-1 = no merge) for small vocabularies such as tok512.
    private let densePairs: [Int32]?
    private let dummyPrefix: Int32?

    public var vocabularySize: Int { pieces.count }
    public var bosTokenID: Int? { Self.bos }
    public var eosTokenID: Int? { Self.eos }
    public var unknownTokenID: Int? { Self.unknown }
    public var addsBOS: Bool { true }
    public var addsEOS: Bool { false }
    public var specialTokenIDs: [Int] { [Self.unknown, Self.bos, Self.eos].filter { $0 < pieces.count } }

    /// Reads `tokenizer.bin`: int32 max_token_length, then per token float32 score, int32 length, bytes.
    /// The file does not store the vocabulary size; with `vocabularySize` nil every record up to the end of
    /// the file is read, otherwise exactly that many (run.c takes it from the checkpoint header).
    public init(path: String, vocabularySize: Int? = nil) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.unreadable(file: path, reason: "cannot open")
        }
        let bytes = [UInt8](data)
        func int32(at o: Int, _ field: String) throws -> Int32 {
            guard o + 4 <= bytes.count else {
                throw TokenizerError.truncated(file: path, field: field, offset: o, needed: 4, available: bytes.count - o)
            }
            return Int32(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
        }
        let maxTokenLength = Int(try int32(at: 0, "max_token_length"))
        var offset = 4
        var pieces: [[UInt8]] = []
        var scores: [Float] = []
        while vocabularySize.map({ pieces.count < $0 }) ?? (offset < bytes.count) {
            let id = pieces.count
            let score = Float(bitPattern: UInt32(bitPattern: try int32(at: offset, "score of token \(id)")))
            let length = Int(try int32(at: offset + 4, "length of token \(id)"))
            offset += 8
            guard length >= 0 else {
                throw TokenizerError.badValue(file: path, field: "length of token \(id)", value: "\(length)", reason: "negative")
            }
            guard offset + length <= bytes.count else {
                throw TokenizerError.truncated(file: path, field: "bytes of token \(id)", offset: offset, needed: length, available: bytes.count - offset)
            }
            pieces.append(Array(bytes[offset..<(offset + length)]))
            scores.append(score)
            offset += length
        }
        guard !pieces.isEmpty else {
            throw TokenizerError.badValue(file: path, field: "vocabulary", value: "0 tokens", reason: "empty")
        }
        self.init(pieces: pieces, scores: scores, maxTokenLength: maxTokenLength)
    }

    /// A tokenizer from pieces and scores already in memory.
    init(pieces: [[UInt8]], scores: [Float], maxTokenLength: Int) {
        self.pieces = pieces
        self.scores = scores
        self.maxTokenLength = maxTokenLength
        var idsByPiece: [[UInt8]: [Int32]] = [:]
        for (i, p) in pieces.enumerated() { idsByPiece[p, default: []].append(Int32(i)) }
        var characterIDs: [UInt64: Int32] = [:]
        for (p, ids) in idsByPiece where p.count <= 4 { characterIDs[Self.pack(p[...])] = ids[0] }
        self.characterIDs = characterIDs
        // run.c's bsearch finds one id per piece; with duplicate pieces we take the lowest.
        var pairs: [UInt64: Int32] = [:]
        for (p, ids) in idsByPiece where p.count >= 2 {
            let merged = ids[0]
            for k in 1..<p.count {
                guard let lefts = idsByPiece[Array(p[..<k])], let rights = idsByPiece[Array(p[k...])] else { continue }
                for l in lefts { for r in rights { pairs[UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))] = merged } }
            }
        }
        self.pairs = pairs
        let n = pieces.count
        if n <= 4096 {
            var dense = [Int32](repeating: -1, count: n * n)
            for (k, m) in pairs { dense[Int(k >> 32) * n + Int(k & 0xFFFF_FFFF)] = m }
            densePairs = dense
        } else {
            densePairs = nil
        }
        dummyPrefix = idsByPiece[[0x20]]?.first
    }

    @inline(__always) private static func pack(_ b: ArraySlice<UInt8>) -> UInt64 {
        var v = UInt64(b.count) << 32
        for (k, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(k)) }
        return v
    }

    private struct Rules: MergeRules {
        let pairs: [UInt64: Int32]
        let dense: [Int32]?
        let scores: [Float]
        @inline(__always) func merge(_ left: Int32, _ right: Int32) -> (priority: Float, merged: Int32)? {
            guard left >= 0, right >= 0 else { return nil }
            let m: Int32
            if let dense {
                let n = scores.count
                guard Int(left) < n, Int(right) < n else { return nil }
                m = dense[Int(left) * n + Int(right)]
                if m < 0 { return nil }
            } else {
                guard let found = pairs[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] else { return nil }
                m = found
            }
            let s = scores[Int(m)]
            // run.c starts its search at best_score = -1e10 and needs a strictly greater score.
            return s > -1e10 ? (s, m) : nil
        }
    }

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecial: Bool) -> [Int] {
        let bytes = Array(text.utf8)
        var tokens: [Int32] = []
        tokens.reserveCapacity(bytes.count + 2)
        if addSpecialTokens { tokens.append(Int32(Self.bos)) }
        if !bytes.isEmpty, let d = dummyPrefix { tokens.append(d) }
        var start = 0
        let n = bytes.count
        for i in 0..<n {
            if bytes[i] & 0xC0 != 0x80 { start = i }
            let next: UInt8 = i + 1 < n ? bytes[i + 1] : 0
            if next & 0xC0 == 0x80 && i + 1 - start < 4 { continue }
            let char = bytes[start...i]
            if let id = characterIDs[Self.pack(char)] {
                tokens.append(id)
            } else {
                for b in char { tokens.append(Int32(b) + 3) }
            }
            start = i + 1
        }
        PairMerge.run(&tokens, rules: Rules(pairs: pairs, dense: densePairs, scores: scores))
        if addSpecialTokens && addsEOS { tokens.append(Int32(Self.eos)) }
        return tokens.map(Int.init)
    }

    public func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var body = ids[...]
        if addsBOS, body.first == Self.bos { body = body.dropFirst() }
        var prev = addsBOS && ids.first == Self.bos ? Self.bos : -1
        for id in body {
            defer { prev = id }
            guard id >= 0 && id < pieces.count else { continue }
            var p = pieces[id][...]
            if prev == Self.bos && p.first == 0x20 { p = p.dropFirst() }
            if p.count == 6, p.starts(with: [0x3C, 0x30, 0x78]), p.last == 0x3E,
               let b = UInt8(String(decoding: p.dropFirst(3).prefix(2), as: UTF8.self), radix: 16) {
                out.append(b)
            } else {
                out.append(contentsOf: p)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func piece(_ id: Int) -> String {
        guard id >= 0 && id < pieces.count else { return "" }
        return String(decoding: pieces[id], as: UTF8.self)
    }
}
