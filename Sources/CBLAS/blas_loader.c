#define _GNU_SOURCE  // dlinfo, RTLD_DI_LINKMAP
// Loads OpenBLAS with dlopen after choosing its kernels (see kizuki_blas.h for why).
#include "kizuki_blas.h"
#include "kizuki_cpu.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The CBLAS constants, fixed by the CBLAS standard (cblas.h is not needed at build time).
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int);
typedef void (*set_threads_fn)(int);
// LAPACK's Fortran interface (OpenBLAS bundles LAPACK; Debian's build has no LAPACKE C layer): every argument by
// reference, column-major, and gfortran's hidden lengths of the two CHARACTER arguments last.
typedef void (*dsyevd_fn)(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                          double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                          size_t uplo_len);
typedef char *(*string_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loaded;
static char error[1024];
static char path[512];
static kizuki_blas_core_source source = KIZUKI_BLAS_NOT_LOADED;
static sgemm_fn sgemm;
static dgemm_fn dgemm;
static set_threads_fn set_threads;
static dsyevd_fn dsyevd;
static char lapack_error[1024];
static string_fn corename, config;

// Debian and Ubuntu (the alternatives link of libopenblas0-*), then other distributions' names.
static const char *const library_names[] = {"libopenblas.so.0", "libopenblasp.so.0", "libopenblas.so"};

static void *open_library(int mode, char *first_error, size_t size) {
    for (size_t i = 0; i < sizeof library_names / sizeof library_names[0]; i++) {
        void *handle = dlopen(library_names[i], mode);
        if (handle) return handle;
        const char *why = dlerror();
        if (first_error && i == 0) snprintf(first_error, size, "%s", why ? why : library_names[i]);
    }
    return NULL;
}

static bool resolve(void *handle, const char *name, void **out) {
    *out = dlsym(handle, name);
    if (*out) return true;
    snprintf(error, sizeof error, "OpenBLAS (%s) has no symbol %s: a library of that name that is not OpenBLAS, or too old",
             path, name);
    return false;
}

static void load_once(void) {
    // Already in the process (loaded by another library): its constructor chose the kernels already.
    void *handle = open_library(RTLD_NOW | RTLD_NOLOAD, NULL, 0);
    if (handle) {
        source = KIZUKI_BLAS_ALREADY_LOADED;
    } else {
        const char *user = getenv("OPENBLAS_CORETYPE");
        kizuki_cpu_features features;
        kizuki_cpu_detect(&features);
        const char *core = kizuki_blas_core_for(&features);
        bool set = false;
        if (user && *user) {
            source = KIZUKI_BLAS_CORE_FROM_USER;
        } else if (core) {
            set = setenv("OPENBLAS_CORETYPE", core, 1) == 0;
            source = set ? KIZUKI_BLAS_CORE_CHOSEN : KIZUKI_BLAS_CORE_DETECTED;
        } else {
            source = KIZUKI_BLAS_CORE_DETECTED;
        }
        char why[512] = "";
        handle = open_library(RTLD_NOW | RTLD_LOCAL, why, sizeof why);
        // OpenBLAS read the variable in its constructor; children of this process must not inherit it.
        if (set) unsetenv("OPENBLAS_CORETYPE");
        if (!handle) {
            snprintf(error, sizeof error,
                     "OpenBLAS could not be loaded (%s); install it: on Debian or Ubuntu `apt-get install libopenblas0` "
                     "(libopenblas-dev also provides it)", why);
            source = KIZUKI_BLAS_NOT_LOADED;
            return;
        }
    }
    struct link_map *map = NULL;
    snprintf(path, sizeof path, "%s",
             dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name[0] ? map->l_name : library_names[0]);
    if (!resolve(handle, "cblas_sgemm", (void **)&sgemm) || !resolve(handle, "cblas_dgemm", (void **)&dgemm) ||
        !resolve(handle, "openblas_set_num_threads", (void **)&set_threads) ||
        !resolve(handle, "openblas_get_corename", (void **)&corename) ||
        !resolve(handle, "openblas_get_config", (void **)&config)) {
        source = KIZUKI_BLAS_NOT_LOADED;
        return;
    }
    // Optional: only the PCA baseline needs LAPACK, and an OpenBLAS built with NO_LAPACK must still run models.
    dsyevd = (dsyevd_fn)dlsym(handle, "dsyevd_");
    if (!dsyevd) {
        snprintf(lapack_error, sizeof lapack_error,
                 "OpenBLAS at %s has no LAPACK (symbol dsyevd_ missing: built with NO_LAPACK?); on Debian or Ubuntu "
                 "`apt-get install libopenblas0` provides an OpenBLAS with LAPACK", path);
    }
    // The gemm prototypes above take 32-bit integers; an ILP64 build would read garbage sizes.
    if (strstr(config(), "USE64BITINT")) {
        snprintf(error, sizeof error, "OpenBLAS at %s uses 64-bit integers (%s); Kizuki needs the 32-bit interface "
                 "(Debian: libopenblas0, not libopenblas64-0)", path, config());
        source = KIZUKI_BLAS_NOT_LOADED;
        return;
    }
    loaded = true;
}

bool kizuki_blas_load(void) {
    pthread_once(&once, load_once);
    return loaded;
}

const char *kizuki_blas_error(void) { return error; }
kizuki_blas_core_source kizuki_blas_source(void) { return kizuki_blas_load() ? source : KIZUKI_BLAS_NOT_LOADED; }
const char *kizuki_blas_core(void) { return kizuki_blas_load() ? corename() : ""; }
const char *kizuki_blas_config(void) { return kizuki_blas_load() ? config() : ""; }
const char *kizuki_blas_path(void) { return kizuki_blas_load() ? path : ""; }

bool kizuki_lapack_load(void) { return kizuki_blas_load() && dsyevd; }
const char *kizuki_lapack_error(void) { return kizuki_blas_load() ? lapack_error : error; }

// Callers check kizuki_blas_load() first (Session and NearestNeighbors throw its error); reaching a
// gemm without the library is a programming error, reported before stopping.
static void require_loaded(void) {
    if (kizuki_blas_load()) return;
    fprintf(stderr, "kizuki: BLAS used before a successful load: %s\n", error);
    abort();
}

void kizuki_blas_set_threads(int threads) {
    require_loaded();
    set_threads(threads);
}

void kizuki_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
    require_loaded();
    sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void kizuki_dgemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double *a, int lda,
                  const double *b, int ldb, double beta, double *c, int ldc) {
    require_loaded();
    dgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int kizuki_dsyevd(bool vectors, int n, double *a, int lda, double *w, double *work, int lwork, int *iwork, int liwork) {
    // Reaching here without LAPACK is a programming error, as for the gemms (callers check kizuki_lapack_load()).
    if (!kizuki_lapack_load()) {
        fprintf(stderr, "kizuki: LAPACK used before a successful load: %s\n", kizuki_lapack_error());
        abort();
    }
    int info = 0;
    dsyevd(vectors ? "V" : "N", "U", &n, a, &lda, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    return info;
}
