import Foundation

/// Builds a tokenizer from a Hugging Face `tokenizer.json` (HF `tokenizers` semantics): model `BPE`
/// (byte-level or SentencePiece-style with `byte_fallback`, `ignore_merges`, `fuse_unk`), normalizers
/// (Prepend, Replace, NFC/NFKC/NFD/NFKD, Lowercase, Sequence), pre-tokenizers (ByteLevel, Metaspace, Split with
/// a known regex, Digits, Sequence), decoders, a TemplateProcessing BOS/EOS rule and `added_tokens`. The
/// `bos_token` / `eos_token` of a `tokenizer_config.json` beside the file name the BOS/EOS ids when the
/// post-processor does not.
enum HuggingFaceTokenizer {
    static func build(path: String, bosTokenID: Int? = nil, eosTokenID: Int? = nil) throws -> PipelineTokenizer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.unreadable(file: path, reason: "cannot open")
        }
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TokenizerError.badValue(file: path, field: "(top level)", value: "non-object", reason: "expected a JSON object")
            }
            root = r
        } catch let e as TokenizerError { throw e } catch {
            throw TokenizerError.unreadable(file: path, reason: "invalid JSON: \(error.localizedDescription)")
        }
        var p = Parser(path: path)
        let named = try configuredSpecialTokens(besides: path)
        return try p.tokenizer(root, bosTokenID: bosTokenID, eosTokenID: eosTokenID, bosText: named.bos, eosText: named.eos)
    }

    /// `bos_token` / `eos_token` of the `tokenizer_config.json` in the folder of `path`, when there is one; a
    /// value is a string or an added-token object with `content`.
    static func configuredSpecialTokens(besides path: String) throws -> (bos: String?, eos: String?) {
        let config = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        guard let data = FileManager.default.contents(atPath: config) else { return (nil, nil) }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw TokenizerError.unreadable(file: config, reason: "invalid JSON: \(error.localizedDescription)")
        }
        guard let object = root as? [String: Any] else {
            throw TokenizerError.badValue(file: config, field: "(top level)", value: "non-object", reason: "expected a JSON object")
        }
        func name(_ key: String) -> String? {
            (object[key] as? String) ?? ((object[key] as? [String: Any])?["content"] as? String)
        }
        return (name("bos_token"), name("eos_token"))
    }

    struct Parser {
        let path: String
        /// Set when a ByteLevel pre-tokenizer or decoder is present.
        var byteLevel = false

        func object(_ v: Any?, _ field: String) throws -> [String: Any] {
            guard let o = v as? [String: Any] else { throw TokenizerError.missingField(file: path, field: field) }
            return o
        }
        func type(_ o: [String: Any], _ field: String) throws -> String {
            guard let t = o["type"] as? String else { throw TokenizerError.missingField(file: path, field: "\(field).type") }
            return t
        }
        func bool(_ o: [String: Any], _ key: String, _ fallback: Bool) -> Bool { (o[key] as? Bool) ?? fallback }
        func string(_ o: [String: Any], _ key: String, _ field: String) throws -> String {
            guard let s = o[key] as? String else { throw TokenizerError.missingField(file: path, field: "\(field).\(key)") }
            return s
        }

        mutating func tokenizer(_ root: [String: Any], bosTokenID: Int?, eosTokenID: Int?,
                                bosText: String? = nil, eosText: String? = nil) throws -> PipelineTokenizer {
            let modelJSON = try object(root["model"], "model")
            let modelType = (modelJSON["type"] as? String) ?? "BPE"
            guard modelType == "BPE" else { throw TokenizerError.unsupported(file: path, field: "model.type", value: modelType) }
            for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
                if let s = modelJSON[key] as? String, !s.isEmpty {
                    throw TokenizerError.unsupported(file: path, field: "model.\(key)", value: s)
                }
            }
            guard let vocab = modelJSON["vocab"] as? [String: Any] else { throw TokenizerError.missingField(file: path, field: "model.vocab") }

            // Added tokens may lie beyond the model vocabulary; the id space is the union.
            let addedJSON = (root["added_tokens"] as? [[String: Any]]) ?? []
            var size = 0
            var entries: [(String, Int)] = []
            entries.reserveCapacity(vocab.count)
            // The id table is sized by the largest id, so an id far beyond the entries present (2^32-1 asked for
            // 32 GiB) is refused; 1,024 spare ids allow the odd gap a real tokenizer has.
            let idLimit = vocab.count + addedJSON.count + 1024
            func checkID(_ i: Int, _ field: String) throws {
                guard i < idLimit else {
                    throw TokenizerError.badValue(file: path, field: field, value: "\(i)",
                                                  reason: "token id beyond the limit \(idLimit) (entries present plus 1,024)")
                }
            }
            for (text, v) in vocab {
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else {
                    throw TokenizerError.badValue(file: path, field: "model.vocab[\(text.debugDescription)]", value: "\(v)", reason: "not a token id")
                }
                try checkID(i, "model.vocab[\(text.debugDescription)]")
                entries.append((text, i)); size = max(size, i + 1)
            }
            var added: [AddedToken] = []
            var specials: [Int] = []
            for (k, a) in addedJSON.enumerated() {
                guard let i = (a["id"] as? NSNumber)?.intValue, i >= 0, let content = a["content"] as? String else {
                    throw TokenizerError.badValue(file: path, field: "added_tokens[\(k)]", value: "\(a)", reason: "needs id and content")
                }
                try checkID(i, "added_tokens[\(k)].id")
                size = max(size, i + 1)
                let special = bool(a, "special", false)
                if special { specials.append(i) }
                added.append(AddedToken(content: Array(content.unicodeScalars), id: i, special: special,
                                        lstrip: bool(a, "lstrip", false), rstrip: bool(a, "rstrip", false)))
            }
            var tokens = [String](repeating: "", count: size)
            for (text, i) in entries { tokens[i] = text }
            for a in added where tokens[a.id].isEmpty { tokens[a.id] = String(String.UnicodeScalarView(a.content)) }

            var merges: [(String, String)] = []
            for (k, m) in ((modelJSON["merges"] as? [Any]) ?? []).enumerated() {
                if let s = m as? String {
                    guard let sep = s.dropFirst().firstIndex(of: " ") else {
                        throw TokenizerError.badValue(file: path, field: "model.merges[\(k)]", value: s.debugDescription, reason: "not 'left right'")
                    }
                    merges.append((String(s[..<sep]), String(s[s.index(after: sep)...])))
                } else if let pair = m as? [String], pair.count == 2 {
                    merges.append((pair[0], pair[1]))
                } else {
                    throw TokenizerError.badValue(file: path, field: "model.merges[\(k)]", value: "\(m)", reason: "not a pair")
                }
            }

            let normalizer = try root["normalizer"].flatMap { $0 is NSNull ? nil : try self.normalizer(try object($0, "normalizer"), "normalizer") }
            let steps = try root["pre_tokenizer"].flatMap { $0 is NSNull ? nil : try self.preTokenizer(try object($0, "pre_tokenizer"), "pre_tokenizer") } ?? []
            let decoder = try root["decoder"].flatMap { $0 is NSNull ? nil : try self.decoder(try object($0, "decoder"), "decoder") }

            let unknownText = modelJSON["unk_token"] as? String
            let unknown = unknownText.flatMap { t in vocab[t].flatMap { ($0 as? NSNumber)?.intValue } }
            let model = BPEModel(tokens: tokens, merges: .ranked(merges),
                                 alphabet: byteLevel ? .byteLevel : .characters(byteFallback: bool(modelJSON, "byte_fallback", false)),
                                 unknownID: unknown, ignoreMerges: bool(modelJSON, "ignore_merges", false),
                                 fuseUnknown: bool(modelJSON, "fuse_unk", false))

            // BOS/EOS: TemplateProcessing's single-sequence template, else the usual token texts.
            func idOf(_ text: String) -> Int? { added.first { String(String.UnicodeScalarView($0.content)) == text }?.id ?? model.ids[text].map(Int.init) }
            var addsBOS = false, addsEOS = false
            var bos = bosTokenID, eos = eosTokenID
            if let post = root["post_processor"] as? [String: Any] {
                let (b, e) = try template(post, "post_processor")
                if let b { addsBOS = true; bos = bos ?? idOf(b) }
                if let e { addsEOS = true; eos = eos ?? idOf(e) }
            }
            bos = bos ?? bosText.flatMap(idOf) ?? ["<s>", "<|begin_of_text|>", "<|endoftext|>"].lazy.compactMap(idOf).first
            eos = eos ?? eosText.flatMap(idOf) ?? ["</s>", "<|end_of_text|>", "<|endoftext|>"].lazy.compactMap(idOf).first

            return PipelineTokenizer(
                model: model, addedTokens: added, spacePrefix: .none, normalizer: normalizer, preTokenizer: steps,
                decoder: decoder ?? (byteLevel ? .byteLevel : .sentencePiece(stripLeadingSpace: false)),
                verbatimIDs: Set(added.map(\.id)), bos: bos, eos: eos, unknown: unknown,
                addsBOS: addsBOS, addsEOS: addsEOS, specialTokenIDs: specials)
        }

        func pattern(_ o: [String: Any], _ field: String) throws -> (regex: String?, literal: String?) {
            let p = try object(o["pattern"], "\(field).pattern")
            return (p["Regex"] as? String, p["String"] as? String)
        }

        func normalizer(_ o: [String: Any], _ field: String) throws -> Normalizer {
            switch try type(o, field) {
            case "Prepend": return .prepend(try string(o, "prepend", field))
            case "Replace":
                let (regex, literal) = try pattern(o, field)
                guard let literal else { throw TokenizerError.unsupported(file: path, field: "\(field).pattern.Regex", value: regex ?? "?") }
                return .replace(literal, try string(o, "content", field))
            case "NFC": return .nfc
            case "NFKC": return .nfkc
            case "NFD": return .nfd
            case "NFKD": return .nfkd
            case "Lowercase": return .lowercase
            case "Sequence":
                let list = (o["normalizers"] as? [[String: Any]]) ?? []
                return .sequence(try list.enumerated().map { try normalizer($1, "\(field).normalizers[\($0)]") })
            case let t: throw TokenizerError.unsupported(file: path, field: "\(field).type", value: t)
            }
        }

        mutating func preTokenizer(_ o: [String: Any], _ field: String) throws -> [PreTokenizerStep] {
            switch try type(o, field) {
            case "ByteLevel":
                byteLevel = true
                return [.byteLevel(addPrefixSpace: bool(o, "add_prefix_space", true), useRegex: bool(o, "use_regex", true))]
            case "Metaspace":
                let r = try string(o, "replacement", field).unicodeScalars.first ?? "\u{2581}"
                let scheme: PrependScheme
                if let s = o["prepend_scheme"] as? String {
                    guard let v = PrependScheme(rawValue: s) else { throw TokenizerError.unsupported(file: path, field: "\(field).prepend_scheme", value: s) }
                    scheme = v
                } else {
                    scheme = bool(o, "add_prefix_space", true) ? .always : .never
                }
                return [.metaspace(replacement: r, prependScheme: scheme, split: bool(o, "split", true))]
            case "Digits":
                return [.pattern(.digits(individual: bool(o, "individual_digits", false)))]
            case "Split":
                let (regex, literal) = try pattern(o, field)
                let behavior = (o["behavior"] as? String) ?? "Isolated"
                guard behavior == "Isolated", !bool(o, "invert", false) else {
                    throw TokenizerError.unsupported(file: path, field: "\(field).behavior", value: behavior + (bool(o, "invert", false) ? " (inverted)" : ""))
                }
                guard let source = regex ?? literal.map(NSRegularExpression.escapedPattern(for:)), let p = SplitPattern.recognise(source) else {
                    throw TokenizerError.unsupported(file: path, field: "\(field).pattern", value: regex ?? literal ?? "?")
                }
                return [.pattern(p)]
            case "Sequence":
                let list = (o["pretokenizers"] as? [[String: Any]]) ?? []
                var out: [PreTokenizerStep] = []
                for (k, x) in list.enumerated() { out += try preTokenizer(x, "\(field).pretokenizers[\(k)]") }
                return out
            case let t: throw TokenizerError.unsupported(file: path, field: "\(field).type", value: t)
            }
        }

        mutating func decoder(_ o: [String: Any], _ field: String) throws -> DecoderRule {
            switch try type(o, field) {
            case "ByteLevel":
                byteLevel = true
                return .byteLevel
            case "Metaspace":
                let scheme = (o["prepend_scheme"] as? String) ?? (bool(o, "add_prefix_space", true) ? "always" : "never")
                return .sentencePiece(stripLeadingSpace: scheme != "never")
            case "Sequence":
                // The SentencePiece chain: Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0).
                let list = (o["decoders"] as? [[String: Any]]) ?? []
                var strip = false
                for (k, d) in list.enumerated() {
                    let t = try type(d, "\(field).decoders[\(k)]")
                    switch t {
                    case "Replace", "ByteFallback", "Fuse": continue
                    case "Strip": strip = ((d["start"] as? NSNumber)?.intValue ?? 0) > 0
                    case "ByteLevel": byteLevel = true; return .byteLevel
                    default: throw TokenizerError.unsupported(file: path, field: "\(field).decoders[\(k)].type", value: t)
                    }
                }
                return .sentencePiece(stripLeadingSpace: strip)
            case "ByteFallback", "Fuse", "Replace": return .sentencePiece(stripLeadingSpace: false)
            case let t: throw TokenizerError.unsupported(file: path, field: "\(field).type", value: t)
            }
        }

        /// The special tokens TemplateProcessing puts before and after a single sequence.
        func template(_ o: [String: Any], _ field: String) throws -> (String?, String?) {
            switch try type(o, field) {
            case "TemplateProcessing":
                let single = (o["single"] as? [[String: Any]]) ?? []
                func specialID(_ item: [String: Any]?) -> String? { (item?["SpecialToken"] as? [String: Any])?["id"] as? String }
                return (specialID(single.first), single.count > 1 ? specialID(single.last) : nil)
            case "ByteLevel":
                return (nil, nil)
            case "Sequence":
                var b: String?, e: String?
                for (k, x) in ((o["processors"] as? [[String: Any]]) ?? []).enumerated() {
                    let (xb, xe) = try template(x, "\(field).processors[\(k)]")
                    b = b ?? xb; e = e ?? xe
                }
                return (b, e)
            case let t: throw TokenizerError.unsupported(file: path, field: "\(field).type", value: t)
            }
        }
    }
}
