import Checkpoints
import FixtureSupport
import Foundation
import Tokenization
import Transformer

/// The two shared models with their tokenizers, loaded once per test bundle. Missing files fail the test
/// (`Shared.url` throws), they never skip.
struct TestModel {
    let model: LanguageModel
    let tokenizer: any Tokenizer
    let path: String

    static let stories260KPath = "models/stories260K/stories260K.bin"
    static let smolLM2Path = "models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf"

    nonisolated(unsafe) private static var cache: [String: TestModel] = [:]
    private static let lock = NSLock()

    static func load(_ relative: String) throws -> TestModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[relative] { return m }
        let url = try Shared.url(relative)
        let checkpoint = try CheckpointLoader.load(path: url.path)
        let model = try LanguageModel(config: checkpoint.config, weights: checkpoint.weights, file: url.path)
        let m = TestModel(model: model, tokenizer: try TokenizerLoader.load(checkpoint.tokenizer), path: url.path)
        cache[relative] = m
        return m
    }

    static func stories260K() throws -> TestModel { try load(stories260KPath) }
    static func smolLM2() throws -> TestModel { try load(smolLM2Path) }

    /// The shared data folder (fails when missing).
    static func dataRoot() throws -> URL { try Shared.url("data") }
}
