// CPU features that decide which OpenBLAS kernels Kizuki asks for, read with CPUID.
#ifndef KIZUKI_CPU_H
#define KIZUKI_CPU_H

#include <stdbool.h>
#include <stddef.h>

/// What the processor offers *and* the operating system enables (AVX and AVX-512 need their
/// register state saved by the OS, AMX its tile state), so every flag here is safe to use.
typedef struct {
    char vendor[13];   // "GenuineIntel", "AuthenticAMD", ... ("" off x86)
    char brand[49];    // the processor's own name string, e.g. "Intel(R) Xeon(R) Platinum 8488C"
    unsigned family;   // display family and model, as in /proc/cpuinfo
    unsigned model;
    bool sse3, ssse3, sse4_1, sse4_2, avx, fma, f16c, avx2;
    bool avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512_vnni, avx512_bf16, avx512_fp16;
    bool amx_tile, amx_bf16, amx_int8;
} kizuki_cpu_features;

/// Reads the features of the processor this runs on (all false off x86-64).
void kizuki_cpu_detect(kizuki_cpu_features *out);

/// Writes the names of the vector features present, space separated ("avx2 fma ..."), into
/// `buffer` (always terminated); returns the length the full list needs.
size_t kizuki_cpu_feature_list(const kizuki_cpu_features *features, char *buffer, size_t size);

/// The OpenBLAS core (OPENBLAS_CORETYPE value) whose kernels fit these features best, or NULL when
/// OpenBLAS's own detection should decide (no AVX2+FMA):
///   AVX-512 F+VL+BW+DQ -> "Cooperlake" with AVX512_BF16, else "SkylakeX";
///   AVX2+FMA -> "Zen" on AMD and Hygon, "Haswell" otherwise.
const char *kizuki_blas_core_for(const kizuki_cpu_features *features);

#endif
