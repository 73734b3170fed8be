// kz_dwconv_nhwc for AVX2+FMA (eight-float vectors: one ymm).
#if defined(__x86_64__)
#include "kernels_internal.h"  // declarations outside the target region

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define KZ_DWCONV_NAME kz_dwconv_avx2
#include "dwconv_body.h"
#pragma clang attribute pop
#endif
