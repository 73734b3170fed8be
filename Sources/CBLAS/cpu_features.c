// CPUID and XGETBV decoding for kizuki_cpu.h.
#include "kizuki_cpu.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static bool bit(unsigned value, int index) { return (value >> index) & 1u; }

// Which register states the OS saves on a context switch (XCR0).
static unsigned long long enabled_state(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void kizuki_cpu_detect(kizuki_cpu_features *out) {
    memset(out, 0, sizeof *out);
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);

    __get_cpuid(1, &a, &b, &c, &d);
    unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    out->family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
    out->model = (base_family == 6 || base_family == 0xf) ? base_model | (((a >> 16) & 0xf) << 4) : base_model;
    out->sse3 = bit(c, 0);
    out->ssse3 = bit(c, 9);
    out->sse4_1 = bit(c, 19);
    out->sse4_2 = bit(c, 20);
    unsigned long long xcr0 = bit(c, 27) ? enabled_state() : 0;  // bit 27: OSXSAVE
    bool ymm = (xcr0 & 0x6) == 0x6;                  // SSE and AVX state
    bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;         // opmask, ZMM0-15 upper halves, ZMM16-31
    bool tiles = (xcr0 & 0x60000) == 0x60000;        // TILECFG and TILEDATA
    out->avx = ymm && bit(c, 28);
    out->fma = ymm && bit(c, 12);
    out->f16c = ymm && bit(c, 29);

    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned subleaves = a;
        out->avx2 = ymm && bit(b, 5);
        out->avx512f = zmm && bit(b, 16);
        out->avx512dq = zmm && bit(b, 17);
        out->avx512cd = zmm && bit(b, 28);
        out->avx512bw = zmm && bit(b, 30);
        out->avx512vl = zmm && bit(b, 31);
        out->avx512_vnni = zmm && bit(c, 11);
        out->avx512_fp16 = zmm && bit(d, 23);
        out->amx_bf16 = tiles && bit(d, 22);
        out->amx_tile = tiles && bit(d, 24);
        out->amx_int8 = tiles && bit(d, 25);
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            out->avx512_bf16 = zmm && bit(a, 5);
        }
    }

    __get_cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000004) {
        unsigned words[12];
        for (unsigned leaf = 0; leaf < 3; leaf++)
            __get_cpuid(0x80000002 + leaf, &words[4 * leaf], &words[4 * leaf + 1], &words[4 * leaf + 2], &words[4 * leaf + 3]);
        memcpy(out->brand, words, 48);
        // The string is padded with spaces on some parts: trim both ends.
        char *start = out->brand;
        while (*start == ' ') start++;
        memmove(out->brand, start, strlen(start) + 1);
        for (size_t n = strlen(out->brand); n > 0 && out->brand[n - 1] == ' '; n--) out->brand[n - 1] = 0;
    }
}
#else
void kizuki_cpu_detect(kizuki_cpu_features *out) { memset(out, 0, sizeof *out); }
#endif

size_t kizuki_cpu_feature_list(const kizuki_cpu_features *f, char *buffer, size_t size) {
    const struct { bool present; const char *name; } all[] = {
        {f->sse3, "sse3"}, {f->ssse3, "ssse3"}, {f->sse4_1, "sse4.1"}, {f->sse4_2, "sse4.2"},
        {f->avx, "avx"}, {f->f16c, "f16c"}, {f->fma, "fma"}, {f->avx2, "avx2"},
        {f->avx512f, "avx512f"}, {f->avx512dq, "avx512dq"}, {f->avx512cd, "avx512cd"},
        {f->avx512bw, "avx512bw"}, {f->avx512vl, "avx512vl"}, {f->avx512_vnni, "avx512_vnni"},
        {f->avx512_bf16, "avx512_bf16"}, {f->avx512_fp16, "avx512_fp16"},
        {f->amx_tile, "amx_tile"}, {f->amx_bf16, "amx_bf16"}, {f->amx_int8, "amx_int8"},
    };
    size_t length = 0;
    if (size > 0) buffer[0] = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i].present) continue;
        int wrote = snprintf(length < size ? buffer + length : NULL, length < size ? size - length : 0,
                             "%s%s", length ? " " : "", all[i].name);
        if (wrote > 0) length += (size_t)wrote;
    }
    return length;
}

const char *kizuki_blas_core_for(const kizuki_cpu_features *f) {
    if (f->avx512f && f->avx512vl && f->avx512bw && f->avx512dq)
        return f->avx512_bf16 ? "Cooperlake" : "SkylakeX";
    if (f->avx2 && f->fma) {
        bool amd = strcmp(f->vendor, "AuthenticAMD") == 0 || strcmp(f->vendor, "HygonGenuine") == 0;
        return amd ? "Zen" : "Haswell";
    }
    return NULL;
}
