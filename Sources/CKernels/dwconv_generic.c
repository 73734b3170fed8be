// kz_dwconv_nhwc in portable C (eight-float vectors: two SSE or NEON registers).
#include "kernels_internal.h"

#define KZ_DWCONV_NAME kz_dwconv_generic
#include "dwconv_body.h"
