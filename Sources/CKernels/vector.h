// Fixed-width float vectors (clang vector extensions) shared by the kernel bodies. Each kernel file compiles them
// for its own instruction set: a 16-float vector is one zmm register under AVX-512, two ymm under AVX2, four xmm on
// a portable build, so one body serves every ISA and only the tile sizes differ.
#ifndef KIZUKI_KERNELS_VECTOR_H
#define KIZUKI_KERNELS_VECTOR_H

// Every helper below is inlined, so no vector crosses a call and clang's ABI note about wide vectors passed
// without AVX does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float kz_v16 __attribute__((vector_size(64)));
typedef int kz_m16 __attribute__((vector_size(64)));
typedef float kz_v8 __attribute__((vector_size(32)));
typedef int kz_m8 __attribute__((vector_size(32)));

// Unaligned loads and stores: buffers come from Swift with 4-byte alignment only; memcpy compiles to one move.
static inline __attribute__((always_inline)) kz_v16 kz_load16(const float *p) {
    kz_v16 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void kz_store16(float *p, kz_v16 v) { __builtin_memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) kz_v8 kz_load8(const float *p) {
    kz_v8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void kz_store8(float *p, kz_v8 v) { __builtin_memcpy(p, &v, sizeof v); }

// clamp(v, lo, hi) by compare and select, so a NaN stays NaN (as in ONNX Clip) instead of becoming a bound.
static inline __attribute__((always_inline)) kz_v16 kz_clamp16(kz_v16 v, kz_v16 lo, kz_v16 hi) {
    kz_m16 below = v < lo;
    kz_v16 low = (kz_v16)(((kz_m16)v & ~below) | ((kz_m16)lo & below));  // one blend per select
    kz_m16 above = low > hi;
    return (kz_v16)(((kz_m16)low & ~above) | ((kz_m16)hi & above));
}
static inline __attribute__((always_inline)) kz_v8 kz_clamp8(kz_v8 v, kz_v8 lo, kz_v8 hi) {
    kz_m8 below = v < lo;
    kz_v8 low = (kz_v8)(((kz_m8)v & ~below) | ((kz_m8)lo & below));  // one blend per select
    kz_m8 above = low > hi;
    return (kz_v8)(((kz_m8)low & ~above) | ((kz_m8)hi & above));
}
static inline __attribute__((always_inline)) float kz_clamp1(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

#endif
