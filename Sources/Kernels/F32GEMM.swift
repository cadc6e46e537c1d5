import CBLAS
import Foundation

/// The Float32 GEMM of F32 models (projections, attention, output head): OpenBLAS, unless OpenBLAS runs below
/// this CPU's kernels and oneDNN is installed, in which case oneDNN's `dnnl_sgemm`.
///
/// Why: OpenBLAS reads `OPENBLAS_CORETYPE` once, when it loads, and PolicyPrune respects a value the environment
/// already sets. A machine whose environment pins `OPENBLAS_CORETYPE=Haswell` on an AVX-512 CPU (this project's
/// own CI machines do) runs OpenBLAS's AVX2 kernels at about half their AVX-512 rate, below oneDNN's sgemm, which
/// picks its kernels from cpuid (BENCHMARKS.md "F32 GEMM backend"). Where OpenBLAS runs its best kernels it stays:
/// on the forward's shapes it is as fast as `dnnl_sgemm` or faster (head and down projection).
///
/// The choice is made once per process from the environment and the CPU, never from timings, so two processes
/// with the same environment compute the same bits (exact resume, MPI ranks). `POLICYPRUNE_SGEMM=openblas` or
/// `=dnnl` overrides it.
public enum F32GEMM {
    /// A Float32 GEMM library.
    public enum Backend: String, Sendable, Codable {
        case openblas, dnnl
    }

    /// The backend this process uses and why.
    public struct Choice: Sendable, Equatable {
        /// The library every F32 GEMM of a model's forward goes through.
        public let backend: Backend
        /// One line saying why (environment, CPU, what is installed).
        public let reason: String
        /// Whether a user should hear of it (the environment slows OpenBLAS down, or an override could not be met).
        public var notable: Bool = false
    }

    /// The process's choice, made on first use (loads OpenBLAS, and oneDNN when it may be chosen).
    public static let choice: Choice = {
        _ = try? BLAS.load()   // sets OPENBLAS_CORETYPE itself when the environment did not
        let environment = ProcessInfo.processInfo.environment
        return decide(override: environment["POLICYPRUNE_SGEMM"],
                      environmentCoreType: BLAS.chosenCoreType == nil ? environment["OPENBLAS_CORETYPE"] : nil,
                      cpuCoreType: String(cString: pp_blas_cpu_coretype()),
                      dnnlAvailable: { DNNL.isAvailable })
    }()

    /// The rule, separated from the process state for tests: `override` is `POLICYPRUNE_SGEMM`,
    /// `environmentCoreType` the `OPENBLAS_CORETYPE` the process started with, `cpuCoreType` the best OpenBLAS core
    /// for the CPU ("" when unknown), `dnnlAvailable` whether oneDNN loads (only asked when it may be chosen).
    public static func decide(override: String?, environmentCoreType: String?, cpuCoreType: String,
                              dnnlAvailable: () -> Bool) -> Choice {
        switch override?.lowercased() {
        case "openblas":
            return Choice(backend: .openblas, reason: "POLICYPRUNE_SGEMM=openblas")
        case "dnnl", "onednn":
            if dnnlAvailable() { return Choice(backend: .dnnl, reason: "POLICYPRUNE_SGEMM=\(override ?? "dnnl")") }
            return Choice(backend: .openblas, reason: "POLICYPRUNE_SGEMM=\(override ?? "dnnl") asked for oneDNN, "
                          + "but libdnnl.so.2 is not installed (apt-get install libdnnl-dev)", notable: true)
        default:
            break
        }
        let ignored = override.map { $0.isEmpty ? "" : " (POLICYPRUNE_SGEMM=\($0) is not openblas or dnnl; ignored)" } ?? ""
        guard let pinned = environmentCoreType, !pinned.isEmpty else {
            return Choice(backend: .openblas, reason: "OpenBLAS with the core type chosen from cpuid" + ignored)
        }
        guard !cpuCoreType.isEmpty, rank(pinned) < rank(cpuCoreType) else {
            return Choice(backend: .openblas, reason: "OpenBLAS (OPENBLAS_CORETYPE=\(pinned) from the environment)" + ignored)
        }
        guard dnnlAvailable() else {
            return Choice(backend: .openblas, reason: "OpenBLAS: OPENBLAS_CORETYPE=\(pinned) from the environment is "
                          + "below this CPU's \(cpuCoreType) kernels, and oneDNN is not installed; unset it" + ignored,
                          notable: true)
        }
        return Choice(backend: .dnnl, reason: "oneDNN sgemm: OPENBLAS_CORETYPE=\(pinned) from the environment runs "
                      + "OpenBLAS below this CPU's \(cpuCoreType) kernels (unset it, or POLICYPRUNE_SGEMM=openblas)" + ignored,
                      notable: true)
    }

    /// Orders the x86 OpenBLAS core types this rule compares; anything else ranks lowest.
    static func rank(_ coreType: String) -> Int {
        switch coreType.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 3
        case "haswell", "zen": return 2
        case "sandybridge": return 1
        default: return 0
        }
    }

    /// Row-major `C[m, n] = alpha * op(A) · op(B) + beta * C`, `BLAS.gemm`'s contract, through the chosen backend.
    @inlinable
    public static func gemm(m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int? = nil,
                            b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool,
                            c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                            alpha: Float = 1, beta: Float = 0, transposeA: Bool = false) {
        if usesDNNL {
            DNNL.sgemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
                       alpha: alpha, beta: beta, transposeA: transposeA)
        } else {
            BLAS.gemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
                      alpha: alpha, beta: beta, transposeA: transposeA)
        }
    }

    /// Whether `choice` is oneDNN (cached so the hot path reads one Bool).
    public static let usesDNNL: Bool = choice.backend == .dnnl
}
