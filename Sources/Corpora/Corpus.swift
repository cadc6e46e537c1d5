import Foundation

/// The evaluation texts, rebuilt exactly as the reference loaders build them (fixtures README "Conventions").
public enum CorpusText {
    /// Hugging Face `wikitext-2-raw-v1` rows from `wiki.test.raw(.gz)`: each line keeps its trailing `"\n"`,
    /// a whitespace-only line becomes `""` (the HF loader's `{"text": row if row.strip() else ""}`).
    public static func wikitext2Rows(_ url: URL) throws -> [String] {
        let text = try TextFiles.string(url)
        return TextFiles.lines(text).map { PythonString.isBlank($0) ? "" : $0 + "\n" }
    }

    /// `"\n\n".join(rows)` over all rows, or over the first `rows` rows (fixtures "first 2000 lines").
    /// All 4,358 rows give 1,294,336 characters; the first 2,000 give 614,961.
    public static func wikitext2(_ url: URL, rows: Int? = nil) throws -> String {
        let all = try wikitext2Rows(url)
        return all.prefix(rows ?? all.count).joined(separator: "\n\n")
    }

    /// The sentences of PTB `ptb.test.txt` as Hugging Face `ptb_text_only` yields them: one per line, each
    /// stripped of its surrounding whitespace (every raw line begins and ends with a space).
    public static func ptbSentences(_ url: URL) throws -> [String] {
        TextFiles.lines(try TextFiles.string(url)).map { PythonString.strip($0) }
    }

    /// PTB evaluation text: the sentences joined with `separator`. The default `"\n\n"` is LLM-Pruner's
    /// `process_data` (`"\n\n".join(samples["sentence"])`, LLMPruner/datasets/ppl_dataset.py); GPTQ/SparseGPT
    /// `get_ptb` join with `" "` instead. Both read HF `ptb_text_only` (LLM-Pruner and SparseGPT its validation
    /// split); this reads the test split, the one stored in shared data.
    public static func ptb(_ url: URL, separator: String = "\n\n") throws -> String {
        try ptbSentences(url).joined(separator: separator)
    }

    /// The TinyStories validation head file as is (stories already separated by blank lines).
    public static func tinyStories(_ url: URL) throws -> String {
        try TextFiles.string(url)
    }

    /// The `text` field of each document of a C4 JSON-lines file (`.jsonl` or `.jsonl.gz`), in file order.
    public static func c4Documents(_ url: URL, limit: Int? = nil) throws -> [String] {
        let records = try TextFiles.jsonLines(url, limit: limit)
        return try records.indices.map { try TextFiles.stringField(records[$0], "text", file: url.path, line: $0 + 1) }
    }

    /// C4 evaluation text: the documents joined with `separator`. Default `"\n\n"` (the separator used for the
    /// other corpora here); SparseGPT/Wanda's C4 perplexity uses `" ".join(valdata[:1100]["text"])` instead, so
    /// pass `" "` to follow them (only 1,025 of those 1,100 documents are stored).
    public static func c4(_ url: URL, separator: String = "\n\n", documents limit: Int? = nil) throws -> String {
        try c4Documents(url, limit: limit).joined(separator: separator)
    }

    /// Any text file (gunzipped when it ends in `.gz`), as is.
    public static func plain(_ url: URL) throws -> String {
        try TextFiles.string(url)
    }
}

/// A perplexity corpus named on the command line: a built-in name or a text file.
public enum Dataset: Equatable, Sendable, CustomStringConvertible {
    /// WikiText-2 raw test, HF rows joined with `"\n\n"`.
    case wikitext2
    /// PTB test, stripped sentences joined with `"\n\n"`.
    case ptb
    /// The TinyStories validation head file as is.
    case tinystories
    /// C4 validation shard 0, the stored first 1,025 documents joined with `"\n\n"`.
    case c4
    /// A plain text file (gunzipped when it ends in `.gz`).
    case file(path: String)

    /// The built-in names, in the order the CLI lists them.
    public static let builtInNames = ["wikitext2", "ptb", "tinystories", "c4"]

    /// Files inside the shared data folder (`<shared>/data`).
    public enum RelativePath {
        public static let wikitext2 = "wikitext2/wiki.test.raw.gz"
        public static let ptb = "ptb/ptb.test.txt"
        public static let tinystories = "tinystories/TinyStories-validation.head-794375B.txt.gz"
        public static let c4Validation = "c4/c4-validation.00000-of-00008.first1025docs.jsonl.gz"
        /// Calibration documents (C4 train shard 0, first 1,041 documents).
        public static let c4Train = "c4/c4-train.00000-of-01024.first1041docs.jsonl.gz"

        /// Every C4 *train* file in `<dataRoot>/c4` (`c4-train.*.jsonl.gz`), relative to `dataRoot`, sorted by name:
        /// the policy-gradient training pool uses all of them, so more train documents dropped there are used
        /// without a code change. Validation files are never in the list.
        public static func c4TrainFiles(dataRoot: URL) -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dataRoot.appendingPathComponent("c4").path)) ?? []
            let train = names.filter { $0.hasPrefix("c4-train.") && $0.hasSuffix(".jsonl.gz") }.sorted().map { "c4/" + $0 }
            return train.isEmpty ? [c4Train] : train
        }
    }

    /// Parses a name (`wikitext2`, `ptb`, `tinystories`, `c4`, case-insensitive) or a path. A bare word that is
    /// neither a known name nor an existing file is rejected, so a typo does not become a "file not found".
    public init(_ nameOrPath: String) throws {
        switch nameOrPath.lowercased() {
        case "wikitext2", "wikitext-2", "wikitext": self = .wikitext2
        case "ptb": self = .ptb
        case "tinystories": self = .tinystories
        case "c4": self = .c4
        default:
            let looksLikePath = nameOrPath.contains("/") || nameOrPath.contains(".")
            guard looksLikePath || FileManager.default.fileExists(atPath: nameOrPath) else {
                throw CorpusError.unknownDataset(name: nameOrPath)
            }
            self = .file(path: nameOrPath)
        }
    }

    /// The short name used in reports (the path for a file).
    public var description: String {
        switch self {
        case .wikitext2: return "wikitext2"
        case .ptb: return "ptb"
        case .tinystories: return "tinystories"
        case .c4: return "c4"
        case .file(let path): return path
        }
    }

    /// Where the data live. Built-in sets are under `dataRoot`; a file path is used as given when it exists,
    /// else looked up under `dataRoot`.
    public func url(dataRoot: URL) -> URL {
        switch self {
        case .wikitext2: return dataRoot.appendingPathComponent(RelativePath.wikitext2)
        case .ptb: return dataRoot.appendingPathComponent(RelativePath.ptb)
        case .tinystories: return dataRoot.appendingPathComponent(RelativePath.tinystories)
        case .c4: return dataRoot.appendingPathComponent(RelativePath.c4Validation)
        case .file(let path):
            if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return URL(fileURLWithPath: path) }
            return dataRoot.appendingPathComponent(path)
        }
    }

    /// The evaluation text, built per the fixture conventions.
    public func text(dataRoot: URL) throws -> String {
        let u = url(dataRoot: dataRoot)
        switch self {
        case .wikitext2: return try CorpusText.wikitext2(u)
        case .ptb: return try CorpusText.ptb(u)
        case .tinystories: return try CorpusText.tinyStories(u)
        case .c4: return try CorpusText.c4(u)
        case .file: return try CorpusText.plain(u)
        }
    }

    /// The calibration documents (C4 train shard 0 prefix), in file order.
    public static func calibrationDocuments(dataRoot: URL, limit: Int? = nil) throws -> [String] {
        try CorpusText.c4Documents(dataRoot.appendingPathComponent(RelativePath.c4Train), limit: limit)
    }
}

/// Finding the shared data folder (`<shared>/data`).
public enum DataRoot {
    /// Resolution order: `explicit` (the CLI's `--data-root`), `$POLICYPRUNE_SHARED/data`,
    /// `<package root>/../shared/data` (package root derived from this source file, valid for a local build),
    /// then `../shared/data` relative to the working directory. The first existing folder wins.
    public static func resolve(explicit: String? = nil,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        if let explicit, !explicit.isEmpty {
            let u = URL(fileURLWithPath: explicit)
            guard isDirectory(u) else { throw CorpusError.dataRootNotFound(tried: [u.path]) }
            return u
        }
        var candidates: [URL] = []
        if let shared = environment["POLICYPRUNE_SHARED"], !shared.isEmpty {
            candidates.append(URL(fileURLWithPath: shared).appendingPathComponent("data"))
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data"))
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .deletingLastPathComponent().appendingPathComponent("shared/data"))
        for c in candidates where isDirectory(c) { return c.standardizedFileURL }
        throw CorpusError.dataRootNotFound(tried: candidates.map(\.path))
    }

    private static func isDirectory(_ u: URL) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: u.path, isDirectory: &isDir) && isDir.boolValue
    }
}
