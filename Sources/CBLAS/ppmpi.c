// MPI through the one C boundary: Open MPI's libmpi, loaded at run time only when a launcher started the process.
//
// PolicyPrune does not link MPI, so the single-process binary runs where MPI is not installed. Open MPI's handles
// (MPI_COMM_WORLD, MPI_DOUBLE, MPI_BYTE, MPI_SUM) are the addresses of global objects in libmpi (mpi.h defines
// MPI_COMM_WORLD as `(MPI_Comm) &ompi_mpi_comm_world`), so dlsym gives them exactly as a linked program sees them.
// The library is opened RTLD_GLOBAL: Open MPI dlopen()s its own components (btl, pml, ...), which expect libmpi's
// symbols to be global. MPICH's handles are integer constants with another ABI; it is refused, by name.
#define _GNU_SOURCE
#include "ppblas.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *mpi_handle;  // MPI_Comm, MPI_Datatype, MPI_Op: pointers in Open MPI
typedef int (*init_fn)(int *, char ***);
typedef int (*initialized_fn)(int *);
typedef int (*comm_int_fn)(mpi_handle, int *);
typedef int (*allreduce_fn)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
typedef int (*bcast_fn)(void *, int, mpi_handle, int, mpi_handle);
typedef int (*abort_fn)(mpi_handle, int);
typedef int (*finalize_fn)(void);

static pthread_once_t mpi_once = PTHREAD_ONCE_INIT;
static int mpi_status = -1;
static int mpi_initialised = 0;
static char mpi_error_text[1024] = "";
static char mpi_path[512] = "";
static init_fn p_init;
static initialized_fn p_initialized;
static comm_int_fn p_comm_rank, p_comm_size;
static allreduce_fn p_allreduce;
static bcast_fn p_bcast;
static abort_fn p_abort;
static finalize_fn p_finalize;
static mpi_handle comm_world, type_double, type_byte, op_sum;

static void mpi_load_once(void) {
    // POLICYPRUNE_MPI, when set, is the only candidate: a wrong path is an error, never a silent fallback.
    const char *override_path = getenv("POLICYPRUNE_MPI");
    int exclusive = override_path != NULL && override_path[0] != '\0';
    const char *candidates[] = {override_path, "libmpi.so.40", "/usr/lib/x86_64-linux-gnu/libmpi.so.40",
                                "/usr/lib/aarch64-linux-gnu/libmpi.so.40", "libmpi.so", "libmpi.40.dylib",
                                "/opt/homebrew/opt/open-mpi/lib/libmpi.dylib"};
    size_t used = 0;
    for (size_t i = 0; i < (exclusive ? 1 : sizeof candidates / sizeof candidates[0]); i++) {
        if (candidates[i] == NULL || candidates[i][0] == '\0') continue;
        void *handle = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (handle == NULL) {
            const char *why = dlerror();
            int n = snprintf(mpi_error_text + used, sizeof mpi_error_text - used, "%s%s", used ? "; " : "",
                             why ? why : candidates[i]);
            if (n > 0 && (size_t)n < sizeof mpi_error_text - used) used += (size_t)n;
            continue;
        }
        p_init = (init_fn)dlsym(handle, "MPI_Init");
        p_initialized = (initialized_fn)dlsym(handle, "MPI_Initialized");
        p_comm_rank = (comm_int_fn)dlsym(handle, "MPI_Comm_rank");
        p_comm_size = (comm_int_fn)dlsym(handle, "MPI_Comm_size");
        p_allreduce = (allreduce_fn)dlsym(handle, "MPI_Allreduce");
        p_bcast = (bcast_fn)dlsym(handle, "MPI_Bcast");
        p_abort = (abort_fn)dlsym(handle, "MPI_Abort");
        p_finalize = (finalize_fn)dlsym(handle, "MPI_Finalize");
        comm_world = dlsym(handle, "ompi_mpi_comm_world");
        type_double = dlsym(handle, "ompi_mpi_double");
        type_byte = dlsym(handle, "ompi_mpi_byte");
        op_sum = dlsym(handle, "ompi_mpi_op_sum");
        if (!p_init || !p_initialized || !p_comm_rank || !p_comm_size || !p_allreduce || !p_bcast || !p_abort ||
            !p_finalize) {
            snprintf(mpi_error_text, sizeof mpi_error_text, "%s lacks MPI_Init / MPI_Allreduce / MPI_Bcast / ...",
                     candidates[i]);
            dlclose(handle);
            used = strlen(mpi_error_text);
            continue;
        }
        if (!comm_world || !type_double || !type_byte || !op_sum) {
            snprintf(mpi_error_text, sizeof mpi_error_text,
                     "%s is not Open MPI (no ompi_mpi_comm_world / ompi_mpi_double / ompi_mpi_op_sum); PolicyPrune "
                     "speaks Open MPI's ABI only",
                     candidates[i]);
            dlclose(handle);
            used = strlen(mpi_error_text);
            continue;
        }
        Dl_info info;
        if (dladdr((void *)p_allreduce, &info) && info.dli_fname)
            snprintf(mpi_path, sizeof mpi_path, "%s", info.dli_fname);
        else
            snprintf(mpi_path, sizeof mpi_path, "%s", candidates[i]);
        mpi_error_text[0] = '\0';
        mpi_status = 0;
        return;
    }
    if (used == 0) snprintf(mpi_error_text, sizeof mpi_error_text, "no MPI library candidate could be opened");
}

int pp_mpi_load(void) {
    pthread_once(&mpi_once, mpi_load_once);
    return mpi_status;
}

const char *pp_mpi_error(void) { return mpi_error_text; }
const char *pp_mpi_library_path(void) { return mpi_path; }

int pp_mpi_init(int *rank, int *size) {
    if (pp_mpi_load() != 0) return -1;
    int already = 0;
    int rc = p_initialized(&already);
    if (rc != 0) return rc;
    if (!already) {
        rc = p_init(NULL, NULL);
        if (rc != 0) return rc;
    }
    mpi_initialised = 1;
    rc = p_comm_rank(comm_world, rank);
    if (rc != 0) return rc;
    return p_comm_size(comm_world, size);
}

int pp_mpi_allreduce_sum(const double *in, double *out, int count) {
    if (!mpi_initialised) return -1;
    return p_allreduce(in, out, count, type_double, op_sum, comm_world);
}

int pp_mpi_broadcast(void *buffer, int64_t count, int root) {
    if (!mpi_initialised) return -1;
    char *bytes = (char *)buffer;
    while (count > 0) {
        int chunk = count > INT_MAX / 2 ? INT_MAX / 2 : (int)count;
        int rc = p_bcast(bytes, chunk, type_byte, root, comm_world);
        if (rc != 0) return rc;
        bytes += chunk;
        count -= chunk;
    }
    return 0;
}

void pp_mpi_abort(int code) {
    if (mpi_initialised) p_abort(comm_world, code);
}

int pp_mpi_finalize(void) {
    if (!mpi_initialised) return 0;
    mpi_initialised = 0;
    return p_finalize();
}
