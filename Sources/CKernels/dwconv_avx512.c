// kz_dwconv_nhwc for AVX-512F: sixteen-float vectors (one zmm), then eight (one ymm) for a C % 16 >= 8 remainder.
#if defined(__x86_64__)
#include "kernels_internal.h"  // declarations outside the target region

#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#define KZ_DWCONV_NAME kz_dwconv_avx512
#define KZ_DW_WIDE 1
#include "dwconv_body.h"
#pragma clang attribute pop
#endif
