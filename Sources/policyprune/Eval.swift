import ArgumentParser
import Corpora
import Evaluation
import Foundation
import Tokenization
import Transformer

/// `policyprune eval`: perplexity (and, later, zero-shot accuracy).
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure a model.", subcommands: [Perplexity.self, ZeroShotCommand.self])

    /// `policyprune eval ppl`: the paper's perplexity protocol (algorithm.md §4.4).
    struct Perplexity: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ppl",
            abstract: "Perplexity over non-overlapping windows (text joined with \"\\n\\n\", tokenised once, remainder dropped), or under llama-perplexity's protocol.")

        @OptionGroup var model: ModelOptions
        @OptionGroup var planOptions: PlanOptions
        @Option(help: "Data set: wikitext2, ptb, tinystories, c4, or a text file.") var data = "wikitext2"
        @Option(help: "Window length in tokens (the paper: 128; Wanda/SparseGPT: 2048).") var context = 128
        @Option(help: "Score only the first N windows.") var limitWindows: Int?
        @Option(help: "Windows per forward pass.") var batch = 8
        @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
        @Flag(help: "Print the report as JSON on stdout.") var json = false
        @Flag(help: "Include every window's mean NLL in the JSON report.") var perWindow = false
        @Option(help: ArgumentHelp(
            "paper: non-overlapping windows, every token after the first scored. llama-cpp: llama-perplexity's chunks (BOS over each chunk's first token, second half scored), to compare with llama.cpp on the same file and text (--data FILE, the file llama-perplexity reads with -f).",
            valueName: "protocol")) var `protocol`: PerplexityProtocol = .paper

        /// Which perplexity protocol `eval ppl` runs.
        enum PerplexityProtocol: String, ExpressibleByArgument, CaseIterable {
            case paper
            case llamaCpp = "llama-cpp"
        }

        func validate() throws {
            guard context >= 2 else { throw ValidationError("--context must be at least 2, got \(context)") }
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
            if let l = limitWindows, l < 1 { throw ValidationError("--limit-windows must be at least 1, got \(l)") }
        }

        /// What `--json` prints: the report plus what was measured.
        struct Output: Codable {
            var model: String
            var data: String
            var tokenizer: String
            var report: PerplexityReport
        }

        func run() throws {
            let loaded = try model.load()
            let scorer = try planOptions.prepared(loaded, modelPath: model.model)
            let tokenizer = try model.loadTokenizer(loaded)
            let dataset = try Dataset(data)
            let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            let t0 = Date()
            let text = try dataset.text(dataRoot: root)
            let tokens = tokenizer.encode(text, addSpecialTokens: true)
            note(String(format: "%@: %d characters -> %d tokens in %.2f s (BOS %@)", dataset.description, text.unicodeScalars.count, tokens.count,
                        Date().timeIntervalSince(t0), tokenizer.addsBOS ? "added" : "not added"))
            if self.protocol == .llamaCpp {
                try runLlamaCpp(scorer: scorer, tokens: tokens, bos: tokenizer.addsBOS ? tokenizer.bosTokenID : nil,
                                data: dataset.description)
                return
            }
            let total = limitWindows.map { min($0, tokens.count / context) } ?? tokens.count / context
            let bar = ProgressBar("ppl", total: total)
            let report = try Evaluation.Perplexity.evaluate(
                scorer: scorer, tokens: tokens, context: context, batchSize: batch, limitWindows: limitWindows,
                keepWindowNLL: perWindow, source: dataset.description
            ) { p in
                bar.update(p.windowsDone, rate: p.tokensPerSecond, unit: "tok")
            }
            if json {
                try printJSON(Output(model: model.model, data: dataset.description,
                                     tokenizer: tokenizer.addsBOS ? "BOS added" : "no BOS", report: report))
                return
            }
            print("model            \(model.model)")
            print("data             \(dataset.description), \(report.totalTokens) tokens, \(context)-token windows")
            print("windows          \(report.windows) (\(report.droppedTokens) tokens dropped), \(report.predictedTokens) predicted tokens")
            print(String(format: "mean window NLL  %.6f", report.meanWindowNLL))
            print(String(format: "perplexity       %.4f (exp of mean window NLL)", report.pplWindowMean))
            print(String(format: "perplexity       %.4f (exp of token-weighted NLL)", report.pplTokenMean))
            print(String(format: "speed            %.0f tokens/s, %.1f s", report.tokensPerSecond, report.elapsedSeconds))
        }

        /// What `--json` prints under `--protocol llama-cpp`.
        struct LlamaCppOutput: Codable {
            var model: String
            var data: String
            var protocolName: String
            var report: LlamaCppPerplexityReport
            enum CodingKeys: String, CodingKey { case model, data, protocolName = "protocol", report }
        }

        /// `--protocol llama-cpp`: llama-perplexity's chunks, `--limit-windows` as its `--chunks`.
        private func runLlamaCpp(scorer: LanguageModelScorer, tokens: [Int], bos: Int?, data: String) throws {
            let total = min(limitWindows ?? Int.max, tokens.count / context)
            let bar = ProgressBar("ppl", total: max(total, 1))
            let report = try LlamaCppPerplexity.evaluate(scorer: scorer, tokens: tokens, context: context, bos: bos,
                                                         chunks: limitWindows, batchSize: batch) { p in
                bar.update(p.windowsDone, rate: p.tokensPerSecond, unit: "tok")
            }
            if json {
                try printJSON(LlamaCppOutput(model: model.model, data: data, protocolName: "llama-cpp", report: report))
                return
            }
            print("model            \(model.model)")
            print("data             \(data), \(report.totalTokens) tokens, \(context)-token chunks (llama-perplexity protocol)")
            print("chunks           \(report.chunks), \(report.predictedTokens) predicted tokens (second half of each chunk)")
            print(String(format: "perplexity       %.4f +/- %.5f (llama-perplexity's \"Final estimate\")", report.ppl, report.pplStandardError))
            print(String(format: "time             %.1f s", report.elapsedSeconds))
        }
    }
}
