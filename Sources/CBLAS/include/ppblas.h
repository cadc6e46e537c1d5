// The one C boundary of PolicyPrune: OpenBLAS, loaded at run time.
//
// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (e.g. AMD Zen 4) and silently falls back to
// SSE3 kernels, about five times slower. OPENBLAS_CORETYPE fixes that, but OpenBLAS reads it only once, when the
// library is loaded. So we do not link OpenBLAS: pp_blas_load() picks a core type from cpuid (unless the
// environment already sets OPENBLAS_CORETYPE), sets it, and only then dlopen()s the library.
#ifndef PPBLAS_H
#define PPBLAS_H

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
/// The kernel OpenBLAS reports (openblas_get_corename), or "unknown".
const char *pp_blas_corename(void);
/// OpenBLAS thread count (set / get).
void pp_blas_set_threads(int n);
int pp_blas_get_threads(void);

/// Row-major single-precision GEMM: C = alpha * op(A) op(B) + beta * C. Requires pp_blas_load() == 0.
void pp_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);

#ifdef __cplusplus
}
#endif
#endif
