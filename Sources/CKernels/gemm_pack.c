// Weight packing for kz_gemm_nhwc: W (K x M, row-major) -> ceil(M/16) panels of K x 16 floats, panel p holding
// columns 16p..16p+15 with zeros past M. A tile then reads its W vectors contiguously for every k, and the zero
// columns let the last panel run the same full-width FMAs (their results are never stored).
#include "kizuki_kernels.h"

#include <string.h>

size_t kz_gemm_packed_floats(int K, int M) { return (size_t)((M + 15) / 16) * 16 * (size_t)K; }

void kz_gemm_pack(const float *W, int K, int M, float *packed) {
    for (int c0 = 0; c0 < M; c0 += 16) {
        int n = M - c0 < 16 ? M - c0 : 16;
        for (int k = 0; k < K; k++) {
            float *dst = packed + ((size_t)c0 * K) + (size_t)k * 16;
            memcpy(dst, W + (size_t)k * M + c0, (size_t)n * sizeof(float));
            memset(dst + n, 0, (size_t)(16 - n) * sizeof(float));
        }
    }
}
