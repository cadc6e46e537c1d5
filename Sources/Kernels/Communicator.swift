import CBLAS
import Foundation

/// The processes that share one run, and the two collectives a run needs. Every rank calls the collectives in the
/// same order with the same sizes; each returns the same value on every rank.
public protocol Communicator: AnyObject {
    /// This process's rank in 0..<size; rank 0 alone writes files and prints.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// Element-wise sum of `values` over every rank (every rank passes the same count).
    func sum(_ values: [Double]) throws -> [Double]
    /// Rank `root`'s `bytes` on every rank (the others' argument is ignored; their lengths need not match).
    func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8]
}

extension Communicator {
    /// Whether this is rank 0, the one that writes the run folder.
    public var isRoot: Bool { rank == 0 }

    /// Rank 0's `values` on every rank.
    public func broadcast(_ values: [Double], from root: Int) throws -> [Double] {
        let bytes = values.withUnsafeBytes { Array($0) }
        let received = try broadcast(bytes, from: root)
        guard received.count % MemoryLayout<Double>.size == 0 else { throw KernelError.mpiFailed(call: "broadcast of doubles", code: -1) }
        return received.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }
}

/// One process, no MPI: the collectives return their input.
public final class SingleProcess: Communicator {
    /// The one rank.
    public init() {}
    /// Always 0.
    public var rank: Int { 0 }
    /// Always 1.
    public var size: Int { 1 }
    /// `values` unchanged.
    public func sum(_ values: [Double]) throws -> [Double] { values }
    /// `bytes` unchanged.
    public func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8] { bytes }
}

/// MPI_COMM_WORLD of Open MPI's libmpi, loaded at run time through the C boundary (ppmpi.c) only when a launcher
/// started the process, so the single-process binary needs no MPI.
public final class MPIWorld: Communicator {
    /// This process's rank.
    public let rank: Int
    /// The world size.
    public let size: Int
    /// The library that was loaded.
    public let libraryPath: String

    /// The environment variables MPI launchers set in every rank (Open MPI's mpirun, PMIx launchers such as
    /// Open MPI 5 or `srun`, and PMI-1/2 launchers such as MPICH's hydra).
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    /// The launcher variable that is set, or nil when this process was not started by an MPI launcher.
    public static func launcherVariable(in environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        launcherVariables.first { environment[$0].map { !$0.isEmpty } ?? false }
    }

    /// The world when a launcher started this process (MPI initialised), nil otherwise (nothing loaded).
    /// - Throws: `KernelError.mpiUnavailable` when launched but libmpi cannot be loaded or initialised.
    public static func start() throws -> MPIWorld? {
        guard let variable = launcherVariable() else { return nil }
        guard pp_mpi_load() == 0 else {
            throw KernelError.mpiUnavailable(launchedBy: variable, reason: String(cString: pp_mpi_error()))
        }
        var rank: Int32 = -1, size: Int32 = 0
        let code = pp_mpi_init(&rank, &size)
        guard code == 0, rank >= 0, size >= 1 else {
            throw KernelError.mpiUnavailable(launchedBy: variable, reason: "MPI_Init / MPI_Comm_rank failed with code \(code)")
        }
        return MPIWorld(rank: Int(rank), size: Int(size), libraryPath: String(cString: pp_mpi_library_path()))
    }

    private init(rank: Int, size: Int, libraryPath: String) {
        self.rank = rank
        self.size = size
        self.libraryPath = libraryPath
    }

    /// MPI_Allreduce(MPI_SUM) over MPI_DOUBLE.
    public func sum(_ values: [Double]) throws -> [Double] {
        var result = [Double](repeating: 0, count: values.count)
        guard !values.isEmpty else { return result }
        let code = values.withUnsafeBufferPointer { input in
            result.withUnsafeMutableBufferPointer { pp_mpi_allreduce_sum(input.baseAddress, $0.baseAddress, Int32(values.count)) }
        }
        guard code == 0 else { throw KernelError.mpiFailed(call: "MPI_Allreduce", code: code) }
        return result
    }

    /// The length (one MPI_Bcast of 8 bytes), then the bytes.
    public func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8] {
        var count = Int64(rank == root ? bytes.count : 0)
        var code = withUnsafeMutableBytes(of: &count) { pp_mpi_broadcast($0.baseAddress, 8, Int32(root)) }
        guard code == 0 else { throw KernelError.mpiFailed(call: "MPI_Bcast (length)", code: code) }
        guard count >= 0 else { throw KernelError.mpiFailed(call: "MPI_Bcast (negative length \(count))", code: -1) }
        var buffer = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count))
        if count > 0 {
            code = buffer.withUnsafeMutableBytes { pp_mpi_broadcast($0.baseAddress, count, Int32(root)) }
            guard code == 0 else { throw KernelError.mpiFailed(call: "MPI_Bcast", code: code) }
        }
        return buffer
    }

    /// MPI_Abort: mpirun ends every rank of the job with `code`.
    public func abort(code: Int32) -> Never {
        pp_mpi_abort(code)
        // MPI_Abort does not return; should it, the process still must not continue.
        exit(code)
    }

    /// MPI_Finalize; call once, after the last collective.
    public func finalize() throws {
        let code = pp_mpi_finalize()
        guard code == 0 else { throw KernelError.mpiFailed(call: "MPI_Finalize", code: code) }
    }
}
