// kz_gemm_nhwc for AVX-512F: tiles of 8 rows x 32 columns, 16 zmm accumulators and 2 for W, X broadcast from
// memory by the FMAs. (12 rows would fit the 32 zmm, but its 12 row pointers overflow the general registers: clang
// reloads them from the stack inside the K loop.)
#if defined(__x86_64__)
#include "kernels_internal.h"  // declarations outside the target region

#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#define KZ_GEMM_NAME kz_gemm_avx512
#define KZ_MR 8
#define KZ_NP 2
#include "gemm_body.h"
#pragma clang attribute pop
#endif
