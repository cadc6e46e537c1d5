import ArgumentParser
import Corpora
import Evaluation
import Foundation
import Tokenization
import Transformer

extension Eval {
    /// `policyprune eval zeroshot`: lm-evaluation-harness 0.4.5 multiple-choice tasks, 0-shot.
    struct ZeroShotCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "zeroshot",
            abstract: "Zero-shot accuracy (acc, acc_norm) scored as lm-evaluation-harness 0.4.5 does.",
            discussion: """
                Tasks: \(ZeroShotTask.allCases.map(\.rawValue).joined(separator: ", ")).
                acc_norm divides each choice's log-likelihood by its length in characters; lm-eval reports it for every
                task except boolq and winogrande (marked * in the table, computed anyway).
                """)

        @OptionGroup var model: ModelOptions
        @OptionGroup var planOptions: PlanOptions
        @Option(help: "Comma-separated tasks (default: all seven).", transform: { try ZeroShotCommand.taskList($0) })
        var tasks: [ZeroShotTask] = ZeroShotTask.allCases
        @Option(help: "Score only the first N examples of each task.") var limit: Int?
        @Option(help: "Most tokens per request (lm-eval max_length; default: the model's context length, at most 2048).")
        var maxLength: Int?
        @Option(help: "Token positions per forward pass (consecutive examples are packed together).")
        var tokensPerPass = 1024
        @Option(help: "The shared folder holding data/ (default: $POLICYPRUNE_SHARED or ../shared).") var shared: String?
        @Flag(help: "Print the reports as JSON on stdout.") var json = false
        @Flag(help: "Include every example's log-likelihoods and decisions in the JSON.") var perExample = false

        /// `--tasks`: the tasks in the order given, without repeats; an unknown name is an error listing the tasks.
        static func taskList(_ text: String) throws -> [ZeroShotTask] {
            try commaSeparated(text) { name in
                do { return try ZeroShotTask(name: name) } catch let error as CorpusError {
                    throw ValidationError(error.description.replacingOccurrences(of: "invalid argument: ", with: ""))
                }
            }
        }

        func validate() throws {
            if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
            guard tokensPerPass >= 1 else { throw ValidationError("--tokens-per-pass must be at least 1, got \(tokensPerPass)") }
            if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2, got \(m)") }
        }

        /// What `--json` prints.
        struct Output: Codable {
            var model: String
            var plan: String?
            var maxLength: Int
            var limit: Int?
            var reports: [ZeroShotReport]
            /// Mean over tasks of acc.
            var meanAcc: Double
            /// Mean over tasks of acc_norm (character-normalised, every task).
            var meanAccNorm: Double

            enum CodingKeys: String, CodingKey {
                case model, plan, limit, reports
                case maxLength = "max_length", meanAcc = "mean_acc", meanAccNorm = "mean_acc_norm"
            }
        }

        func run() throws {
            let selected = tasks
            let root = try DataRoot.resolve(explicit: shared.map { URL(fileURLWithPath: $0).appendingPathComponent("data").path })
            // Read every task first, so a bad data file fails before the slow part.
            var examples: [[MultipleChoiceExample]] = []
            for task in selected { examples.append(try task.load(dataRoot: root, limit: limit)) }

            let loaded = try model.load()
            let tokenizer = try model.loadTokenizer(loaded)
            let prepared = try planOptions.prepared(loaded, modelPath: model.model)
            let scorer = try ModelContinuationScorer(model: prepared, maxLength: maxLength)
            note(String(format: "model loaded in %.1f s; max length %d tokens", loaded.seconds, scorer.maxLength))

            var reports: [ZeroShotReport] = []
            for (task, items) in zip(selected, examples) {
                let bar = ProgressBar(task.rawValue, total: items.count)
                let start = Date()
                let report = try ZeroShot.evaluateBatched(
                    task: task, examples: items, scorer: scorer, tokensPerPass: tokensPerPass,
                    prefixTokenID: tokenizer.bosTokenID ?? tokenizer.eosTokenID,
                    keepResults: perExample, encode: { tokenizer.encode($0, addSpecialTokens: false) }
                ) { done, _ in
                    // The bar rounds the rate to whole examples/s; below 10/s also show examples per minute.
                    let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-9)
                    bar.update(done, rate: rate, unit: "ex", extra: rate < 10 ? String(format: "(%.0f ex/min)", rate * 60) : "")
                }
                reports.append(report)
            }
            let meanAcc = ZeroShot.mean(reports.map(\.acc)), meanAccNorm = ZeroShot.mean(reports.map(\.accNorm))
            if json {
                try printJSON(Output(model: model.model, plan: planOptions.plan, maxLength: scorer.maxLength, limit: limit, reports: reports,
                                     meanAcc: meanAcc, meanAccNorm: meanAccNorm))
                return
            }
            print("model  \(model.model)\(planOptions.plan.map { "  plan \($0)" } ?? "")\(limit.map { "  (first \($0) examples per task)" } ?? "")")
            print(Self.table(reports, meanAcc: meanAcc, meanAccNorm: meanAccNorm))
        }

        /// The final table: per task acc, acc_norm, their stderr, n, speed; then the mean over tasks.
        static func table(_ reports: [ZeroShotReport], meanAcc: Double, meanAccNorm: Double) -> String {
            func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
                let fill = String(repeating: " ", count: max(0, width - s.count))
                return left ? s + fill : fill + s
            }
            func number(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
            func row(_ cells: [String]) -> String {
                pad(cells[0], 14, left: true) + zip(cells.dropFirst(), [7, 8, 8, 10, 8, 8, 8]).map { " " + pad($0, $1) }.joined()
            }
            var lines = [row(["task", "n", "acc", "stderr", "acc_norm", "stderr", "ex/s", "time"])]
            for r in reports {
                lines.append(row([r.task, "\(r.examples)", number(r.acc), number(r.accStderr),
                                  number(r.accNorm) + (r.accNormIsLmEvalMetric ? " " : "*"), number(r.accNormStderr),
                                  String(format: "%.2f", Double(r.examples) / max(r.elapsedSeconds, 1e-9)),
                                  ProgressBar.clock(r.elapsedSeconds)]))
            }
            lines.append(row(["mean", "", number(meanAcc), "", number(meanAccNorm) + " ", "", "", ""]))
            if reports.contains(where: { !$0.accNormIsLmEvalMetric }) {
                lines.append("* acc_norm is not an lm-eval metric for this task (lm-eval reports acc only)")
            }
            return lines.joined(separator: "\n")
        }
    }
}
