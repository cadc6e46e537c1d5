import Essentials
import Foundation

/// One multiple-choice example as lm-evaluation-harness 0.4.5 builds its loglikelihood requests (0-shot):
/// request i is (`contexts[i]`, `continuations[i]`).
public struct MultipleChoiceExample: Codable, Sendable, Equatable {
    /// Index in the split (lm-eval `doc_id`).
    public let docID: Int
    /// Request contexts, one per choice (all equal except for WinoGrande).
    public let contexts: [String]
    /// Request continuations, one per choice (target delimiter `" "` + choice; WinoGrande: all equal).
    public let continuations: [String]
    /// The task's `doc_to_choice` strings; their lengths in code points normalise `acc_norm`.
    /// (For WinoGrande these are the contexts.)
    public let choices: [String]
    /// Index of the correct choice.
    public let gold: Int

    /// `len(choice)` per choice, as Python counts (code points).
    public var choiceLengths: [Int] { choices.map { $0.unicodeScalars.count } }
}

/// The zero-shot tasks of the paper (spec §4.4), read from the shared data files with lm-eval 0.4.5's templates.
public enum ZeroShotTask: String, CaseIterable, Codable, Sendable {
    case piqa, hellaswag, winogrande
    case arcEasy = "arc_easy"
    case arcChallenge = "arc_challenge"
    case boolq, openbookqa

    /// Parses lm-eval's task name (`arc_easy`, ...).
    public init(name: String) throws {
        guard let task = ZeroShotTask(rawValue: name.lowercased()) else {
            throw CorpusError.invalidArgument("unknown zero-shot task '\(name)' (expected \(Self.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self = task
    }

    /// The split lm-eval evaluates.
    public var split: String {
        switch self {
        case .piqa, .hellaswag, .winogrande, .boolq: return "validation"
        case .arcEasy, .arcChallenge, .openbookqa: return "test"
        }
    }

    /// Whether lm-eval's task config reports `acc_norm` (BoolQ and WinoGrande report only `acc`).
    public var lmEvalReportsAccNorm: Bool { self != .boolq && self != .winogrande }

    /// Data files under the shared data root.
    public var relativePaths: [String] {
        switch self {
        case .piqa: return ["piqa/valid.jsonl", "piqa/valid-labels.lst"]
        case .hellaswag: return ["hellaswag/hellaswag_val.jsonl.gz"]
        case .winogrande: return ["winogrande/winogrande_xl-validation.jsonl"]
        case .arcEasy: return ["arc/ARC-Easy-Test.jsonl"]
        case .arcChallenge: return ["arc/ARC-Challenge-Test.jsonl"]
        case .boolq: return ["boolq/superglue-BoolQ-val.jsonl.gz"]
        case .openbookqa: return ["openbookqa/test.jsonl"]
        }
    }

    /// The examples in split order (the first `limit` when given), with lm-eval's request strings.
    public func load(dataRoot: URL, limit: Int? = nil) throws -> [MultipleChoiceExample] {
        let urls = relativePaths.map { dataRoot.appendingPathComponent($0) }
        let file = urls[0].path
        let records = try TextFiles.numberedJSONLines(urls[0], limit: limit.map { max($0, 0) })
        var labels: [Substring] = []
        if self == .piqa {
            labels = TextFiles.lines(try TextFiles.string(urls[1]))
            guard labels.count >= records.count else {
                throw CorpusError.corrupt(file: urls[1].path, reason: "\(labels.count) labels for \(records.count) examples")
            }
        }
        return try records.enumerated().map { i, numbered in
            let r = Record(fields: numbered.record, file: file, line: numbered.line)
            switch self {
            case .piqa: return try Self.piqa(r, label: labels[i], labelFile: urls[1].path, index: i)
            case .hellaswag: return try Self.hellaswag(r, index: i)
            case .winogrande: return try Self.winogrande(r, index: i)
            case .arcEasy, .arcChallenge: return try Self.arc(r, index: i)
            case .boolq: return try Self.boolq(r, index: i)
            case .openbookqa: return try Self.openbookqa(r, index: i)
            }
        }
    }

    // MARK: per-task templates (lm-eval 0.4.5 task YAMLs; target delimiter " ")

    /// `"Question: {goal}\nAnswer:"` + `" {sol}"`, label from `valid-labels.lst`.
    private static func piqa(_ r: Record, label: Substring, labelFile: String, index: Int) throws -> MultipleChoiceExample {
        let goal = try r.string("goal")
        let choices = [try r.string("sol1"), try r.string("sol2")]
        guard let gold = Int(label.trimmingCharacters(in: .whitespaces)), (0...1).contains(gold) else {
            throw CorpusError.badRecord(file: labelFile, line: index + 1, reason: "label '\(label)' is not 0 or 1")
        }
        return uniform(index, context: "Question: \(goal)\nAnswer:", choices: choices, gold: gold)
    }

    /// lm-eval `hellaswag/utils.py`: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
    /// choices = preprocess(ending).
    private static func hellaswag(_ r: Record, index: Int) throws -> MultipleChoiceExample {
        let ctx = try r.string("ctx_a") + " " + PythonString.capitalize(try r.string("ctx_b"))
        let query = hellaswagPreprocess(try r.string("activity_label") + ": " + ctx)
        let choices = try r.strings("endings").map(hellaswagPreprocess)
        let gold = try r.integer("label")
        return try checked(uniform(index, context: query, choices: choices, gold: gold), r)
    }

    /// `preprocess` of lm-eval's HellaSwag: strip; `" [title]"` → `". "`; remove `\[.*?\]`; `"  "` → `" "`.
    public static func hellaswagPreprocess(_ text: String) -> String {
        var s = PythonString.strip(text)
        s = PythonString.replace(s, " [title]", ". ")
        s = removeBracketed(s)
        return PythonString.replace(s, "  ", " ")
    }

    /// `re.sub("\\[.*?\\]", "", s)`: each `[` up to the nearest `]` on the same line (`.` excludes `"\n"`).
    static func removeBracketed(_ s: String) -> String {
        let bytes = Array(s.utf8)  // "[", "]" and "\n" are ASCII, so bytes stand for code points here
        guard bytes.contains(UInt8(ascii: "[")) else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "[") {
                var j = i + 1
                while j < bytes.count && bytes[j] != UInt8(ascii: "]") && bytes[j] != 0x0A { j += 1 }
                if j < bytes.count && bytes[j] == UInt8(ascii: "]") {
                    i = j + 1
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// lm-eval `winogrande/preprocess_winogrande.py` (partial scoring): choices = sentence up to the blank + each
    /// option (these are the contexts), continuation = `" "` + the rest of the sentence after the blank, stripped.
    private static func winogrande(_ r: Record, index: Int) throws -> MultipleChoiceExample {
        let sentence = Array(try r.string("sentence").unicodeScalars)
        guard let blank = sentence.firstIndex(of: "_") else { throw r.bad("sentence has no '_' blank") }
        let prefix = String(String.UnicodeScalarView(sentence[..<blank]))
        let target = PythonString.strip(String(String.UnicodeScalarView(sentence[(blank + 1)...])))
        let options = [try r.string("option1"), try r.string("option2")]
        let answer = try r.string("answer")
        guard let gold = ["1": 0, "2": 1][answer] else { throw r.bad("answer '\(answer)' is not \"1\" or \"2\"") }
        let contexts = options.map { prefix + $0 }
        return MultipleChoiceExample(docID: index, contexts: contexts, continuations: [String](repeating: " " + target, count: 2),
                                     choices: contexts, gold: gold)
    }

    /// `"Question: {question}\nAnswer:"` + `" {choice}"`; gold = index of `answerKey` among the choice labels.
    private static func arc(_ r: Record, index: Int) throws -> MultipleChoiceExample {
        let (stem, texts, labels) = try questionAndChoices(r)
        let key = try r.string("answerKey")
        guard let gold = labels.firstIndex(of: key) else { throw r.bad("answerKey '\(key)' not among labels \(labels)") }
        return uniform(index, context: "Question: \(stem)\nAnswer:", choices: texts, gold: gold)
    }

    /// `"{question_stem}"` + `" {choice}"`; gold = index of `answerKey.lstrip()`.
    private static func openbookqa(_ r: Record, index: Int) throws -> MultipleChoiceExample {
        let (stem, texts, labels) = try questionAndChoices(r)
        let key = String(try r.string("answerKey").unicodeScalars.drop(while: PythonString.isWhitespace))
        guard let gold = labels.firstIndex(of: key) else { throw r.bad("answerKey '\(key)' not among labels \(labels)") }
        return uniform(index, context: stem, choices: texts, gold: gold)
    }

    /// SuperGLUE BoolQ: `"{passage}\nQuestion: {question}?\nAnswer:"` + `" no"` / `" yes"`; label `"false"`/`"true"`
    /// (strings in this copy) or a JSON bool / 0-1 number → 0 / 1.
    private static func boolq(_ r: Record, index: Int) throws -> MultipleChoiceExample {
        let context = "\(try r.string("passage"))\nQuestion: \(try r.string("question"))?\nAnswer:"
        let gold: Int
        switch r.fields["label"] {
        case .string("true")?, .bool(true)?, .number(1)?: gold = 1
        case .string("false")?, .bool(false)?, .number(0)?: gold = 0
        default: throw r.bad("label is not true/false")
        }
        return uniform(index, context: context, choices: ["no", "yes"], gold: gold)
    }

    /// ARC / OpenBookQA original layout: `question.stem`, `question.choices[{text, label}]`.
    private static func questionAndChoices(_ r: Record) throws -> (String, [String], [String]) {
        guard let question = r.fields["question"]?.object else { throw r.bad("missing object field 'question'") }
        guard let stem = question["stem"]?.string else { throw r.bad("missing string field 'question.stem'") }
        guard let choices = question["choices"]?.array, !choices.isEmpty else { throw r.bad("missing 'question.choices'") }
        var texts: [String] = [], labels: [String] = []
        for c in choices {
            guard let text = c["text"]?.string, let label = c["label"]?.string else { throw r.bad("choice without text/label") }
            texts.append(text)
            labels.append(label)
        }
        return (stem, texts, labels)
    }

    private static func uniform(_ index: Int, context: String, choices: [String], gold: Int) -> MultipleChoiceExample {
        MultipleChoiceExample(docID: index, contexts: [String](repeating: context, count: choices.count),
                              continuations: choices.map { " " + $0 }, choices: choices, gold: gold)
    }

    private static func checked(_ e: MultipleChoiceExample, _ r: Record) throws -> MultipleChoiceExample {
        guard e.choices.indices.contains(e.gold) else { throw r.bad("label \(e.gold) out of range for \(e.choices.count) choices") }
        return e
    }

    /// A JSON record with its file and line, for errors.
    private struct Record {
        let fields: [String: JSONValue]
        let file: String
        let line: Int

        func bad(_ reason: String) -> CorpusError { .badRecord(file: file, line: line, reason: reason) }
        func string(_ key: String) throws -> String { try TextFiles.stringField(fields, key, file: file, line: line) }
        func strings(_ key: String) throws -> [String] {
            guard let a = fields[key]?.array else { throw bad("missing array field '\(key)'") }
            return try a.map { guard let s = $0.string else { throw bad("non-string element in '\(key)'") }; return s }
        }
        func integer(_ key: String) throws -> Int {
            switch fields[key] {
            case .number(let n)? where n == n.rounded(): return Int(n)
            case .string(let s)?: if let v = Int(s) { return v }
            default: break
            }
            throw bad("missing integer field '\(key)'")
        }
    }
}
