// The packed GEMM of kz_gemm_nhwc, included once per instruction set by gemm_<isa>.c, which defines:
//   KZ_GEMM_NAME  the function to define (signature KZ_GEMM_ARGS)
//   KZ_MR         rows per register tile (X values broadcast per k step)
//   KZ_NP         16-column panels per register tile (W vectors loaded per k step)
// The tile keeps KZ_MR x KZ_NP 16-float accumulators in registers: AVX2 6 x 1 (12 ymm), AVX-512 8 x 2 (16 zmm).
// A last panel of 8 columns or fewer runs 8-float vectors instead (kz_half).
//
// Shapes: X rows x K (stride ldx), packed W = ceil(M/16) panels of K x 16 floats (panel p holds columns 16p..16p+15,
// zero beyond M), Y and R rows x M (strides ldy, ldr).
//
// Blocking (why): rows go in blocks of KZ_RB; inside one, K goes in blocks of KZ_KB so the W slice a tile walks
// (KZ_KB x 16 x KZ_NP floats, 16-32 KB) stays in L1 while every row tile of the block passes over it, and the
// X block (KZ_RB x KZ_KB floats, ~120 KB) stays in L2 across all panels. With K split, the first K block adds bias
// and R, later blocks add the partial sums already in Y, and only the last one clamps; R is read before the Y
// element of the same position is written, which is what lets Y alias R.
#include "vector.h"

#if KZ_MR < 2 || KZ_NP < 1 || KZ_NP > 2
#error "tiles need 2..12 rows and 1 or 2 panels"
#endif

#define KZ_KB 256
#define KZ_RB (KZ_MR * (120 / KZ_MR))

// Accumulates a tile of nr rows x np panels over kc steps of K. x: first row at the block's first k; w: first panel
// at the block's first k; ps: floats between panels (K * 16). nr and np are constants after inlining, so the
// accumulators are registers and the loops disappear.
static inline __attribute__((always_inline)) void kz_tile(int nr, int np, const float *x, size_t ldx, const float *w,
                                                          size_t ps, int kc, kz_v16 acc[KZ_MR][KZ_NP]) {
    for (int i = 0; i < nr; i++)
        for (int p = 0; p < np; p++) acc[i][p] = (kz_v16){0};
    for (int k = 0; k < kc; k++) {
        kz_v16 wv[KZ_NP];
        for (int p = 0; p < np; p++) wv[p] = kz_load16(w + p * ps + (size_t)k * 16);
        for (int i = 0; i < nr; i++) {
            float xv = x[i * ldx + k];
            for (int p = 0; p < np; p++) acc[i][p] += xv * wv[p];
        }
    }
}

// The epilogue of one row's last, partial panel, lane by lane from a stack copy of the accumulator (nothing past M
// is read or written): bias, R, Y and lanes start at the panel's first column; n columns exist.
static inline __attribute__((always_inline)) void kz_store_tail(const float *lanes, int n, const float *bias,
                                                                const float *R, float *Y, int first, int last,
                                                                float lo, float hi) {
    for (int j = 0; j < n; j++) {
        float v = lanes[j];
        if (first) {
            if (bias) v += bias[j];
            if (R) v += R[j];
        } else {
            v += Y[j];
        }
        Y[j] = last ? kz_clamp1(v, lo, hi) : v;
    }
}

// Everything after the sum, while the tile is in registers: bias and R on the first K block, Y's partial sums on
// later ones, the clamp on the last. c0: first column of the tile; cols: columns of the tile that exist (< 16 * np
// only in the last panel, done lane by lane through a stack copy so nothing past M is read or written).
static inline __attribute__((always_inline)) void kz_finish(int nr, int np, kz_v16 acc[KZ_MR][KZ_NP], int c0, int cols,
                                                            const float *bias, const float *R, size_t ldr, float *Y,
                                                            size_t ldy, int first, int last, float lo, float hi) {
    kz_v16 lov = (kz_v16){0} + lo, hiv = (kz_v16){0} + hi;
    for (int p = 0; p < np; p++) {
        int c = c0 + p * 16, n = cols - p * 16;
        if (n >= 16) {
            kz_v16 b = first && bias ? kz_load16(bias + c) : (kz_v16){0};
            for (int i = 0; i < nr; i++) {
                kz_v16 v = acc[i][p];
                if (first) {
                    v += b;
                    if (R) v += kz_load16(R + i * ldr + c);
                } else {
                    v += kz_load16(Y + i * ldy + c);
                }
                if (last) v = kz_clamp16(v, lov, hiv);
                kz_store16(Y + i * ldy + c, v);
            }
        } else {
            for (int i = 0; i < nr; i++) {
                float lanes[16];
                kz_store16(lanes, acc[i][p]);
                kz_store_tail(lanes, n, bias ? bias + c : NULL, R ? R + i * ldr + c : NULL, Y + i * ldy + c, first, last, lo, hi);
            }
        }
    }
}

// The group's last panel when it has 8 columns or fewer (M % 16 in 1..8, e.g. M = 24): 8-float vectors, so no FMA
// is spent on the panel's zero half. c: its first column; n: its columns.
static inline __attribute__((always_inline)) void kz_half(int nr, const float *x, size_t ldx, const float *w, int kc,
                                                          int c, int n, const float *bias, const float *R, size_t ldr,
                                                          float *Y, size_t ldy, int first, int last, float lo,
                                                          float hi) {
    kz_v8 acc[KZ_MR];
    for (int i = 0; i < nr; i++) acc[i] = (kz_v8){0};
    for (int k = 0; k < kc; k++) {
        kz_v8 wv = kz_load8(w + (size_t)k * 16);
        for (int i = 0; i < nr; i++) acc[i] += x[i * ldx + k] * wv;
    }
    kz_v8 lov = (kz_v8){0} + lo, hiv = (kz_v8){0} + hi;
    kz_v8 b = first && bias && n == 8 ? kz_load8(bias + c) : (kz_v8){0};
    for (int i = 0; i < nr; i++) {
        if (n == 8) {
            kz_v8 v = acc[i];
            if (first) {
                v += b;
                if (R) v += kz_load8(R + i * ldr + c);
            } else {
                v += kz_load8(Y + i * ldy + c);
            }
            if (last) v = kz_clamp8(v, lov, hiv);
            kz_store8(Y + i * ldy + c, v);
            continue;
        }
        float lanes[8];
        kz_store8(lanes, acc[i]);
        kz_store_tail(lanes, n, bias ? bias + c : NULL, R ? R + i * ldr + c : NULL, Y + i * ldy + c, first, last, lo, hi);
    }
}

// Tile kinds: KZ_NP full panels, one full panel (the last group when panels % KZ_NP != 0), or a half panel.
enum { KZ_GROUP, KZ_ONE, KZ_HALF };

static inline __attribute__((always_inline)) void kz_tile_finish(int nr, int kind, const float *x, size_t ldx,
                                                                 const float *w, size_t ps, int kc, int c0, int cols,
                                                                 const float *bias, const float *R, size_t ldr,
                                                                 float *Y, size_t ldy, int first, int last, float lo,
                                                                 float hi) {
    if (kind == KZ_HALF) {
        kz_half(nr, x, ldx, w, kc, c0, cols, bias, R, ldr, Y, ldy, first, last, lo, hi);
        return;
    }
    int np = kind == KZ_GROUP ? KZ_NP : 1;
    kz_v16 acc[KZ_MR][KZ_NP];
    kz_tile(nr, np, x, ldx, w, ps, kc, acc);
    kz_finish(nr, np, acc, c0, cols, bias, R, ldr, Y, ldy, first, last, lo, hi);
}

// One tile of a kind: full-height tiles take the first case; the switch gives each row count its own register
// allocation.
static inline __attribute__((always_inline)) void kz_tile_rows(int nr, int kind, const float *x, size_t ldx,
                                                               const float *w, size_t ps, int kc, int c0, int cols,
                                                               const float *bias, const float *R, size_t ldr,
                                                               float *Y, size_t ldy, int first, int last, float lo,
                                                               float hi) {
#define KZ_ROWS(n)                                                                                                 \
    case n:                                                                                                        \
        kz_tile_finish(n, kind, x, ldx, w, ps, kc, c0, cols, bias, R, ldr, Y, ldy, first, last, lo, hi);             \
        break;
    switch (nr) {
        KZ_ROWS(KZ_MR)
        KZ_ROWS(1)
#if KZ_MR > 2
        KZ_ROWS(2)
#endif
#if KZ_MR > 3
        KZ_ROWS(3)
#endif
#if KZ_MR > 4
        KZ_ROWS(4)
#endif
#if KZ_MR > 5
        KZ_ROWS(5)
#endif
#if KZ_MR > 6
        KZ_ROWS(6)
#endif
#if KZ_MR > 7
        KZ_ROWS(7)
#endif
#if KZ_MR > 8
        KZ_ROWS(8)
#endif
#if KZ_MR > 9
        KZ_ROWS(9)
#endif
#if KZ_MR > 10
        KZ_ROWS(10)
#endif
#if KZ_MR > 11
        KZ_ROWS(11)
#endif
#if KZ_MR > 12
#error "KZ_MR above 12 needs more cases"
#endif
    }
#undef KZ_ROWS
}

void KZ_GEMM_NAME(KZ_GEMM_ARGS) {
    int panels = (M + 15) / 16;
    size_t ps = (size_t)K * 16;
    for (size_t r0 = 0; r0 < rows; r0 += KZ_RB) {
        size_t rb = rows - r0 < KZ_RB ? rows - r0 : KZ_RB;
        // K == 0 still runs one (empty) block: Y = clamp(bias + R).
        int k0 = 0;
        do {
            int kc = K - k0 < KZ_KB ? K - k0 : KZ_KB;
            int first = k0 == 0, last = k0 + kc >= K;
            for (int p0 = 0; p0 < panels; p0 += KZ_NP) {
                const float *w = packed + (size_t)p0 * ps + (size_t)k0 * 16;
                int c0 = p0 * 16, cols = M - c0;
                // np panels in this group; tail: columns of its last panel (1..16).
                int np = panels - p0 < KZ_NP ? panels - p0 : KZ_NP, tail = cols - 16 * (np - 1);
                if (tail > 16) tail = 16;
                for (size_t i0 = 0; i0 < rb; i0 += KZ_MR) {
                    size_t r = r0 + i0;
                    int nr = rb - i0 < KZ_MR ? (int)(rb - i0) : KZ_MR;
                    const float *x = X + r * ldx + k0;
                    const float *rr = R ? R + r * ldr : NULL;
                    float *y = Y + r * ldy;
                    if (tail <= 8) {
#if KZ_NP > 1
                        if (np == 2)
                            kz_tile_rows(nr, KZ_ONE, x, ldx, w, ps, kc, c0, 16, bias, rr, ldr, y, ldy, first, last, lo,
                                         hi);
#endif
                        kz_tile_rows(nr, KZ_HALF, x, ldx, w + (size_t)(np - 1) * ps, ps, kc, c0 + 16 * (np - 1), tail,
                                     bias, rr, ldr, y, ldy, first, last, lo, hi);
                    } else if (np == KZ_NP) {
                        kz_tile_rows(nr, KZ_GROUP, x, ldx, w, ps, kc, c0, cols, bias, rr, ldr, y, ldy, first, last, lo,
                                     hi);
                    } else {
                        kz_tile_rows(nr, KZ_ONE, x, ldx, w, ps, kc, c0, cols, bias, rr, ldr, y, ldy, first, last, lo,
                                     hi);
                    }
                }
            }
            k0 += kc;
        } while (k0 < K);
    }
}
