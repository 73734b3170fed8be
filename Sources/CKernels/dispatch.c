// Chooses the kernels' instruction set once, from what the CPU and OS support (CPUID and XCR0, through
// __builtin_cpu_supports), lowered by env KIZUKI_ISA or kz_kernels_set_isa; never from compile flags, so a
// build without -march=native still runs AVX2 and AVX-512 code, and a -march=native build still runs the
// portable code when asked.
#include "kizuki_kernels.h"
#include "kernels_internal.h"

#include <stdlib.h>
#include <string.h>

enum { KZ_GENERIC = 0, KZ_AVX2 = 1, KZ_AVX512 = 2 };

static int kz_hardware_isa(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return KZ_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return KZ_AVX2;
#endif
    return KZ_GENERIC;
}

// -1 until the first call. Racing first calls compute the same value, so a relaxed store is enough.
static int kz_isa = -1;

static int kz_choose(int wanted) {
    int hardware = kz_hardware_isa();
    int isa = wanted < hardware ? wanted : hardware;
    __atomic_store_n(&kz_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

int kz_kernels_isa(void) {
    int isa = __atomic_load_n(&kz_isa, __ATOMIC_RELAXED);
    if (isa >= 0) return isa;
    const char *env = getenv("KIZUKI_ISA");
    // The widest the hardware has unless asked lower. (AVX-512 checked on an AMD EPYC Zen 4, where it runs as fast as
    // AVX2 for the GEMM, whose FMAs are 256 bits wide inside, and 3-5 % faster for the depthwise kernel: fewer loads.)
    int wanted = KZ_AVX512;
    if (env && strcmp(env, "avx512") == 0) wanted = KZ_AVX512;
    if (env && strcmp(env, "generic") == 0) wanted = KZ_GENERIC;
    if (env && strcmp(env, "avx2") == 0) wanted = KZ_AVX2;
    return kz_choose(wanted);
}

int kz_kernels_set_isa(int isa) { return kz_choose(isa < KZ_GENERIC ? KZ_GENERIC : isa); }

const char *kz_kernels_isa_name(void) {
    static const char *const names[] = {"generic", "avx2", "avx512"};
    return names[kz_kernels_isa()];
}

void kz_gemm_nhwc(const float *X, size_t ldx, const float *packed, int K, int M, const float *bias, const float *R,
                  size_t ldr, float *Y, size_t ldy, size_t rows, float lo, float hi) {
    switch (kz_kernels_isa()) {
#if defined(__x86_64__)
    case KZ_AVX512: kz_gemm_avx512(X, ldx, packed, K, M, bias, R, ldr, Y, ldy, rows, lo, hi); return;
    case KZ_AVX2: kz_gemm_avx2(X, ldx, packed, K, M, bias, R, ldr, Y, ldy, rows, lo, hi); return;
#endif
    default: kz_gemm_generic(X, ldx, packed, K, M, bias, R, ldr, Y, ldy, rows, lo, hi);
    }
}

void kz_dwconv_nhwc(const float *X, int H, int W, int C, const float *Wt, int kh, int kw, int sh, int sw, int pt,
                    int pl, const float *bias, float *Y, int OH, int OW, int oy0, int oy1, float lo, float hi) {
    switch (kz_kernels_isa()) {
#if defined(__x86_64__)
    case KZ_AVX512: kz_dwconv_avx512(X, H, W, C, Wt, kh, kw, sh, sw, pt, pl, bias, Y, OH, OW, oy0, oy1, lo, hi); return;
    case KZ_AVX2: kz_dwconv_avx2(X, H, W, C, Wt, kh, kw, sh, sw, pt, pl, bias, Y, OH, OW, oy0, oy1, lo, hi); return;
#endif
    default: kz_dwconv_generic(X, H, W, C, Wt, kh, kw, sh, sw, pt, pl, bias, Y, OH, OW, oy0, oy1, lo, hi);
    }
}
