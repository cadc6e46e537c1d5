// Tokenization module: see design.md §3. Text ⇄ token ids for llama2.c, GGUF and Hugging Face tokenizers.

/// A text ⇄ token-id mapping with the model's own special-token rules.
///
/// `encode(_:addSpecialTokens:)` with `false` follows llama.cpp `add_special=false, parse_special=false`:
/// no BOS/EOS is added and special-token text (`<s>`, `<|im_start|>`) is tokenized as plain text.
/// With `true` the model's BOS/EOS rule (`addsBOS`, `addsEOS`) is applied.
public protocol Tokenizer: Sendable {
    /// Number of token ids (the embedding rows the model needs).
    var vocabularySize: Int { get }
    /// The beginning-of-sequence id, if the tokenizer has one.
    var bosTokenID: Int? { get }
    /// The end-of-sequence id, if the tokenizer has one.
    var eosTokenID: Int? { get }
    /// The unknown-token id, if the tokenizer has one.
    var unknownTokenID: Int? { get }
    /// Whether the model's rule prepends BOS (`encode(_, addSpecialTokens: true)`).
    var addsBOS: Bool { get }
    /// Whether the model's rule appends EOS.
    var addsEOS: Bool { get }
    /// Ids of control/special tokens (BOS, EOS, chat markers, ...), ascending.
    var specialTokenIDs: [Int] { get }

    /// Token ids for `text`. `addSpecialTokens` applies the BOS/EOS rule; `parseSpecial` lets special-token
    /// text in `text` become the special id (Hugging Face default) instead of being tokenized as plain text.
    func encode(_ text: String, addSpecialTokens: Bool, parseSpecial: Bool) -> [Int]
    /// The text of `ids`: the inverse of `encode(_, addSpecialTokens: true)` (a leading BOS / trailing EOS
    /// added by the model's rule is dropped; other special tokens are written as their text).
    func decode(_ ids: [Int]) -> String
    /// The stored text of one token as the vocabulary writes it (e.g. `"▁the"`, `"Ġthe"`, `"<0x0A>"`);
    /// invalid UTF-8 is replaced. Out-of-range ids give `""`.
    func piece(_ id: Int) -> String
}

extension Tokenizer {
    /// Token ids for `text`, special-token text treated as plain text (llama.cpp `parse_special=false`).
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        encode(text, addSpecialTokens: addSpecialTokens, parseSpecial: false)
    }
}

/// Everything that can be wrong when loading a tokenizer. Every case names the file and the field.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case truncated(file: String, field: String, offset: Int, needed: Int, available: Int)
    case missingField(file: String, field: String)
    case badValue(file: String, field: String, value: String, reason: String)
    case unsupported(file: String, field: String, value: String)

    /// A one-line message naming the file and the field.
    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read tokenizer: \(r)"
        case .truncated(let f, let field, let o, let n, let a):
            return "\(f): truncated at \(field) (offset \(o)): needs \(n) bytes, only \(a) available"
        case .missingField(let f, let field): return "\(f): missing tokenizer field '\(field)'"
        case .badValue(let f, let field, let v, let r): return "\(f): tokenizer field '\(field)' has bad value \(v): \(r)"
        case .unsupported(let f, let field, let v): return "\(f): unsupported \(field) '\(v)'"
        }
    }
}
