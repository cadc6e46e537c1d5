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
/// Per shape, when a calibration exists (`F32GEMMCalibration`, made once per machine by
/// `policyprune bench --calibrate-sgemm`): each GEMM goes to the library that was faster on the nearest measured
/// shape. Otherwise the choice is made once per process from the environment and the CPU. Never from timings taken
/// by the process itself, so two processes with the same environment (and calibration file) compute the same bits
/// (exact resume, MPI ranks). `POLICYPRUNE_SGEMM=openblas` or `=dnnl` overrides both.
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
        public var reason: String
        /// Whether a user should hear of it (the environment slows OpenBLAS down, or an override could not be met).
        public var notable: Bool = false
        /// The per-shape table, when a calibration for this machine is in use (then `backend` is only the fallback).
        public var calibration: F32GEMMCalibration? = nil
    }

    /// The process's choice, made on first use (loads OpenBLAS, and oneDNN when it may be chosen).
    public static let choice: Choice = {
        _ = try? BLAS.load()   // sets OPENBLAS_CORETYPE itself when the environment did not
        let environment = ProcessInfo.processInfo.environment
        let rule = decide(override: environment["POLICYPRUNE_SGEMM"],
                          environmentCoreType: BLAS.chosenCoreType == nil ? environment["OPENBLAS_CORETYPE"] : nil,
                          cpuCoreType: String(cString: pp_blas_cpu_coretype()),
                          dnnlAvailable: { DNNL.isAvailable })
        let overridden = !(environment["POLICYPRUNE_SGEMM"] ?? "").isEmpty
        let url = F32GEMMCalibration.defaultURL
        // Without a calibration file there is nothing to refine: oneDNN is not loaded just to look.
        guard !overridden, FileManager.default.fileExists(atPath: url.path), DNNL.isAvailable else { return rule }
        let (calibration, problem) = F32GEMMCalibration.load(from: url, machine: F32GEMMCalibration.machineKey())
        return calibrated(rule: rule, calibration: calibration, path: url.path, problem: problem)
    }()

    /// `rule` refined by a calibration (nil: `rule`, with `problem` appended and made notable when there is one).
    public static func calibrated(rule: Choice, calibration: F32GEMMCalibration?, path: String, problem: String?) -> Choice {
        guard let calibration else {
            guard let problem else { return rule }
            var choice = rule
            choice.reason += "; sgemm calibration: \(problem)"
            choice.notable = true
            return choice
        }
        let dnnl = calibration.entries.filter { $0.backend == .dnnl }.count
        return Choice(backend: 2 * dnnl > calibration.entries.count ? .dnnl : .openblas,
                      reason: "per shape from the calibration \(path) (\(calibration.summary) of \(calibration.entries.count) shapes)",
                      calibration: calibration)
    }

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
        let dnnl = table.map { $0.backend(m: m, n: n, k: k, transposeB: transposeB) == .dnnl } ?? usesDNNL
        if dnnl {
            DNNL.sgemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
                       alpha: alpha, beta: beta, transposeA: transposeA)
        } else {
            BLAS.gemm(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transposeB: transposeB, c: c, ldc: ldc,
                      alpha: alpha, beta: beta, transposeA: transposeA)
        }
    }

    /// Whether GEMMs without a table go to oneDNN: `choice`'s backend (cached so the hot path reads one Bool).
    /// Changed only by `bench --calibrate-sgemm`, which times forwards under each candidate before any concurrent work.
    nonisolated(unsafe) public static var usesDNNL: Bool = choice.backend == .dnnl
    /// The per-shape table in use: `choice`'s calibration, if any. Changed only like `usesDNNL`.
    nonisolated(unsafe) public static var table: F32GEMMCalibration? = choice.calibration

    /// Whether every GEMM goes to oneDNN (no table and `usesDNNL`, or a table whose every entry chose oneDNN).
    public static var onlyDNNL: Bool {
        table.map { !$0.entries.isEmpty && $0.entries.allSatisfy { $0.backend == .dnnl } } ?? usesDNNL
    }
}
