// NHWC convolution kernels: a GEMM on packed weights with a fused epilogue (1x1 and im2col'd convolutions)
// and a depthwise convolution. Each entry point runs the widest instruction set the CPU has (chosen once,
// at the first call), so nothing depends on the flags the package was compiled with.
#ifndef KIZUKI_KERNELS_H
#define KIZUKI_KERNELS_H

#include <stddef.h>

/// The instruction set the dispatched kernels use: 0 portable C, 1 AVX2+FMA, 2 AVX-512F. The default is the widest
/// the CPU has (AVX-512 checked on a Zen 4 EPYC and a Xeon model 207); env KIZUKI_ISA=generic|avx2 forces a lower one.
int kz_kernels_isa(void);
const char *kz_kernels_isa_name(void);
/// Tests and benchmarks: use `isa` (0, 1, 2) from now on, or the widest the CPU has if that is lower; returns the one in
/// effect. Not thread-safe with running kernels.
int kz_kernels_set_isa(int isa);

/// GEMM with packed weights and a fused epilogue, for 1x1 convolutions in NHWC and im2col'd convolutions:
///   Y[r, m] = clamp(sum_k X[r, k] * W[k, m] + bias[m] + R[r, m], lo, hi)   for r < rows, m < M
/// X: rows x K, row stride ldx (floats); W: K x M row-major (W[k, m] at k*M + m), packed once by kz_gemm_pack into
/// kz_gemm_packed_floats(K, M) floats (16-column panels, each K x 16 row-major, the last one zero-padded);
/// bias: M floats or NULL; R: rows x M, stride ldr, or NULL (a residual Add fused in); Y: stride ldy. lo/hi = -INFINITY/
/// INFINITY when there is no clamp. Y may not alias X; Y may alias R exactly (Y == R, ldy == ldr). K may be 0.
/// Single-threaded: the caller splits rows across threads. No allocation inside (stack buffers only if small).
size_t kz_gemm_packed_floats(int K, int M);
void kz_gemm_pack(const float *W, int K, int M, float *packed);
void kz_gemm_nhwc(const float *X, size_t ldx, const float *packed, int K, int M, const float *bias,
                  const float *R, size_t ldr, float *Y, size_t ldy, size_t rows, float lo, float hi);

/// Depthwise convolution in NHWC, one image, dilation 1, for output rows [oy0, oy1):
///   Y[oy, ox, c] = clamp(bias[c] + sum_{i<kh, j<kw} X[oy*sh - pt + i, ox*sw - pl + j, c] * Wt[(i*kw + j)*C + c], lo, hi)
/// taps outside the input read 0 (padding handled at the borders, no padded copy). X: H x W x C, Y: OH x OW x C,
/// both with pixel stride C (contiguous). Wt: [kh*kw, C] (tap-major, channels contiguous). bias may be NULL.
/// Fast paths for 3x3 stride 1 and 2; any kh, kw, stride correct.
void kz_dwconv_nhwc(const float *X, int H, int W, int C, const float *Wt, int kh, int kw, int sh, int sw,
                    int pt, int pl, const float *bias, float *Y, int OH, int OW, int oy0, int oy1, float lo, float hi);

#endif
