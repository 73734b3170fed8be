// The per-ISA instances of the kernels (one translation unit each), chosen by dispatch.c.
#ifndef KIZUKI_KERNELS_INTERNAL_H
#define KIZUKI_KERNELS_INTERNAL_H

#include <stddef.h>

#define KZ_GEMM_ARGS const float *X, size_t ldx, const float *packed, int K, int M, const float *bias, \
    const float *R, size_t ldr, float *Y, size_t ldy, size_t rows, float lo, float hi
#define KZ_DWCONV_ARGS const float *X, int H, int W, int C, const float *Wt, int kh, int kw, int sh, int sw, \
    int pt, int pl, const float *bias, float *Y, int OH, int OW, int oy0, int oy1, float lo, float hi

void kz_gemm_generic(KZ_GEMM_ARGS);
void kz_dwconv_generic(KZ_DWCONV_ARGS);
#if defined(__x86_64__)
void kz_gemm_avx2(KZ_GEMM_ARGS);
void kz_dwconv_avx2(KZ_DWCONV_ARGS);
void kz_gemm_avx512(KZ_GEMM_ARGS);
void kz_dwconv_avx512(KZ_DWCONV_ARGS);
#endif

#endif
