// The vector part of the depthwise kernel at one vector width, included by dwconv_body.h once per width it uses
// (KZ_L = 16 or 8 floats): kz_dw_pixel_<L> and kz_dw_block_<L> compute channels [c, C) in whole L-float vectors and
// return the first channel they left, so a wider pass is followed by narrower ones and then lane-by-lane code.
// Shapes and arguments are those of dwconv_body.h.
#if KZ_L == 16
#define KZ_VT kz_v16
#define KZ_LD kz_load16
#define KZ_ST kz_store16
#define KZ_CL kz_clamp16
#elif KZ_L == 8
#define KZ_VT kz_v8
#define KZ_LD kz_load8
#define KZ_ST kz_store8
#define KZ_CL kz_clamp8
#else
#error "KZ_L must be 8 or 16"
#endif
#define KZ_PASTE2(a, b) a##_##b
#define KZ_PASTE(a, b) KZ_PASTE2(a, b)
#define KZ_LN(name) KZ_PASTE(name, KZ_L)

// Channels of one border pixel (taps i in [i0, i1), j in [j0, j1) inside the input; (iy, ix): tap (0, 0)).
static inline __attribute__((always_inline)) int KZ_LN(kz_dw_pixel)(int c, const float *X, int W, int C,
                                                                    const float *Wt, int kw, int iy, int ix, int i0,
                                                                    int i1, int j0, int j1, const float *bias, float *y,
                                                                    float lo, float hi) {
    KZ_VT lov = (KZ_VT){0} + lo, hiv = (KZ_VT){0} + hi;
    // Four vectors per pass over the taps, so the tap loops' overhead is shared by four FMAs.
    for (; c + 4 * KZ_L <= C; c += 4 * KZ_L) {
        KZ_VT acc[4];
        for (int q = 0; q < 4; q++) acc[q] = bias ? KZ_LD(bias + c + KZ_L * q) : (KZ_VT){0};
        for (int i = i0; i < i1; i++) {
            // Both start at tap column j0, so no pointer is ever formed left of the input.
            const float *row = X + ((size_t)(iy + i) * W + (ix + j0)) * C + c;
            const float *wr = Wt + ((size_t)i * kw + j0) * C + c;
            for (int j = 0; j < j1 - j0; j++)
                for (int q = 0; q < 4; q++)
                    acc[q] += KZ_LD(row + (size_t)j * C + KZ_L * q) * KZ_LD(wr + (size_t)j * C + KZ_L * q);
        }
        for (int q = 0; q < 4; q++) KZ_ST(y + c + KZ_L * q, KZ_CL(acc[q], lov, hiv));
    }
    for (; c + KZ_L <= C; c += KZ_L) {
        KZ_VT acc = bias ? KZ_LD(bias + c) : (KZ_VT){0};
        for (int i = i0; i < i1; i++) {
            const float *row = X + ((size_t)(iy + i) * W + (ix + j0)) * C + c;
            const float *wr = Wt + ((size_t)i * kw + j0) * C + c;
            for (int j = 0; j < j1 - j0; j++) acc += KZ_LD(row + (size_t)j * C) * KZ_LD(wr + (size_t)j * C);
        }
        KZ_ST(y + c, KZ_CL(acc, lov, hiv));
    }
    return c;
}

// Channels of np (<= KZ_PB_MAX) neighbouring interior pixels, each W vector loaded once for all of them.
static inline __attribute__((always_inline)) int KZ_LN(kz_dw_block)(int c, int np, const float *X, int W, int C,
                                                                    const float *Wt, int kw, int sw, int iy, int ix,
                                                                    int i0, int i1, const float *bias, float *y,
                                                                    float lo, float hi) {
    KZ_VT lov = (KZ_VT){0} + lo, hiv = (KZ_VT){0} + hi;
    for (; c + KZ_L <= C; c += KZ_L) {
        KZ_VT b = bias ? KZ_LD(bias + c) : (KZ_VT){0};
        KZ_VT acc[KZ_PB_MAX];
        for (int p = 0; p < np; p++) acc[p] = b;
        for (int i = i0; i < i1; i++) {
            const float *row = X + ((size_t)(iy + i) * W + ix) * C + c, *wr = Wt + (size_t)i * kw * C + c;
            for (int j = 0; j < kw; j++) {
                KZ_VT wv = KZ_LD(wr + (size_t)j * C);
                for (int p = 0; p < np; p++) acc[p] += KZ_LD(row + (size_t)(p * sw + j) * C) * wv;
            }
        }
        for (int p = 0; p < np; p++) KZ_ST(y + (size_t)p * C + c, KZ_CL(acc[p], lov, hiv));
    }
    return c;
}

#undef KZ_VT
#undef KZ_LD
#undef KZ_ST
#undef KZ_CL
#undef KZ_PASTE2
#undef KZ_PASTE
#undef KZ_LN
#undef KZ_L
