import Foundation
import Kernels

/// How the forwards of a step (and the masks of a held-out evaluation) are shared among the ranks of an
/// `mpirun -np N` run, so that it ends byte-identical to the one-rank run.
///
/// Every rank draws every mask from the same generator in the same order, so generator states never diverge. Value
/// `i` belongs to rank `i mod N`, which alone computes it. One `Communicator.sum` of a vector holding each rank's own
/// values and −0.0 everywhere else then gives every rank all the values bit for bit: −0.0 is the exact identity of
/// IEEE addition (x + −0.0 == x for every x, +0.0 and −0.0 included, and NaN stays NaN), so the order in which
/// MPI adds the ranks' vectors cannot change a bit. Every rank then makes the identical update; no scores travel.
public struct RankShare {
    /// The ranks.
    public let communicator: Communicator

    /// Shares work over `communicator`.
    public init(_ communicator: Communicator) { self.communicator = communicator }

    /// The rank that computes value `index` of a collective.
    public static func owner(of index: Int, ranks: Int) -> Int { index % ranks }

    /// Whether this rank computes value `index`.
    public func owns(_ index: Int) -> Bool { Self.owner(of: index, ranks: communicator.size) == communicator.rank }

    /// This rank's contribution to the sum: `values[i]` where it owns `i`, −0.0 elsewhere.
    public static func contribution(_ values: [Double?]) -> [Double] { values.map { $0 ?? -0.0 } }

    /// `compute(i)` for every `i` in `0..<count`, each evaluated on its owner only (in increasing `i`) and known to
    /// every rank afterwards; `local()` (read after the computations, e.g. seconds spent) is summed over the ranks.
    public func values(count: Int, local: () -> [Double] = { [] }, compute: (Int) throws -> Double) throws
        -> (values: [Double], summedLocal: [Double]) {
        var own = [Double?](repeating: nil, count: count)
        for i in 0..<count where owns(i) { own[i] = try compute(i) }
        let extra = local()
        let summed = try communicator.sum(Self.contribution(own) + extra)
        return (Array(summed[..<count]), Array(summed[count...]))
    }
}
