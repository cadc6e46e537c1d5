import XCTest
import Checkpoints
import Transformer
@testable import Pruning

/// `--channel-multiple`: every layer keeps a multiple of N MLP channels, never more in all than the unaligned plan
/// (the budget still met, at most N − 1 channels below it), each layer its highest-priority channels.
final class ChannelAlignmentTests: XCTestCase {
    func config(widths: [Int]) -> ModelConfig {
        ModelConfig(architecture: "llama", hiddenSize: 8, vocabSize: 16,
                    layers: widths.map { LayerSpec(queryHeads: 2, kvHeads: 2, headDim: 4, ffnDim: $0) },
                    normEpsilon: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, contextLength: 16)
    }

    func testLargestRemainderMeetsTheBudget() {
        let widths = [64, 64, 64, 64, 60]
        let cfg = config(widths: widths)
        // Kept counts 45, 38, 64 (all), 10, 41 (dense width 60 is not a multiple of 8: left as is).
        let counts = [45, 38, 64, 10, 41]
        let priority = widths.map { n in (0..<n).map { Double(($0 * 37) % n) } }
        let mask = StructureMask(layers: zip(counts, priority).map { c, p in
            let order = p.indices.sorted { p[$0] > p[$1] }
            return StructureMask.Layer(keptKVGroups: [0, 1], keptChannels: order.prefix(c).sorted())
        })
        let aligned = mask.aligningMLPChannels(to: 8, priority: priority, config: cfg)
        let kept = aligned.layers.map(\.keptChannels.count)
        // floor: 40, 32, -, 8, -  → remainders 5, 6, 2 → 13 free → one block of 8 to layer 1 (remainder 6).
        XCTAssertEqual(kept, [40, 40, 64, 8, 41])
        XCTAssertLessThanOrEqual(kept.reduce(0, +), counts.reduce(0, +))
        XCTAssertGreaterThan(kept.reduce(0, +), counts.reduce(0, +) - 8)
        for l in [0, 1, 3] {
            XCTAssertEqual(kept[l] % 8, 0)
            let p = priority[l]
            let minKept = aligned.layers[l].keptChannels.map { p[$0] }.min()!
            let maxPruned = Set(0..<widths[l]).subtracting(aligned.layers[l].keptChannels).map { p[$0] }.max()!
            XCTAssertGreaterThan(minKept, maxPruned, "layer \(l) keeps its highest-priority channels")
        }
        XCTAssertEqual(aligned.layers[2], mask.layers[2])
        XCTAssertEqual(aligned.layers[4], mask.layers[4])
        XCTAssertEqual(mask.aligningMLPChannels(to: 1, priority: priority, config: cfg), mask, "N = 1 is off")
    }
}
