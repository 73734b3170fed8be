// kz_gemm_nhwc in portable C: tiles of 2 rows x 2 panels (16 four-float accumulators on SSE or NEON).
#include "kernels_internal.h"

#define KZ_GEMM_NAME kz_gemm_generic
#define KZ_MR 2
#define KZ_NP 2
#include "gemm_body.h"
