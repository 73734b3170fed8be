// The depthwise convolution of kz_dwconv_nhwc, included once per instruction set by dwconv_<isa>.c, which defines
// KZ_DWCONV_NAME, and KZ_DW_WIDE 1 where 16-float vectors are one register (AVX-512). Vectorised over channels:
// 16 at a time when wide, then 8 at a time (dwconv_lanes.h), the last C % 8 channels lane by lane.
//
// Shapes: X H x W x C, Y OH x OW x C (pixel stride C), Wt kh*kw x C, bias C or NULL; output rows [oy0, oy1).
//
// Each output row splits into border pixels (some tap column outside the input: taps checked one by one) and an
// interior run where every tap column is inside, computed several pixels at a time so each W vector loaded serves
// several FMAs; for 3x3 and 5x5 (EfficientNet), stride 1 and 2, the tap loops are unrolled and neighbouring pixels
// share their X loads.
// Rows of taps outside the input (top and bottom padding) are skipped for the whole row, never read.
#include "vector.h"

// Interior pixels per block: 8 in the 3x3 and 5x5 fast paths (each W vector loaded serves 8 FMAs; measured best of
// 4, 6, 8 for stride 1 and 2), 4 for other kernels.
#define KZ_PB_MAX 8

#if KZ_DW_WIDE
#define KZ_L 16
#include "dwconv_lanes.h"
#endif
#define KZ_L 8
#include "dwconv_lanes.h"

// One border pixel: taps i in [i0, i1), j in [j0, j1) are inside the input. (iy, ix): input position of tap (0, 0).
static void kz_dw_pixel(const float *X, int W, int C, const float *Wt, int kw, int iy, int ix, int i0, int i1, int j0,
                        int j1, const float *bias, float *y, float lo, float hi) {
    int c = 0;
#if KZ_DW_WIDE
    c = kz_dw_pixel_16(c, X, W, C, Wt, kw, iy, ix, i0, i1, j0, j1, bias, y, lo, hi);
#endif
    c = kz_dw_pixel_8(c, X, W, C, Wt, kw, iy, ix, i0, i1, j0, j1, bias, y, lo, hi);
    for (; c < C; c++) {
        float acc = bias ? bias[c] : 0;
        for (int i = i0; i < i1; i++)
            for (int j = j0; j < j1; j++)
                acc += X[((size_t)(iy + i) * W + ix + j) * C + c] * Wt[(size_t)(i * kw + j) * C + c];
        y[c] = kz_clamp1(acc, lo, hi);
    }
}

// np (<= KZ_PB_MAX) neighbouring interior pixels from output column ox; kw and sw are constants in the fast paths.
static inline __attribute__((always_inline)) void kz_dw_block(int np, const float *X, int W, int C, const float *Wt,
                                                              int kw, int sw, int iy, int ix, int i0, int i1,
                                                              const float *bias, float *y, float lo, float hi) {
    int c = 0;
#if KZ_DW_WIDE
    c = kz_dw_block_16(c, np, X, W, C, Wt, kw, sw, iy, ix, i0, i1, bias, y, lo, hi);
#endif
    c = kz_dw_block_8(c, np, X, W, C, Wt, kw, sw, iy, ix, i0, i1, bias, y, lo, hi);
    for (; c < C; c++) {
        for (int p = 0; p < np; p++) {
            float acc = bias ? bias[c] : 0;
            for (int i = i0; i < i1; i++)
                for (int j = 0; j < kw; j++)
                    acc += X[((size_t)(iy + i) * W + ix + p * sw + j) * C + c] * Wt[(size_t)(i * kw + j) * C + c];
            y[(size_t)p * C + c] = kz_clamp1(acc, lo, hi);
        }
    }
}

// Interior output columns [a, b) of one row.
static inline __attribute__((always_inline)) void kz_dw_run(int pb, const float *X, int W, int C, const float *Wt,
                                                            int kw, int sw, int pl, int iy, int i0, int i1, int a, int b,
                                                            const float *bias, float *yrow, float lo, float hi) {
    int ox = a;
    for (; ox + pb <= b; ox += pb)
        kz_dw_block(pb, X, W, C, Wt, kw, sw, iy, ox * sw - pl, i0, i1, bias, yrow + (size_t)ox * C, lo, hi);
    // Small planes have short interior runs: blocks of 4 before single pixels.
    for (; pb > 4 && ox + 4 <= b; ox += 4)
        kz_dw_block(4, X, W, C, Wt, kw, sw, iy, ox * sw - pl, i0, i1, bias, yrow + (size_t)ox * C, lo, hi);
    for (; ox < b; ox++)
        kz_dw_block(1, X, W, C, Wt, kw, sw, iy, ox * sw - pl, i0, i1, bias, yrow + (size_t)ox * C, lo, hi);
}

void KZ_DWCONV_NAME(KZ_DWCONV_ARGS) {
    // Interior columns [a, b): ox * sw - pl >= 0 and ox * sw - pl + kw <= W.
    int a = pl > 0 ? (pl + sw - 1) / sw : 0;
    if (a > OW) a = OW;
    int b = W - kw + pl >= 0 ? (W - kw + pl) / sw + 1 : 0;
    if (b > OW) b = OW;
    if (b < a) b = a;
    for (int oy = oy0; oy < oy1; oy++) {
        int iy = oy * sh - pt;
        int i0 = iy < 0 ? -iy : 0, i1 = H - iy < kh ? H - iy : kh;
        if (i1 < i0) i1 = i0;
        float *yrow = Y + (size_t)oy * OW * C;
        for (int ox = 0; ox < OW; ox++) {
            if (ox == a) ox = b;
            if (ox >= OW) break;
            int ix = ox * sw - pl;
            int j0 = ix < 0 ? -ix : 0, j1 = W - ix < kw ? W - ix : kw;
            if (j1 < j0) j1 = j0;
            kz_dw_pixel(X, W, C, Wt, kw, iy, ix, i0, i1, j0, j1, bias, yrow + (size_t)ox * C, lo, hi);
        }
        if (kw == 3 && sw == 1)
            kz_dw_run(8, X, W, C, Wt, 3, 1, pl, iy, i0, i1, a, b, bias, yrow, lo, hi);
        else if (kw == 3 && sw == 2)
            kz_dw_run(8, X, W, C, Wt, 3, 2, pl, iy, i0, i1, a, b, bias, yrow, lo, hi);
        else if (kw == 5 && sw == 1)
            kz_dw_run(8, X, W, C, Wt, 5, 1, pl, iy, i0, i1, a, b, bias, yrow, lo, hi);
        else if (kw == 5 && sw == 2)
            kz_dw_run(8, X, W, C, Wt, 5, 2, pl, iy, i0, i1, a, b, bias, yrow, lo, hi);
        else
            kz_dw_run(4, X, W, C, Wt, kw, sw, pl, iy, i0, i1, a, b, bias, yrow, lo, hi);
    }
}
