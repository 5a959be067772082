#ifndef LOWRANK_CKERNELS_HALF_H
#define LOWRANK_CKERNELS_HALF_H
// Scalar conversions between Float32 and the 16-bit formats, shared by the portable kernels and
// the scalar tails of the vector ones (private to CKernels).
#include <stdint.h>
#include <string.h>

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0) {
        if (mantissa == 0) { bits = sign; }
        else {  // subnormal: normalise
            int e = -1;
            do { e++; mantissa <<= 1; } while (!(mantissa & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mantissa & 0x3ff) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000 | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}

static inline float identity_f(float v) { return v; }

// Float32 to IEEE half, rounding to nearest even (as F16C's vcvtps2ph and Swift's Float16(_:)
// do), except that finite values beyond the half range (|x| >= 65520, which would round to
// infinity) saturate to ±65504; returns 1 for such a value so callers can count them.
static inline uint16_t float_to_half_saturating(float f, int *saturated) {
    uint32_t x; memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff);  // NaN stays NaN
    if (a >= 0x477ff000) {  // rounds to infinity (infinity itself stays infinite)
        if (a == 0x7f800000) return sign | 0x7c00;
        *saturated = 1;
        return sign | 0x7bff;
    }
    if (a >= 0x38800000) {  // normal in half: rebias the exponent, round 23 mantissa bits to 10
        uint32_t h = a - 0x38000000;
        return sign | (uint16_t)((h + 0xfff + ((h >> 13) & 1)) >> 13);
    }
    uint32_t exponent = a >> 23;
    if (exponent < 102) return sign;  // below half of the smallest subnormal: zero
    uint32_t m = (a & 0x7fffff) | 0x800000, shift = 126 - exponent;  // value = m · 2^(exponent − 150) = n · 2^−24
    uint32_t n = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (n & 1))) n++;
    return sign | (uint16_t)n;
}

#endif
