import ArgumentParser
import Foundation
import Tokenization

/// `policyprune tokenize`: shows how a model's tokenizer splits text.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tokenize text with a model's tokenizer (pieces, or ids with --ids).")

    @OptionGroup var model: ModelOptions
    @Option(help: "Text to tokenize.") var text: String?
    @Option(help: "File whose contents to tokenize.") var file: String?
    @Flag(help: "Print token ids (space-separated) instead of pieces.") var ids = false
    @Flag(help: "Do not add the model's BOS/EOS tokens.") var noSpecial = false
    @Flag(help: "Print JSON: ids, pieces, count.") var json = false

    func validate() throws {
        if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text or --file") }
    }

    struct Output: Codable {
        var count: Int
        var ids: [Int]
        var pieces: [String]
    }

    func run() throws {
        let source: String
        if let text {
            source = text
        } else {
            let path = file!
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("\(path): file not found") }
            guard let s = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("\(path): not UTF-8 text") }
            source = s
        }
        let tokenizer = try model.loadTokenizerOnly()
        let t0 = Date()
        let out = tokenizer.encode(source, addSpecialTokens: !noSpecial)
        let seconds = Date().timeIntervalSince(t0)
        if json {
            try printJSON(Output(count: out.count, ids: out, pieces: out.map { tokenizer.piece($0) }))
        } else if ids {
            print(out.map(String.init).joined(separator: " "))
        } else {
            print(out.map { "\($0)\t\(tokenizer.piece($0).debugDescription)" }.joined(separator: "\n"))
        }
        note(String(format: "%d tokens, %d bytes in %.3f s", out.count, source.utf8.count, seconds))
    }
}
