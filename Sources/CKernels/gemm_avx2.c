// kz_gemm_nhwc for AVX2+FMA: tiles of 6 rows x 16 columns, 12 ymm accumulators, 2 for W, 1 for the broadcast X.
#if defined(__x86_64__)
#include "kernels_internal.h"  // declarations outside the target region

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define KZ_GEMM_NAME kz_gemm_avx2
#define KZ_MR 6
#define KZ_NP 1
#include "gemm_body.h"
#pragma clang attribute pop
#endif
