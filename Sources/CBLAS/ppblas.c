#define _GNU_SOURCE
#include "ppblas.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string.h>
#include <cpuid.h>
#include <stdint.h>
#include <stdatomic.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
typedef char *(*corename_fn)(void);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char error_text[1024] = "";
static char library_path[512] = "";
static char chosen[32] = "";
static sgemm_fn p_sgemm = NULL;
static corename_fn p_corename = NULL;
static set_threads_fn p_set_threads = NULL;
static get_threads_fn p_get_threads = NULL;

/// The file a loaded symbol came from (the real path behind a symlink candidate), else the candidate's name.
static void record_library_path(void *symbol, const char *candidate, char *out, size_t size) {
    Dl_info info;
    if (dladdr(symbol, &info) && info.dli_fname)
        snprintf(out, size, "%s", info.dli_fname);
    else
        snprintf(out, size, "%s", candidate);
}

/// Chooses an OpenBLAS core type from cpuid: AVX-512 (F, BW, VL, DQ, CD) -> SkylakeX, AVX2 + FMA -> Haswell.
/// Returns NULL where OpenBLAS's own detection should be trusted.
static const char *detect_coretype(void) {
#if defined(__x86_64__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NULL;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return NULL;
    unsigned int xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    int ymm_ok = (xlo & 0x6) == 0x6;
    int zmm_ok = (xlo & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx2 = (b >> 5) & 1;
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512cd = (b >> 28) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    if (zmm_ok && avx512f && avx512dq && avx512cd && avx512bw && avx512vl) return "SkylakeX";
    if (ymm_ok && avx2 && fma) return "Haswell";
#endif
    return NULL;
}

static void load_once(void) {
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (env == NULL || env[0] == '\0') {
        const char *type = detect_coretype();
        if (type != NULL) {
            setenv("OPENBLAS_CORETYPE", type, 1);
            snprintf(chosen, sizeof chosen, "%s", type);
        }
    }
    const char *override_path = getenv("POLICYPRUNE_OPENBLAS");
    const char *candidates[] = {
        override_path,
        "libopenblas.so.0",
        "libopenblas.so",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "libopenblas.dylib",
        "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
    };
    size_t used = 0;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (candidates[i] == NULL || candidates[i][0] == '\0') continue;
        void *handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            const char *why = dlerror();
            int n = snprintf(error_text + used, sizeof error_text - used, "%s%s", used ? "; " : "",
                             why ? why : candidates[i]);
            if (n > 0 && (size_t)n < sizeof error_text - used) used += (size_t)n;
            continue;
        }
        p_sgemm = (sgemm_fn)dlsym(handle, "cblas_sgemm");
        p_corename = (corename_fn)dlsym(handle, "openblas_get_corename");
        p_set_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
        p_get_threads = (get_threads_fn)dlsym(handle, "openblas_get_num_threads");
        if (p_sgemm == NULL) {
            snprintf(error_text, sizeof error_text, "%s has no cblas_sgemm", candidates[i]);
            dlclose(handle);
            continue;
        }
        record_library_path((void *)p_sgemm, candidates[i], library_path, sizeof library_path);
        error_text[0] = '\0';
        load_status = 0;
        return;
    }
    if (used == 0) snprintf(error_text, sizeof error_text, "no OpenBLAS library candidate could be opened");
}

int pp_blas_load(void) {
    pthread_once(&once, load_once);
    return load_status;
}

const char *pp_blas_error(void) { return error_text; }
const char *pp_blas_library_path(void) { return library_path; }
const char *pp_blas_chosen_coretype(void) { return chosen; }
const char *pp_blas_cpu_coretype(void) {
    const char *type = detect_coretype();
    return type ? type : "";
}

const char *pp_blas_corename(void) {
    if (pp_blas_load() != 0 || p_corename == NULL) return "unknown";
    const char *name = p_corename();
    return name ? name : "unknown";
}

void pp_blas_set_threads(int n) {
    if (pp_blas_load() == 0 && p_set_threads) p_set_threads(n);
}

int pp_blas_get_threads(void) {
    if (pp_blas_load() == 0 && p_get_threads) return p_get_threads();
    return 1;
}

void pp_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc) {
    p_sgemm(PP_CBLAS_ROW_MAJOR, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// ---------------------------------------------------------------------------------------------------------------
// oneDNN (libdnnl.so.2), optional: the int8 GEMM (u8 x s8 -> s32, VNNI) and its sgemm. Loaded on first use; without
// it everything runs on OpenBLAS and only int8 compute is unavailable.
//
// Debian's oneDNN 2.6 uses OpenMP (libgomp). OpenMP's thread count is a per-thread setting, so the wrappers set it
// on the calling thread before every call (one store, negligible next to a GEMM) to the count PolicyPrune chose.

typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                             int64_t, float, float *, int64_t);
typedef int (*dnnl_gemm_u8s8s32_fn)(char, char, char, int64_t, int64_t, int64_t, float, const uint8_t *, int64_t,
                                    uint8_t, const int8_t *, int64_t, int8_t, float, int32_t *, int64_t,
                                    const int32_t *);
typedef struct {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} dnnl_version_record;
typedef const dnnl_version_record *(*dnnl_version_fn)(void);
typedef void (*omp_set_num_threads_fn)(int);

static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;
static int dnnl_status = -1;
static char dnnl_error_text[1024] = "";
static char dnnl_path[512] = "";
static char dnnl_version_text[64] = "";
static dnnl_sgemm_fn p_dnnl_sgemm = NULL;
static dnnl_gemm_u8s8s32_fn p_dnnl_u8s8s32 = NULL;
static omp_set_num_threads_fn p_omp_set_threads = NULL;
typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_int_fn)(void);
static gomp_parallel_fn p_gomp_parallel = NULL;
static omp_int_fn p_omp_in_parallel = NULL;
static omp_int_fn p_omp_thread_num = NULL;
static omp_int_fn p_omp_num_threads = NULL;
static atomic_int dnnl_threads = 0;

static void dnnl_load_once(void) {
    // Idle OpenMP workers spin for a while after each parallel region before they sleep. The forwards that use
    // oneDNN run their own loops on the same OpenMP team (Parallel.withOpenMPTeam), so a short spin (100k rounds,
    // on the order of a millisecond)
    // lets the next region start without a wake-up, and is over before OpenBLAS's threads or libdispatch's workers
    // need the cores (libgomp's default spins three times as long; passive waiting cost the int8 step 8-15 %,
    // BENCHMARKS.md). A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
    const char *wait = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if ((wait == NULL || wait[0] == '\0') && (spin == NULL || spin[0] == '\0')) setenv("GOMP_SPINCOUNT", "100000", 1);
    // POLICYPRUNE_DNNL, when set, is the only candidate: a wrong path is an error, never a silent fallback.
    const char *override_path = getenv("POLICYPRUNE_DNNL");
    int exclusive = override_path != NULL && override_path[0] != '\0';
    const char *candidates[] = {override_path, "libdnnl.so.2", "/usr/lib/x86_64-linux-gnu/libdnnl.so.2",
                                "/usr/lib/aarch64-linux-gnu/libdnnl.so.2", "libdnnl.so", "libdnnl.2.dylib",
                                "/opt/homebrew/opt/onednn/lib/libdnnl.dylib"};
    size_t used = 0;
    for (size_t i = 0; i < (exclusive ? 1 : sizeof candidates / sizeof candidates[0]); i++) {
        if (candidates[i] == NULL || candidates[i][0] == '\0') continue;
        void *handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            const char *why = dlerror();
            int n = snprintf(dnnl_error_text + used, sizeof dnnl_error_text - used, "%s%s", used ? "; " : "",
                             why ? why : candidates[i]);
            if (n > 0 && (size_t)n < sizeof dnnl_error_text - used) used += (size_t)n;
            continue;
        }
        p_dnnl_sgemm = (dnnl_sgemm_fn)dlsym(handle, "dnnl_sgemm");
        p_dnnl_u8s8s32 = (dnnl_gemm_u8s8s32_fn)dlsym(handle, "dnnl_gemm_u8s8s32");
        // dlsym on a handle also searches its dependencies: finds libgomp's entry point when oneDNN uses OpenMP.
        p_omp_set_threads = (omp_set_num_threads_fn)dlsym(handle, "omp_set_num_threads");
        p_gomp_parallel = (gomp_parallel_fn)dlsym(handle, "GOMP_parallel");
        p_omp_thread_num = (omp_int_fn)dlsym(handle, "omp_get_thread_num");
        p_omp_num_threads = (omp_int_fn)dlsym(handle, "omp_get_num_threads");
        p_omp_in_parallel = (omp_int_fn)dlsym(handle, "omp_in_parallel");
        if (!p_gomp_parallel || !p_omp_thread_num || !p_omp_num_threads || !p_omp_in_parallel) {
            p_gomp_parallel = NULL; p_omp_thread_num = NULL; p_omp_num_threads = NULL; p_omp_in_parallel = NULL;
        }
        dnnl_version_fn version = (dnnl_version_fn)dlsym(handle, "dnnl_version");
        if (p_dnnl_sgemm == NULL || p_dnnl_u8s8s32 == NULL) {
            snprintf(dnnl_error_text, sizeof dnnl_error_text, "%s has no dnnl_sgemm / dnnl_gemm_u8s8s32", candidates[i]);
            // Nothing may keep pointing into the library about to be closed.
            p_dnnl_sgemm = NULL; p_dnnl_u8s8s32 = NULL; p_omp_set_threads = NULL;
            p_gomp_parallel = NULL; p_omp_thread_num = NULL; p_omp_num_threads = NULL; p_omp_in_parallel = NULL;
            dlclose(handle);
            continue;
        }
        if (version != NULL) {
            const dnnl_version_record *v = version();
            if (v) snprintf(dnnl_version_text, sizeof dnnl_version_text, "%d.%d.%d", v->major, v->minor, v->patch);
        }
        record_library_path((void *)p_dnnl_u8s8s32, candidates[i], dnnl_path, sizeof dnnl_path);
        dnnl_error_text[0] = '\0';
        dnnl_status = 0;
        return;
    }
    if (used == 0) snprintf(dnnl_error_text, sizeof dnnl_error_text, "no oneDNN library candidate could be opened");
}

int pp_dnnl_load(void) {
    pthread_once(&dnnl_once, dnnl_load_once);
    return dnnl_status;
}

const char *pp_dnnl_error(void) { return dnnl_error_text; }
const char *pp_dnnl_library_path(void) { return dnnl_path; }
const char *pp_dnnl_version(void) { return dnnl_version_text; }
int pp_dnnl_uses_openmp(void) { return p_omp_set_threads != NULL; }

void pp_dnnl_set_threads(int n) { atomic_store(&dnnl_threads, n > 0 ? n : 0); }
int pp_dnnl_get_threads(void) { return atomic_load(&dnnl_threads); }

static inline void apply_threads(void) {
    int n = atomic_load(&dnnl_threads);
    if (n > 0 && p_omp_set_threads) p_omp_set_threads(n);
}

int pp_dnnl_sgemm(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    apply_threads();
    return p_dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int pp_dnnl_sgemm_serial(int transA, int transB, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (p_omp_set_threads) p_omp_set_threads(1);
    return p_dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int pp_dnnl_gemm_u8s8s32(int transB, int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda, const int8_t *b,
                         int64_t ldb, int32_t *c, int64_t ldc) {
    apply_threads();
    const int32_t zero = 0;
    return p_dnnl_u8s8s32('N', transB ? 'T' : 'N', 'F', m, n, k, 1.0f, a, lda, 0, b, ldb, 0, 0.0f, c, ldc, &zero);
}

int pp_omp_available(void) { return dnnl_status == 0 && p_gomp_parallel != NULL; }

int pp_omp_in_parallel(void) { return p_omp_in_parallel != NULL && p_omp_in_parallel(); }

struct omp_chunks {
    void (*body)(void *, int64_t);
    void *context;
    int64_t chunks;
};

static void omp_chunks_run(void *data) {
    const struct omp_chunks *work = data;
    int64_t team = p_omp_num_threads(), me = p_omp_thread_num();
    for (int64_t c = me; c < work->chunks; c += team) work->body(work->context, c);
}

void pp_omp_parallel(int64_t chunks, int threads, void (*body)(void *, int64_t), void *context) {
    struct omp_chunks work = {body, context, chunks};
    p_gomp_parallel(omp_chunks_run, &work, (unsigned)threads, 0);
}

void pp_keep_freed_memory(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    mallopt(M_ARENA_MAX, 1);
#endif
}

int pp_cpu_has_vnni(void) {
#if defined(__x86_64__)
    unsigned int a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 11) & 1)) return 1;  // AVX512_VNNI
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1)) return 1;   // AVX_VNNI
#endif
    return 0;
}
