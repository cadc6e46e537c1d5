import ArgumentParser
import Foundation
import Tokenization
import Transformer

/// `policyprune generate`: continues a prompt with the KV cache.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate a continuation of a prompt.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var planOptions: PlanOptions
    @Option(help: "The prompt text.") var prompt: String
    @Option(help: "Maximum new tokens.") var maxTokens = 64
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Float = 0
    @Option(help: "Nucleus sampling mass in (0, 1].") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 42
    @Flag(help: "Print JSON (prompt ids, generated ids and text).") var json = false

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be >= 0, got \(maxTokens)") }
        guard temperature >= 0, temperature.isFinite else { throw ValidationError("--temperature must be >= 0, got \(temperature)") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
    }

    struct Output: Codable {
        var promptIDs: [Int]
        var generatedIDs: [Int]
        var text: String
        var tokensPerSecond: Double
    }

    func run() throws {
        let loaded = try model.load()
        let tokenizer = try model.loadTokenizer(loaded)
        let prepared = try planOptions.prepared(loaded, modelPath: model.model)
        let ids = tokenizer.encode(prompt, addSpecialTokens: true)
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens") }
        var cache = KVCache(model: prepared, capacity: ids.count + maxTokens)
        var sampler = Sampler(temperature: temperature, topP: topP, seed: seed)
        var generated = [Int]()
        let t0 = Date()
        if !json { FileHandle.standardOutput.write(prompt.data(using: .utf8)!) }
        var logits = try prepared.extend(ids, cache: &cache)
        var printed = ""
        while generated.count < maxTokens {
            let next = sampler.next(logits)
            if let eos = tokenizer.eosTokenID, next == eos { break }
            generated.append(next)
            if !json {
                // Print the newly completed text (decoding the whole continuation keeps multi-byte characters whole).
                let text = tokenizer.decode(generated)
                if text.hasPrefix(printed) {
                    FileHandle.standardOutput.write(String(text.dropFirst(printed.count)).data(using: .utf8)!)
                    printed = text
                }
            }
            if generated.count == maxTokens { break }
            logits = try prepared.extend([next], cache: &cache)
        }
        let seconds = Date().timeIntervalSince(t0)
        let rate = Double(generated.count) / max(seconds, 1e-9)
        if json {
            try printJSON(Output(promptIDs: ids, generatedIDs: generated, text: tokenizer.decode(generated), tokensPerSecond: rate))
        } else {
            print("")
            note(String(format: "%d tokens in %.2f s (%.1f tokens/s)", generated.count, seconds, rate))
        }
    }
}
