import Corpora
import Essentials
import Foundation

/// Calibration windows for the metric scorers, with a record of where they came from (the plan stores the
/// recipe and the SHA-256 of the ids, so a plan names exactly the data it was computed on).
public struct CalibrationData: Sendable, Equatable {
    /// [windows][length] token ids.
    public let windows: [[Int]]
    /// How the windows were made, in words (goes into the plan's options).
    public let recipe: String
    /// sha256 of the ids, decimal and comma-joined in window order (the fixtures' "ids sha256").
    public let sha256: String

    /// Wraps windows made elsewhere; the hash is computed here.
    public init(windows: [[Int]], recipe: String) {
        self.windows = windows
        self.recipe = recipe
        sha256 = SHA256.hex(ids: windows.flatMap { $0 })
    }

    /// Tokens in all windows.
    public var tokenCount: Int { windows.reduce(0) { $0 + $1.count } }

    /// `count` windows of `length` tokens from the C4 train subset (`<dataRoot>/c4/c4-train…first1041docs…`):
    /// each document encoded on its own with the model's BOS rule (`encode`), documents concatenated in groups of
    /// 1,000 and cut into `length`-token blocks (spec §4.1), the blocks shuffled by a seeded Fisher–Yates shuffle
    /// (SplitMix64) and the first `count` taken. Same seed and tokenizer, same windows, on every machine.
    /// - Throws: `CorpusError` when the file is missing or holds fewer than `count` blocks.
    public static func c4Train(dataRoot: URL, count: Int, length: Int, seed: UInt64,
                               encode: (String) throws -> [Int]) throws -> CalibrationData {
        guard length >= 2 else { throw CorpusError.invalidArgument("calibration length \(length) < 2") }
        let path = dataRoot.appendingPathComponent(Dataset.RelativePath.c4Train)
        let documents = try CorpusText.c4Documents(path)
        let windows = try Calibration.sample(documents: documents, count: count, length: length, seed: seed,
                                             source: path.path, encode: encode)
        return CalibrationData(windows: windows, recipe: "c4-train first1041docs: \(count) x \(length) blocks, "
                               + "documents grouped by 1000, seeded shuffle (SplitMix64, seed \(seed))")
    }

    /// The fixtures' Wanda-sp recipe (fixtures README §4): the first 8 documents of the C4 train subset, each
    /// encoded with the model's BOS rule, ids concatenated in file order, the first 1,024 ids cut row-major into
    /// 8 windows of 128.
    public static func fixtureRecipe(dataRoot: URL, encode: (String) throws -> [Int]) throws -> CalibrationData {
        let path = dataRoot.appendingPathComponent(Dataset.RelativePath.c4Train)
        let documents = try CorpusText.c4Documents(path, limit: 8)
        let windows = try Calibration.firstWindows(documents: documents, source: path.path, encode: encode)
        return CalibrationData(windows: windows, recipe: "c4-train first 8 documents, first 1024 ids as 8 x 128 (fixture recipe)")
    }
}
