import CBLAS

/// Errors from the BLAS boundary.
public enum KernelError: Error, CustomStringConvertible, Equatable {
    /// OpenBLAS (required) could not be loaded.
    case blasUnavailable(String)
    /// oneDNN (needed only for int8 compute) could not be loaded.
    case dnnlUnavailable(String)
    /// A launcher (`mpirun`) started this process as an MPI rank, but libmpi could not be loaded or initialised;
    /// the associated values are the environment variable that showed the launch and the loader's reason.
    case mpiUnavailable(launchedBy: String, reason: String)
    /// An MPI call failed (`call` is its name, `code` the MPI error code).
    case mpiFailed(call: String, code: Int32)
    public var description: String {
        switch self {
        case .blasUnavailable(let why):
            return "OpenBLAS could not be loaded (install libopenblas0 / libopenblas-dev, or set POLICYPRUNE_OPENBLAS): \(why)"
        case .dnnlUnavailable(let why):
            return "int8 compute needs oneDNN (libdnnl.so.2), which could not be loaded: install it with "
                + "`apt-get install libdnnl-dev` (or set POLICYPRUNE_DNNL to the library's path), or use --compute f32. Tried: \(why)"
        case .mpiUnavailable(let launcher, let why):
            return "this process was started by an MPI launcher (\(launcher) is set), but Open MPI's libmpi could not be loaded: "
                + "install it with `apt-get install openmpi-bin libopenmpi-dev` on every machine (or set POLICYPRUNE_MPI to "
                + "libmpi.so.40's path), or run without mpirun. Tried: \(why)"
        case .mpiFailed(let call, let code):
            return "\(call) failed with MPI error code \(code)"
        }
    }
}

/// The only door to OpenBLAS. Loading chooses the OpenBLAS core type from cpuid before the library is opened
/// (see ppblas.c), so Debian's 0.3.21 uses AVX-512 kernels on CPUs it does not recognise.
public enum BLAS {
    /// Loads OpenBLAS if needed; throws a typed error when it is missing.
    public static func load() throws {
        if pp_blas_load() != 0 { throw KernelError.blasUnavailable(String(cString: pp_blas_error())) }
    }

    /// The kernel OpenBLAS reports it uses (`openblas_get_corename`).
    public static var coreName: String { String(cString: pp_blas_corename()) }
    /// The core type PolicyPrune chose from cpuid, or nil when the environment set `OPENBLAS_CORETYPE`.
    public static var chosenCoreType: String? {
        let s = String(cString: pp_blas_chosen_coretype())
        return s.isEmpty ? nil : s
    }
    /// The file the library was loaded from.
    public static var libraryPath: String { String(cString: pp_blas_library_path()) }

    /// OpenBLAS thread count.
    public static var threads: Int {
        get { Int(pp_blas_get_threads()) }
        set { pp_blas_set_threads(Int32(newValue)) }
    }

    /// Row-major `C[m, n] = alpha * A[m, k] * op(B) + beta * C`, where `B` is `[n, k]` (weights in `[out, in]`
    /// layout) when `transposeB` is true and `[k, n]` otherwise. Leading dimensions default to dense rows.
    @inlinable
    public static func gemm(m: Int, n: Int, k: Int,
                            a: UnsafePointer<Float>, lda: Int? = nil,
                            b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool,
                            c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                            alpha: Float = 1, beta: Float = 0, transposeA: Bool = false) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative dimension")
        if m == 0 || n == 0 { return }
        let defaultLda = transposeA ? m : k
        let defaultLdb = transposeB ? k : n
        pp_sgemm(transposeA ? Int32(PP_CBLAS_TRANS) : Int32(PP_CBLAS_NO_TRANS),
                 transposeB ? Int32(PP_CBLAS_TRANS) : Int32(PP_CBLAS_NO_TRANS),
                 Int32(m), Int32(n), Int32(k), alpha,
                 a, Int32(lda ?? defaultLda), b, Int32(ldb ?? defaultLdb), beta, c, Int32(ldc ?? n))
    }
}
