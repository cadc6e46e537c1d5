import Checkpoints
import Essentials
import Foundation

/// Converts a GGUF tokenizer (`tokenizer.ggml.*`) into the files Hugging Face `tokenizers` and transformers read
/// (`tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`), with the same rules `GGUFTokenizer`
/// applies, so the folder tokenizes like the GGUF (llama.cpp) does:
///
/// - `gpt2` (byte-level BPE): the vocabulary and merges as they are; the pre-tokenizer that `tokenizer.ggml.pre`
///   names, as `Digits` / `Split` steps before a `ByteLevel` step (`ByteLevel` with `use_regex` when the last
///   regex is GPT-2's, as in GPT-2's and SmolLM's own files); `ignore_merges` for LLaMA-3.
/// - `llama` (SentencePiece BPE): a `BPE` model with `byte_fallback`, whose merges are every split of every token
///   into two tokens, ranked by the score of the token they make (highest first), as transformers'
///   `LlamaConverter` builds them; the normalizer `Prepend("▁")` + `Replace(" ", "▁")` (llama.cpp's dummy prefix,
///   which it adds to the text before and after every special token, as a normalizer does to each fragment),
///   and the matching decoder.
/// - Control, unknown and user-defined tokens become `added_tokens` (special except user-defined; Phi-3's
///   `rstrip`); the BOS/EOS rule becomes a `TemplateProcessing` post-processor and `add_bos_token` /
///   `add_eos_token`; `tokenizer.chat_template` becomes `chat_template`.
///
/// Token texts are written byte for byte (see `JSONWriter`). A text that occurs twice keeps its last id, as in
/// llama.cpp's text → id map; the earlier ids are then left out of `tokenizer.json` (no fixture has any).
public enum HuggingFaceTokenizerExport {
    /// The converted tokenizer files an `hf` export of a checkpoint with this tokenizer needs
    /// (`ExportRequest.tokenizerFiles`): those of `files(from:)` for a GGUF tokenizer, none for the others (the
    /// exporter copies a `tokenizer.json` or `tokenizer.bin` as it is).
    public static func files(for source: TokenizerSource) throws -> [String: Data] {
        guard case .gguf(let file) = source else { return [:] }
        return try files(from: file)
    }

    /// The tokenizer files for the tokenizer in `file`'s metadata, by file name.
    public static func files(from file: GGUFFile) throws -> [String: Data] {
        let vocab = try GGUFVocabulary(file)
        let architecture = file.metadata["general.architecture"]?.string
        let contextLength = architecture.flatMap { file.metadata["\($0).context_length"]?.int }
        return [
            "tokenizer.json": Data(tokenizerJSON(vocab).encoded(pretty: false)),
            "tokenizer_config.json": Data(tokenizerConfig(vocab, modelMaxLength: contextLength).encoded(pretty: true)),
            "special_tokens_map.json": Data(specialTokensMap(vocab).encoded(pretty: true)),
        ]
    }

    /// The last id of each distinct token text (compared byte for byte).
    static func idsByText(_ tokens: [String]) -> [[UInt8]: Int] {
        var ids: [[UInt8]: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { ids[Array(t.utf8)] = i }
        return ids
    }

    /// `tokenizer.json` (HF `tokenizers` 0.20+ format: merges as pairs).
    static func tokenizerJSON(_ vocab: GGUFVocabulary) -> JSONWriter {
        let ids = idsByText(vocab.tokens)
        let text = vocab.tokens
        func str(_ s: String) -> JSONWriter { .string(s) }
        func optionalToken(_ id: Int?) -> JSONWriter { id.map { .string(text[$0]) } ?? .null }

        let added: [JSONWriter] = vocab.addedTokens.compactMap { a in
            let content = String(String.UnicodeScalarView(a.content))
            guard !content.isEmpty, ids[Array(content.utf8)] == a.id else { return nil }
            return .object([("id", .int(a.id)), ("content", str(content)), ("single_word", .bool(false)),
                            ("lstrip", .bool(a.lstrip)), ("rstrip", .bool(a.rstrip)), ("normalized", .bool(false)),
                            ("special", .bool(a.special))])
        }
        // Every id in order, each distinct text once (its last id).
        let vocabJSON: [(String, JSONWriter)] = text.indices.compactMap { i in
            ids[Array(text[i].utf8)] == i ? (text[i], .int(i)) : nil
        }

        let normalizer: JSONWriter, preTokenizer: JSONWriter, decoder: JSONWriter
        let merges: [(String, String)]
        let byteFallback: Bool, ignoreMerges: Bool
        switch vocab.model {
        case .sentencePiece(let scores, let addSpacePrefix):
            let replace: JSONWriter = .object([("type", str("Replace")), ("pattern", .object([("String", str(" "))])), ("content", str("\u{2581}"))])
            normalizer = addSpacePrefix
                ? .object([("type", str("Sequence")), ("normalizers", .array([.object([("type", str("Prepend")), ("prepend", str("\u{2581}"))]), replace]))])
                : replace
            preTokenizer = .null
            var steps: [JSONWriter] = [
                .object([("type", str("Replace")), ("pattern", .object([("String", str("\u{2581}"))])), ("content", str(" "))]),
                .object([("type", str("ByteFallback"))]),
                .object([("type", str("Fuse"))]),
            ]
            if addSpacePrefix { steps.append(.object([("type", str("Strip")), ("content", str(" ")), ("start", .int(1)), ("stop", .int(0))])) }
            decoder = .object([("type", str("Sequence")), ("decoders", .array(steps))])
            merges = sentencePieceMerges(text, scores: scores, ids: ids)
            byteFallback = true
            ignoreMerges = false
        case .byteLevel(let list, _, let patterns, let ignore):
            normalizer = .null
            preTokenizer = byteLevelPreTokenizer(patterns)
            decoder = .object([("type", str("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
            // tokenizers refuses a merge whose parts or result are not tokens; BPEModel skips them too.
            merges = list.filter { ids[Array($0.0.utf8)] != nil && ids[Array($0.1.utf8)] != nil && ids[Array(($0.0 + $0.1).utf8)] != nil }
            byteFallback = false
            ignoreMerges = ignore
        }

        let model: JSONWriter = .object([
            ("type", str("BPE")), ("dropout", .null), ("unk_token", optionalToken(vocab.unknown)),
            ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)),
            ("byte_fallback", .bool(byteFallback)), ("ignore_merges", .bool(ignoreMerges)),
            ("vocab", .object(vocabJSON)),
            ("merges", .array(merges.map { .array([str($0.0), str($0.1)]) })),
        ])
        return .object([
            ("version", str("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", normalizer), ("pre_tokenizer", preTokenizer), ("post_processor", postProcessor(vocab)),
            ("decoder", decoder), ("model", model),
        ])
    }

    /// SentencePiece BPE as ranked merges: for every token, each split into two tokens, ranked by the score of
    /// the token (highest first; then by that token's id, then the left part's id, to be deterministic). This is
    /// the pair table `BPEModel` builds from scores, and the list transformers' `LlamaConverter` writes.
    static func sentencePieceMerges(_ tokens: [String], scores: [Float], ids: [[UInt8]: Int]) -> [(String, String)] {
        var found: [(score: Float, merged: Int, left: Int, pair: (String, String))] = []
        for (i, t) in tokens.enumerated() where ids[Array(t.utf8)] == i {
            let bytes = Array(t.utf8)
            // Split only between scalars: a UTF-8 continuation byte is 10xxxxxx.
            for k in 1..<max(bytes.count, 1) where bytes[k] & 0xC0 != 0x80 {
                let left = Array(bytes[..<k]), right = Array(bytes[k...])
                guard let l = ids[left], ids[right] != nil else { continue }
                found.append((scores[i], i, l, (String(decoding: left, as: UTF8.self), String(decoding: right, as: UTF8.self))))
            }
        }
        found.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.merged != b.merged { return a.merged < b.merged }
            return a.left < b.left
        }
        return found.map(\.pair)
    }

    /// The regex splits of `tokenizer.ggml.pre` followed by the byte-level mapping. A final GPT-2 regex is left to
    /// `ByteLevel(use_regex: true)`, and digit runs are `Digits`, as Hugging Face's own files write them.
    static func byteLevelPreTokenizer(_ patterns: [SplitPattern]) -> JSONWriter {
        var rest = patterns
        var useRegex = false
        if rest.last == .gpt2 { rest.removeLast(); useRegex = true }
        var steps: [JSONWriter] = rest.map { p in
            if case .digits(let individual) = p {
                return .object([("type", .string("Digits")), ("individual_digits", .bool(individual))])
            }
            return .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(p.regex))])),
                            ("behavior", .string("Isolated")), ("invert", .bool(false))])
        }
        steps.append(.object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)),
                              ("trim_offsets", .bool(true)), ("use_regex", .bool(useRegex))]))
        return steps.count == 1 ? steps[0] : .object([("type", .string("Sequence")), ("pretokenizers", .array(steps))])
    }

    /// The BOS/EOS rule as `TemplateProcessing` (after byte-level offset trimming for byte-level models); with no
    /// rule, `ByteLevel` offsets only (byte-level) or nothing.
    static func postProcessor(_ vocab: GGUFVocabulary) -> JSONWriter {
        let bos = vocab.addsBOS ? vocab.bos : nil
        let eos = vocab.addsEOS ? vocab.eos : nil
        let byteLevel: JSONWriter = .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)),
                                             ("trim_offsets", .bool(false)), ("use_regex", .bool(true))])
        let isByteLevel: Bool
        if case .byteLevel = vocab.model { isByteLevel = true } else { isByteLevel = false }
        guard bos != nil || eos != nil else { return isByteLevel ? byteLevel : .null }
        func special(_ id: Int, _ typeID: Int) -> JSONWriter {
            .object([("SpecialToken", .object([("id", .string(vocab.tokens[id])), ("type_id", .int(typeID))]))])
        }
        func sequence(_ name: String, _ typeID: Int) -> JSONWriter {
            .object([("Sequence", .object([("id", .string(name)), ("type_id", .int(typeID))]))])
        }
        func template(_ typeID: Int, _ name: String) -> [JSONWriter] {
            (bos.map { [special($0, typeID)] } ?? []) + [sequence(name, typeID)] + (eos.map { [special($0, typeID)] } ?? [])
        }
        var specials: [(String, JSONWriter)] = []
        for id in [bos, eos].compactMap({ $0 }) where !specials.contains(where: { $0.0 == vocab.tokens[id] }) {
            let t = vocab.tokens[id]
            specials.append((t, .object([("id", .string(t)), ("ids", .array([.int(id)])), ("tokens", .array([.string(t)]))])))
        }
        let processing: JSONWriter = .object([
            ("type", .string("TemplateProcessing")), ("single", .array(template(0, "A"))),
            ("pair", .array(template(0, "A") + template(1, "B"))), ("special_tokens", .object(specials)),
        ])
        return isByteLevel ? .object([("type", .string("Sequence")), ("processors", .array([byteLevel, processing]))]) : processing
    }

    /// `tokenizer_config.json`: the special tokens by text, the BOS/EOS rule, the chat template, and
    /// `PreTrainedTokenizerFast` (which uses tokenizer.json as written; a model-specific class could rebuild
    /// its pipeline from the vocabulary instead).
    static func tokenizerConfig(_ vocab: GGUFVocabulary, modelMaxLength: Int?) -> JSONWriter {
        let ids = idsByText(vocab.tokens)
        var members: [(String, JSONWriter)] = [
            ("add_bos_token", .bool(vocab.addsBOS && vocab.bos != nil)),
            ("add_eos_token", .bool(vocab.addsEOS && vocab.eos != nil)),
        ]
        var decoder: [(String, JSONWriter)] = []
        for a in vocab.addedTokens {
            let content = String(String.UnicodeScalarView(a.content))
            guard !content.isEmpty, ids[Array(content.utf8)] == a.id else { continue }
            decoder.append(("\(a.id)", .object([("content", .string(content)), ("lstrip", .bool(a.lstrip)), ("normalized", .bool(false)),
                                                 ("rstrip", .bool(a.rstrip)), ("single_word", .bool(false)), ("special", .bool(a.special))])))
        }
        members.append(("added_tokens_decoder", .object(decoder)))
        members += specialTokenNames(vocab).map { ($0.0, .string($0.1)) }
        if let template = vocab.chatTemplate { members.append(("chat_template", .string(template))) }
        members.append(("clean_up_tokenization_spaces", .bool(false)))
        if let modelMaxLength { members.append(("model_max_length", .int(modelMaxLength))) }
        members.append(("tokenizer_class", .string("PreTrainedTokenizerFast")))
        return .object(members)
    }

    /// `special_tokens_map.json`: bos/eos/unk/pad by text.
    static func specialTokensMap(_ vocab: GGUFVocabulary) -> JSONWriter {
        .object(specialTokenNames(vocab).map { ($0.0, .string($0.1)) })
    }

    static func specialTokenNames(_ vocab: GGUFVocabulary) -> [(String, String)] {
        [("bos_token", vocab.bos), ("eos_token", vocab.eos), ("unk_token", vocab.unknown), ("pad_token", vocab.padding)]
            .compactMap { key, id in id.map { (key, vocab.tokens[$0]) } }
    }
}
