import ArgumentParser
import Checkpoints
import Foundation
import Kernels
import Tokenization
import Transformer

/// `--model`: a llama2.c `.bin`, a `.gguf` file, or a Hugging Face directory.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: llama2.c .bin (tokenizer.bin beside it), .gguf, or a Hugging Face directory.")
    var model: String

    /// A loaded model with its tokenizer.
    struct Loaded {
        /// The path given to the loader.
        let path: String
        /// The tokenizer that goes with the model.
        let tokenizer: TokenizerSource
        let model: LanguageModel
        let seconds: Double

        /// The tokenizer that goes with the model.
        func loadTokenizer() throws -> any Tokenizer { try TokenizerLoader.load(tokenizer) }
    }

    /// Loads the model. The checkpoint's canonical weights are handed over to the `LanguageModel` (not kept here), so
    /// the process holds one copy of the weights.
    func load() throws -> Loaded { try Self.load(path: model) }

    /// Loads the model at `path` (as `load()` does for `--model`).
    static func load(path model: String) throws -> Loaded {
        let t0 = Date()
        var checkpoint = try CheckpointLoader.load(path: model)
        let weights = checkpoint.weights
        checkpoint.weights = ModelWeights(tokenEmbedding: [], layers: [], finalNorm: [], head: nil)
        let lm = try LanguageModel(config: checkpoint.config, weights: consume weights, file: model)
        if F32GEMM.choice.notable { note("note: F32 GEMMs: \(F32GEMM.choice.reason)") }
        return Loaded(path: checkpoint.path, tokenizer: checkpoint.tokenizer, model: lm, seconds: Date().timeIntervalSince(t0))
    }

    /// The tokenizer that goes with a loaded model.
    func loadTokenizer(_ loaded: Loaded) throws -> any Tokenizer { try loaded.loadTokenizer() }

    /// The tokenizer alone, without reading the weights.
    func loadTokenizerOnly() throws -> any Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) else { throw CheckpointError.fileNotFound(file: model) }
        let source: TokenizerSource
        if isDirectory.boolValue {
            let json = (model as NSString).appendingPathComponent("tokenizer.json")
            if FileManager.default.fileExists(atPath: json) {
                source = .huggingFaceJSON(json)
            } else {
                source = CheckpointLoader.llama2cTokenizer(in: model, excluding: nil).map(TokenizerSource.llama2c) ?? .none
            }
        } else if model.lowercased().hasSuffix(".gguf") {
            source = .gguf(try GGUFFile(path: model))
        } else {
            let folder = (model as NSString).deletingLastPathComponent
            source = CheckpointLoader.llama2cTokenizer(in: folder.isEmpty ? "." : folder,
                                                       excluding: (model as NSString).lastPathComponent).map(TokenizerSource.llama2c) ?? .none
        }
        return try TokenizerLoader.load(source)
    }
}

/// Prints a value as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(value)
    print(String(decoding: data, as: UTF8.self))
}
