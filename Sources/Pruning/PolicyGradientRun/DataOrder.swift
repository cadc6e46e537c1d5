import Corpora
import Essentials

/// The order in which calibration blocks are visited: epochs of a seeded Fisher–Yates permutation (SplitMix64),
/// consumed `batchSize` blocks at a time; a partial tail is skipped and a new permutation drawn (like a DataLoader
/// with `drop_last`). The whole state is four numbers, so a checkpoint restores the exact position.
public struct DataOrder: Codable, Sendable, Equatable {
    /// Number of blocks permuted.
    public var blockCount: Int
    /// Epochs started so far (1 after the first batch).
    public var epoch: Int
    /// Position inside the current epoch's permutation.
    public var cursor: Int
    /// The generator as it was before the current epoch's shuffle (the permutation is redrawn from it on resume).
    public var epochGenerator: SplitMix64

    /// Before the first batch.
    public init(blockCount: Int, seed: UInt64) {
        self.blockCount = blockCount
        epoch = 0
        cursor = 0
        epochGenerator = SplitMix64(seed: seed)
    }

    /// The permutation of the current epoch and the generator after drawing it (the next epoch's start).
    public func permutation() -> (order: [Int], next: SplitMix64) {
        var rng = epochGenerator
        var order = Array(0..<blockCount)
        Calibration.shuffle(&order, using: &rng)
        return (order, rng)
    }

    /// The ids of the next `batchSize` blocks, advancing the state. `cache` holds the current permutation so it is
    /// drawn once per epoch. Precondition: `1 ≤ batchSize ≤ blockCount`.
    public mutating func nextBatch(_ batchSize: Int, cache: inout [Int]?) -> [Int] {
        precondition(batchSize >= 1 && batchSize <= blockCount, "batch must fit in the data")
        if epoch == 0 || cursor + batchSize > blockCount {
            if epoch > 0 { epochGenerator = permutation().next }
            epoch += 1
            cursor = 0
            cache = nil
        }
        if cache == nil { cache = permutation().order }
        let ids = Array(cache![cursor..<(cursor + batchSize)])
        cursor += batchSize
        return ids
    }
}
