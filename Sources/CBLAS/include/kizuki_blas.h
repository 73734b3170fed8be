// OpenBLAS, loaded at run time with kernels chosen for this CPU.
//
// Why not link it: OpenBLAS picks its kernels once, in its load-time constructor, from the CPU it
// recognises or from $OPENBLAS_CORETYPE. Builds older than the processor (Debian's 0.3.21 on a Xeon
// of family 6 model 207) fall back to generic SSE3 kernels, 4-5x slower. Set from Swift, the
// variable would come too late for a linked library, so this module sets it from CPUID (unless
// the user did) and then dlopen()s the library: the CLI, the tests and library users alike.
#ifndef KIZUKI_BLAS_H
#define KIZUKI_BLAS_H

#include <stdbool.h>

/// Who decided the kernels OpenBLAS uses.
typedef enum {
    KIZUKI_BLAS_NOT_LOADED = 0,
    KIZUKI_BLAS_CORE_CHOSEN,      // Kizuki set OPENBLAS_CORETYPE from the CPU's features
    KIZUKI_BLAS_CORE_FROM_USER,   // the user's OPENBLAS_CORETYPE was respected
    KIZUKI_BLAS_CORE_DETECTED,    // OpenBLAS's own detection (CPU without AVX2+FMA)
    KIZUKI_BLAS_ALREADY_LOADED,   // something else loaded OpenBLAS first; its choice stands
} kizuki_blas_core_source;

/// Loads OpenBLAS once per process (thread-safe). Returns false when the library or one of its
/// symbols is missing, or it uses 64-bit integers; `kizuki_blas_error()` then says which and how to fix it.
bool kizuki_blas_load(void);
/// Why the load failed ("" when it did not).
const char *kizuki_blas_error(void);
kizuki_blas_core_source kizuki_blas_source(void);
/// The core OpenBLAS runs (openblas_get_corename), its build configuration (openblas_get_config),
/// and the path it was loaded from; "" before a successful load.
const char *kizuki_blas_core(void);
const char *kizuki_blas_config(void);
const char *kizuki_blas_path(void);

/// OpenBLAS's own thread count (the engine keeps it at 1 and parallelises around it).
void kizuki_blas_set_threads(int threads);

/// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C; the library must be loaded
/// (calling before a successful `kizuki_blas_load` aborts with the load error).
void kizuki_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
void kizuki_dgemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double *a, int lda,
                  const double *b, int ldb, double beta, double *c, int ldc);

/// True when OpenBLAS is loaded and bundles LAPACK's dsyevd (an optional symbol: models run without it);
/// otherwise `kizuki_lapack_error()` says what is missing and how to get it.
bool kizuki_lapack_load(void);
const char *kizuki_lapack_error(void);

/// LAPACK dsyevd: eigenvalues (ascending, into w[n]) and, with `vectors`, orthonormal eigenvectors of the
/// symmetric n x n matrix `a`, read from its upper triangle in column-major order (its lower one in row-major
/// order: the same numbers) and overwritten by the eigenvectors, one per column-major column (row-major row).
/// lwork = -1 or liwork = -1 asks for the workspace sizes in work[0] and iwork[0]. Returns LAPACK's info:
/// 0 = success, > 0 = no convergence. Needs a successful `kizuki_lapack_load` (else aborts with its error).
int kizuki_dsyevd(bool vectors, int n, double *a, int lda, double *w, double *work, int lwork, int *iwork, int liwork);

#endif
