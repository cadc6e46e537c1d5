import Checkpoints

/// Builds the right `Tokenizer` for each checkpoint format.
public enum TokenizerLoader {
    /// A llama2.c `tokenizer.bin`; `vocabularySize` (from the checkpoint header) limits the records read.
    public static func llama2c(path: String, vocabularySize: Int? = nil) throws -> any Tokenizer {
        try Llama2cTokenizer(path: path, vocabularySize: vocabularySize)
    }

    /// The tokenizer in a GGUF file's `tokenizer.ggml.*` metadata (llama.cpp semantics).
    public static func gguf(_ file: GGUFFile) throws -> any Tokenizer {
        try GGUFTokenizer.build(file)
    }

    /// A Hugging Face `tokenizer.json`. `bosTokenID` / `eosTokenID` (e.g. from `config.json`) override the ids
    /// the file implies; the BOS/EOS rule itself comes from its TemplateProcessing post-processor.
    public static func huggingFace(tokenizerJSON path: String, bosTokenID: Int? = nil, eosTokenID: Int? = nil) throws -> any Tokenizer {
        try HuggingFaceTokenizer.build(path: path, bosTokenID: bosTokenID, eosTokenID: eosTokenID)
    }

    /// The tokenizer a loaded checkpoint points at.
    public static func load(_ source: TokenizerSource) throws -> any Tokenizer {
        switch source {
        case .llama2c(let path): return try llama2c(path: path)
        case .gguf(let file): return try gguf(file)
        case .huggingFaceJSON(let path): return try huggingFace(tokenizerJSON: path)
        case .none: throw TokenizerError.missingField(file: "(checkpoint)", field: "tokenizer (no tokenizer.bin, tokenizer.ggml.* or tokenizer.json found)")
        }
    }
}
