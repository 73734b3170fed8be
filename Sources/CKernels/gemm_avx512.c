// kz_gemm_nhwc for AVX-512F: tiles of 12 rows x 32 columns, 24 zmm accumulators, 2 for W, 1 for the broadcast X.
#if defined(__x86_64__)
#include "kernels_internal.h"  // declarations outside the target region

#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#define KZ_GEMM_NAME kz_gemm_avx512
#define KZ_MR 12
#define KZ_NP 2
#include "gemm_body.h"
#pragma clang attribute pop
#endif
