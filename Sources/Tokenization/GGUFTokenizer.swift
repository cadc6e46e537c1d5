import Checkpoints

/// The tokenizer metadata of a GGUF file (`tokenizer.ggml.*`), read and checked once with llama.cpp's semantics
/// (`llama-vocab.cpp`). `GGUFTokenizer` builds the tokenizer from it; `HuggingFaceTokenizerExport` writes it as
/// `tokenizer.json`, so both agree on every rule (added tokens, pre-tokenizer, BOS/EOS).
struct GGUFVocabulary {
    /// llama.cpp token types (`tokenizer.ggml.token_type`).
    enum TokenType: Int { case undefined = 0, normal, unknown, control, userDefined, unused, byte }

    /// The BPE flavour (`tokenizer.ggml.model`).
    enum Model {
        /// `llama`: SentencePiece BPE, pairs merged by the score of the token they make (highest first), byte
        /// fallback, spaces as `▁`, and a dummy-prefix space when `addSpacePrefix`.
        case sentencePiece(scores: [Float], addSpacePrefix: Bool)
        /// `gpt2`: byte-level BPE by merge rank, after the regex splits named by `pre` (`tokenizer.ggml.pre`).
        case byteLevel(merges: [(String, String)], pre: String, patterns: [SplitPattern], ignoreMerges: Bool)
    }

    /// The GGUF file, for error messages.
    let path: String
    /// Token text by id, as stored (`▁` or byte-level text).
    let tokens: [String]
    /// `TokenType` raw values, one per token.
    let types: [Int]
    let model: Model
    let bos: Int?
    let eos: Int?
    let unknown: Int?
    let padding: Int?
    /// The BOS/EOS rule (`tokenizer.ggml.add_bos_token` / `add_eos_token`, else llama.cpp's default per model).
    let addsBOS: Bool
    let addsEOS: Bool
    /// Control, user-defined and unknown tokens: matched in the raw text before tokenization (special ones only
    /// when special tokens are parsed), ascending by id.
    let addedTokens: [AddedToken]
    /// `tokenizer.chat_template`, if the file has one.
    let chatTemplate: String?

    init(_ file: GGUFFile) throws {
        let path = file.path
        let meta = file.metadata
        self.path = path
        guard let modelValue = meta["tokenizer.ggml.model"] else {
            throw TokenizerError.missingField(file: path, field: "tokenizer.ggml.model")
        }
        guard let modelName = modelValue.string else {
            throw TokenizerError.badValue(file: path, field: "tokenizer.ggml.model", value: "\(modelValue.type)", reason: "not a string")
        }
        guard let tokens = meta["tokenizer.ggml.tokens"]?.strings else {
            throw TokenizerError.missingField(file: path, field: "tokenizer.ggml.tokens")
        }
        let types: [Int] = meta["tokenizer.ggml.token_type"]?.ints ?? Array(repeating: TokenType.normal.rawValue, count: tokens.count)
        guard types.count == tokens.count else {
            throw TokenizerError.badValue(file: path, field: "tokenizer.ggml.token_type", value: "\(types.count) entries",
                                          reason: "expected \(tokens.count) (one per token)")
        }
        self.tokens = tokens
        self.types = types
        func id(_ key: String) throws -> Int? {
            guard let v = meta[key] else { return nil }
            guard let i = v.int, i >= 0, i < tokens.count else {
                throw TokenizerError.badValue(file: path, field: key, value: "\(v)", reason: "not a token id below \(tokens.count)")
            }
            return i
        }
        func flag(_ key: String) -> Bool? { meta[key]?.bool }
        // llama.cpp's special ids when a key is absent (llama-vocab.cpp, per tokenizer model): SentencePiece
        // BOS 1, EOS 2, UNK 0; GPT-2 BPE BOS = EOS 11. (convert_hf_to_gguf.py writes none for a folder whose
        // config names no special tokens; llama.cpp then adds BOS 1 to a SentencePiece vocabulary.)
        let defaults: (bos: Int?, eos: Int?, unknown: Int?) = switch modelName {
        case "llama": (1, 2, 0)
        case "gpt2": (11, 11, nil)
        default: (nil, nil, nil)
        }
        func orDefault(_ value: Int?, _ fallback: Int?) -> Int? { value ?? fallback.flatMap { $0 < tokens.count ? $0 : nil } }
        bos = orDefault(try id("tokenizer.ggml.bos_token_id"), defaults.bos)
        eos = orDefault(try id("tokenizer.ggml.eos_token_id"), defaults.eos)
        unknown = orDefault(try id("tokenizer.ggml.unknown_token_id"), defaults.unknown)
        padding = try id("tokenizer.ggml.padding_token_id")
        chatTemplate = meta["tokenizer.chat_template"]?.string
        let name = (meta["general.name"]?.string ?? "").lowercased()

        // Control, user-defined and unknown tokens are matched in the text before tokenization; with
        // parse_special=false only user-defined ones are (llama.cpp tokenizer_st_partition).
        var added: [AddedToken] = []
        let rstripAll = name.contains("phi-3") || name.contains("phi3")  // llama.cpp sets RSTRIP for Phi-3
        for (i, t) in types.enumerated() {
            guard let type = TokenType(rawValue: t), type == .control || type == .userDefined || type == .unknown else { continue }
            let text = tokens[i]
            let rstrip = rstripAll && !["<unk>", "<s>", "<|endoftext|>"].contains(text)
            added.append(AddedToken(content: Array(text.unicodeScalars), id: i, special: type != .userDefined, lstrip: false, rstrip: rstrip))
        }
        addedTokens = added

        switch modelName {
        case "llama":
            guard let scores = meta["tokenizer.ggml.scores"]?.floats else {
                throw TokenizerError.missingField(file: path, field: "tokenizer.ggml.scores")
            }
            guard scores.count == tokens.count else {
                throw TokenizerError.badValue(file: path, field: "tokenizer.ggml.scores", value: "\(scores.count) entries", reason: "expected \(tokens.count)")
            }
            model = .sentencePiece(scores: scores, addSpacePrefix: flag("tokenizer.ggml.add_space_prefix") ?? true)
            addsBOS = flag("tokenizer.ggml.add_bos_token") ?? true
        case "gpt2":
            guard let mergeLines = meta["tokenizer.ggml.merges"]?.strings else {
                throw TokenizerError.missingField(file: path, field: "tokenizer.ggml.merges")
            }
            var merges: [(String, String)] = []
            merges.reserveCapacity(mergeLines.count)
            for (k, line) in mergeLines.enumerated() {
                // llama.cpp: the separator is the first space after the first character.
                let u = Array(line.utf8)
                guard u.count >= 3, let sep = u[1...].firstIndex(of: 0x20) else {
                    throw TokenizerError.badValue(file: path, field: "tokenizer.ggml.merges[\(k)]", value: line.debugDescription, reason: "not 'left right'")
                }
                merges.append((String(decoding: u[..<sep], as: UTF8.self), String(decoding: u[(sep + 1)...], as: UTF8.self)))
            }
            let pre = meta["tokenizer.ggml.pre"]?.string ?? "default"
            let (patterns, ignoreMerges, defaultBOS) = try GGUFTokenizer.preTokenizer(pre, path)
            model = .byteLevel(merges: merges, pre: pre, patterns: patterns, ignoreMerges: ignoreMerges)
            addsBOS = flag("tokenizer.ggml.add_bos_token") ?? defaultBOS
        default:
            throw TokenizerError.unsupported(file: path, field: "tokenizer.ggml.model", value: modelName)
        }
        addsEOS = flag("tokenizer.ggml.add_eos_token") ?? false
    }

    /// Ids of control tokens, ascending.
    var controlTokenIDs: [Int] { types.indices.filter { types[$0] == TokenType.control.rawValue } }
}

/// Builds a tokenizer from GGUF `tokenizer.ggml.*` metadata with llama.cpp's semantics (`llama-vocab.cpp`):
/// `llama` = SentencePiece BPE by token scores with byte fallback and the dummy-prefix space; `gpt2` =
/// byte-level BPE by merge rank with the pre-tokenizer named by `tokenizer.ggml.pre`.
enum GGUFTokenizer {
    static func build(_ file: GGUFFile) throws -> PipelineTokenizer {
        build(try GGUFVocabulary(file))
    }

    static func build(_ vocab: GGUFVocabulary) -> PipelineTokenizer {
        let verbatim = Set(vocab.addedTokens.map(\.id))
        switch vocab.model {
        case .sentencePiece(let scores, let addSpacePrefix):
            let model = BPEModel(tokens: vocab.tokens, merges: .scores(scores), alphabet: .characters(byteFallback: true),
                                 unknownID: vocab.unknown, ignoreMerges: false, fuseUnknown: false)
            return PipelineTokenizer(
                model: model, addedTokens: vocab.addedTokens, spacePrefix: addSpacePrefix ? .afterSpecial : .none,
                normalizer: .replace(" ", "\u{2581}"), preTokenizer: [], decoder: .sentencePiece(stripLeadingSpace: addSpacePrefix),
                verbatimIDs: verbatim, bos: vocab.bos, eos: vocab.eos, unknown: vocab.unknown,
                addsBOS: vocab.addsBOS, addsEOS: vocab.addsEOS, specialTokenIDs: vocab.controlTokenIDs)
        case .byteLevel(let merges, _, let patterns, let ignoreMerges):
            let model = BPEModel(tokens: vocab.tokens, merges: .ranked(merges), alphabet: .byteLevel,
                                 unknownID: vocab.unknown, ignoreMerges: ignoreMerges, fuseUnknown: false)
            return PipelineTokenizer(
                model: model, addedTokens: vocab.addedTokens, spacePrefix: .none, normalizer: nil,
                preTokenizer: patterns.map { .pattern($0) }, decoder: .byteLevel, verbatimIDs: verbatim,
                bos: vocab.bos, eos: vocab.eos, unknown: vocab.unknown,
                addsBOS: vocab.addsBOS, addsEOS: vocab.addsEOS, specialTokenIDs: vocab.controlTokenIDs)
        }
    }

    /// llama.cpp's pre-tokenizer regexes by `tokenizer.ggml.pre` name (llama-vocab.cpp), with its
    /// `ignore_merges` and default `add_bos`.
    static func preTokenizer(_ pre: String, _ path: String) throws -> ([SplitPattern], Bool, Bool) {
        switch pre {
        case "default":
            return ([.punctuation, .gpt2, .digits(individual: false), .asciiDigitTriples], false, false)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
            return ([.llama3(maxDigits: 3)], true, true)
        case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "mellum", "mpt", "olmo", "jais", "trillion":
            return ([.gpt2], false, false)
        case "qwen2", "deepseek-r1-qwen":
            return ([.llama3(maxDigits: 1)], false, false)
        case "smollm":
            return ([.digits(individual: true), .gpt2], false, false)
        default:
            throw TokenizerError.unsupported(file: path, field: "tokenizer.ggml.pre", value: pre)
        }
    }
}
