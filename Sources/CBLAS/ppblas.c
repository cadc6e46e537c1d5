#define _GNU_SOURCE
#include "ppblas.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cpuid.h>

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
        Dl_info info;
        if (dladdr((void *)p_sgemm, &info) && info.dli_fname)
            snprintf(library_path, sizeof library_path, "%s", info.dli_fname);
        else
            snprintf(library_path, sizeof library_path, "%s", candidates[i]);
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
