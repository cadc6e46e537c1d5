import CBLAS

/// The door to oneDNN (libdnnl.so.2), loaded at run time on first use like OpenBLAS (see ppblas.c). Optional:
/// only int8 compute needs it; `load()` throws a typed error naming the missing library.
public enum DNNL {
    /// Loads oneDNN if needed and sets its thread count to `Parallel.threads` (POLICYPRUNE_THREADS) unless
    /// `threads` was set; throws `KernelError.dnnlUnavailable` when the library is missing.
    public static func load() throws {
        if pp_dnnl_load() != 0 { throw KernelError.dnnlUnavailable(String(cString: pp_dnnl_error())) }
        if pp_dnnl_get_threads() == 0 { pp_dnnl_set_threads(Int32(Parallel.threads)) }
    }

    /// Whether oneDNN is loaded or can be (loads it).
    public static var isAvailable: Bool { (try? load()) != nil }
    /// The file the library was loaded from ("" before loading).
    public static var libraryPath: String { String(cString: pp_dnnl_library_path()) }
    /// "major.minor.patch" of the loaded library.
    public static var version: String { String(cString: pp_dnnl_version()) }
    /// Whether its threads are OpenMP threads (Debian's build), whose count `threads` controls.
    public static var usesOpenMP: Bool { pp_dnnl_uses_openmp() != 0 }
    /// Whether the CPU sums u8 × s8 products without 16-bit saturation (AVX512_VNNI / AVX_VNNI). Without it
    /// oneDNN's u8 × s8 kernels can saturate pairs of products, so activations are quantized to 7 bits instead.
    public static let cpuHasVNNI: Bool = pp_cpu_has_vnni() != 0

    /// oneDNN's thread count, applied on the calling thread before every call.
    public static var threads: Int {
        get { Int(pp_dnnl_get_threads()) }
        set { pp_dnnl_set_threads(Int32(newValue)) }
    }

    /// Row-major `C[m, n] (Int32) = A[m, k] (UInt8) · B[n, k]ᵀ (Int8)`: the int8 projection (weights in `[out, in]`
    /// layout, like `BLAS.gemm` with `transposeB`). Requires a successful `load()`.
    @inlinable
    public static func gemmU8S8S32(m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, lda: Int? = nil,
                                   b: UnsafePointer<Int8>, ldb: Int? = nil,
                                   c: UnsafeMutablePointer<Int32>, ldc: Int? = nil) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemmU8S8S32: negative dimension")
        if m == 0 || n == 0 { return }
        let status = pp_dnnl_gemm_u8s8s32(1, Int64(m), Int64(n), Int64(k), a, Int64(lda ?? k), b, Int64(ldb ?? k),
                                          c, Int64(ldc ?? n))
        precondition(status == 0, "dnnl_gemm_u8s8s32 failed with status \(status) (\(m) x \(n) x \(k))")
    }

    /// `sgemm` on the calling thread only: for small GEMMs that the caller runs many of at once on its own threads
    /// (attention heads). Requires `load()`.
    @inlinable
    public static func serialSgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int? = nil,
                                   b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool,
                                   c: UnsafeMutablePointer<Float>, ldc: Int? = nil, alpha: Float = 1, beta: Float = 0) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative dimension")
        if m == 0 || n == 0 { return }
        let status = pp_dnnl_sgemm_serial(0, transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha,
                                          a, Int64(lda ?? k), b, Int64(ldb ?? (transposeB ? k : n)), beta, c, Int64(ldc ?? n))
        precondition(status == 0, "dnnl_sgemm failed with status \(status) (\(m) x \(n) x \(k))")
    }

    /// Row-major single-precision GEMM through `dnnl_sgemm`, same contract as `BLAS.gemm`. Requires `load()`.
    @inlinable
    public static func sgemm(m: Int, n: Int, k: Int,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil, transposeB: Bool,
                             c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                             alpha: Float = 1, beta: Float = 0, transposeA: Bool = false) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative dimension")
        if m == 0 || n == 0 { return }
        let status = pp_dnnl_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha,
                                   a, Int64(lda ?? (transposeA ? m : k)), b, Int64(ldb ?? (transposeB ? k : n)),
                                   beta, c, Int64(ldc ?? n))
        precondition(status == 0, "dnnl_sgemm failed with status \(status) (\(m) x \(n) x \(k))")
    }
}
