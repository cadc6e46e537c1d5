// The one C boundary of PolicyPrune: OpenBLAS (required), oneDNN and MPI (optional), all loaded at run time.
//
// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. AMD Zen 4) and silently falls back to
// SSE3 kernels, about five times slower. OPENBLAS_CORETYPE fixes that, but OpenBLAS reads it only once, when the
// library is loaded. So we do not link OpenBLAS: pp_blas_load() picks a core type from cpuid (unless the
// environment already sets OPENBLAS_CORETYPE), sets it, and only then dlopen()s the library.
#ifndef PPBLAS_H
#define PPBLAS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CBLAS enum values (identical to cblas.h).
enum { PP_CBLAS_ROW_MAJOR = 101, PP_CBLAS_NO_TRANS = 111, PP_CBLAS_TRANS = 112 };

/// Loads OpenBLAS once (thread-safe). Returns 0 on success, -1 when no library could be opened;
/// pp_blas_error() then describes what was tried.
int pp_blas_load(void);
/// Human-readable reason for the last load failure (empty when none).
const char *pp_blas_error(void);
/// The path of the library that was loaded.
const char *pp_blas_library_path(void);
/// The core type this process chose ("" when the environment had already set OPENBLAS_CORETYPE).
const char *pp_blas_chosen_coretype(void);
/// The best OpenBLAS core type for this CPU from cpuid ("SkylakeX", "Haswell"), or "" where OpenBLAS's own
/// detection should be trusted. Independent of the environment.
const char *pp_blas_cpu_coretype(void);
/// The kernel OpenBLAS reports (openblas_get_corename), or "unknown".
const char *pp_blas_corename(void);
/// OpenBLAS thread count (set / get).
void pp_blas_set_threads(int n);
int pp_blas_get_threads(void);

/// Row-major single-precision GEMM: C = alpha * op(A) op(B) + beta * C. Requires pp_blas_load() == 0.
void pp_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

// oneDNN (libdnnl.so.2), optional and loaded on first use (POLICYPRUNE_DNNL overrides the path). Its GEMMs are
// row-major. Without it everything runs on OpenBLAS; only int8 compute needs it.

/// Loads oneDNN once (thread-safe). 0 on success, -1 when no library could be opened (see pp_dnnl_error()).
/// glibc: keeps freed memory for reuse (mmap threshold 32 MiB, no heap trimming, one arena); elsewhere a no-op.
void pp_keep_freed_memory(void);
int pp_dnnl_load(void);
/// Why loading failed (empty when it did not).
const char *pp_dnnl_error(void);
/// The path of the loaded library.
const char *pp_dnnl_library_path(void);
/// "major.minor.patch" of the loaded library, or "".
const char *pp_dnnl_version(void);
/// 1 when oneDNN's threads are OpenMP threads whose count the wrappers control.
int pp_dnnl_uses_openmp(void);
/// oneDNN thread count applied before every call (0: the OpenMP default).
void pp_dnnl_set_threads(int n);
int pp_dnnl_get_threads(void);
/// Whether oneDNN's OpenMP runtime (libgomp) is loaded and its parallel entry point was found.
int pp_omp_available(void);
/// Whether the calling thread is inside an OpenMP parallel region (0 when OpenMP is not loaded).
int pp_omp_in_parallel(void);
/// Runs body(context, c) for c in 0..<chunks on a team of `threads` OpenMP threads (the calling thread and oneDNN's
/// workers), chunk c on thread c mod team size; returns when all have run. Requires pp_omp_available().
void pp_omp_parallel(int64_t chunks, int threads, void (*body)(void *, int64_t), void *context);
/// Row-major C[m, n] = alpha * op(A) op(B) + beta * C (dnnl_sgemm). Returns the dnnl status (0 = success).
/// Requires pp_dnnl_load() == 0.
int pp_dnnl_sgemm(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/// pp_dnnl_sgemm on the calling thread alone (one OpenMP thread): for many small GEMMs spread over the cores by
/// the caller (attention heads).
int pp_dnnl_sgemm_serial(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/// Row-major C[m, n] (int32) = A[m, k] (uint8) * op(B) (int8; B is [n, k] when transB), no offsets, beta 0
/// (dnnl_gemm_u8s8s32). Returns the dnnl status. Requires pp_dnnl_load() == 0.
int pp_dnnl_gemm_u8s8s32(int transB, int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda, const int8_t *b,
                         int64_t ldb, int32_t *c, int64_t ldc);
/// 1 when the CPU has VNNI (AVX512_VNNI or AVX_VNNI): u8 x s8 products are then summed without 16-bit saturation.
int pp_cpu_has_vnni(void);

// MPI (Open MPI's libmpi.so.40), optional and loaded at run time like OpenBLAS (POLICYPRUNE_MPI overrides the path,
// and is then the only candidate). Only `mpirun -np N policyprune prune ...` uses it: without a launcher in the
// environment (Kernels' MPIWorld checks it) nothing is loaded, so the single-process binary needs no MPI installed. Every call is made from one
// thread (the run loop's), on MPI_COMM_WORLD.

/// Loads libmpi once (thread-safe, RTLD_GLOBAL so Open MPI's plugins find its symbols) and resolves the entry points
/// and the predefined handles (ompi_mpi_comm_world, ompi_mpi_double, ompi_mpi_byte, ompi_mpi_op_sum). 0 on success,
/// -1 when no library could be opened or it is not Open MPI (see pp_mpi_error()).
int pp_mpi_load(void);
/// Why loading (or the last call) failed (empty when nothing failed).
const char *pp_mpi_error(void);
/// The path of the loaded library.
const char *pp_mpi_library_path(void);
/// MPI_Init (unless already initialised), then this process's rank and the world size. 0 on success, else the MPI
/// error code (or -1 when the library is not loaded). Requires pp_mpi_load() == 0.
int pp_mpi_init(int *rank, int *size);
/// Element-wise sum of `count` doubles over every rank (MPI_Allreduce, MPI_SUM); `out` may not alias `in`.
/// Returns the MPI error code (0 = success).
int pp_mpi_allreduce_sum(const double *in, double *out, int count);
/// Broadcasts `count` bytes from `root` (MPI_Bcast, MPI_BYTE, in chunks below INT_MAX). Returns the MPI error code.
int pp_mpi_broadcast(void *buffer, int64_t count, int root);
/// MPI_Abort on MPI_COMM_WORLD: mpirun ends every rank. Returns only if MPI is not loaded.
void pp_mpi_abort(int code);
/// MPI_Finalize (when initialised). Returns the MPI error code.
int pp_mpi_finalize(void);

#ifdef __cplusplus
}
#endif
#endif
