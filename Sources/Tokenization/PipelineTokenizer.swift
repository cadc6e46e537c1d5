/// A tokenizer assembled from parts, like Hugging Face `tokenizers` and llama.cpp's vocab: added-token split,
/// normalizer, pre-tokenizer, BPE model, BOS/EOS rule, decoder. GGUF and tokenizer.json both build one.
public struct PipelineTokenizer: Tokenizer {
    /// When llama.cpp's SentencePiece dummy-prefix space is added to a plain-text fragment.
    enum SpacePrefix: Sendable {
        case none
        /// llama.cpp `add_space_prefix`: before the first fragment and every fragment after an added token.
        case afterSpecial
    }

    let model: BPEModel
    let addedTokens: AddedTokenSplitter
    let spacePrefix: SpacePrefix
    let normalizer: Normalizer?
    let preTokenizer: [PreTokenizerStep]
    let decoder: DecoderRule
    /// Ids written as their own text when decoding (added, control and user-defined tokens).
    let verbatimIDs: Set<Int>
    /// Ids whose piece is one raw byte (`<0xXX>`), for SentencePiece decoding.
    let byteIDs: [Int: UInt8]

    public let vocabularySize: Int
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let unknownTokenID: Int?
    public let addsBOS: Bool
    public let addsEOS: Bool
    public let specialTokenIDs: [Int]

    init(model: BPEModel, addedTokens: [AddedToken], spacePrefix: SpacePrefix, normalizer: Normalizer?,
         preTokenizer: [PreTokenizerStep], decoder: DecoderRule, verbatimIDs: Set<Int>,
         bos: Int?, eos: Int?, unknown: Int?, addsBOS: Bool, addsEOS: Bool, specialTokenIDs: [Int]) {
        self.model = model
        self.addedTokens = AddedTokenSplitter(addedTokens)
        self.spacePrefix = spacePrefix
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.verbatimIDs = verbatimIDs
        var byteIDs: [Int: UInt8] = [:]
        for (i, t) in model.tokens.enumerated() {
            let u = Array(t.utf8)
            if u.count == 6, u.starts(with: [0x3C, 0x30, 0x78]), u[5] == 0x3E, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                byteIDs[i] = b
            }
        }
        self.byteIDs = byteIDs
        vocabularySize = model.tokens.count
        bosTokenID = bos
        eosTokenID = eos
        unknownTokenID = unknown
        self.addsBOS = addsBOS && bos != nil
        self.addsEOS = addsEOS && eos != nil
        self.specialTokenIDs = specialTokenIDs.sorted()
    }

    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecial: Bool) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens && addsBOS, let b = bosTokenID { out.append(b) }
        let scalars = Array(text.unicodeScalars)
        var previousWasToken = true
        var first = true
        for fragment in addedTokens.split(scalars, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                out.append(id)
                previousWasToken = true
            case .text(let slice):
                var s = Array(slice)
                if spacePrefix == .afterSpecial && previousWasToken { s.insert(" ", at: 0) }
                if let n = normalizer { s = n.apply(s) }
                var pieces = [s]
                for step in preTokenizer { pieces = step.apply(pieces, firstFragment: first) }
                for p in pieces { model.encode(p[...], into: &out) }
                previousWasToken = false
            }
            first = false
        }
        if addSpecialTokens && addsEOS, let e = eosTokenID { out.append(e) }
        return out
    }

    public func decode(_ ids: [Int]) -> String {
        var body = ids[...]
        if addsBOS, let b = bosTokenID, body.first == b { body = body.dropFirst() }
        if addsEOS, let e = eosTokenID, body.last == e { body = body.dropLast() }
        var out: [UInt8] = []
        for id in body where id >= 0 && id < vocabularySize {
            let t = model.tokens[id]
            if verbatimIDs.contains(id) { out.append(contentsOf: t.utf8); continue }
            switch decoder {
            case .byteLevel:
                ByteLevel.decode(t, into: &out)
            case .sentencePiece:
                if let b = byteIDs[id] { out.append(b); continue }
                for s in t.unicodeScalars {
                    if s == "\u{2581}" { out.append(0x20) } else { out.append(contentsOf: String(s).utf8) }
                }
            }
        }
        if case .sentencePiece(true) = decoder, out.first == 0x20 { out.removeFirst() }
        return String(decoding: out, as: UTF8.self)
    }

    public func piece(_ id: Int) -> String {
        id >= 0 && id < vocabularySize ? model.tokens[id] : ""
    }
}
