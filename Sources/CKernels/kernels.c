#include "CKernels.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))
#endif

// ---- portable fallbacks ----

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

static void gemv_f32_portable(const float *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
    for (size_t r = b; r < e; r++) { float s = 0; for (size_t i = 0; i < n; i++) s += w[r * ld + i] * x[i]; y[r] = s; }
}
static void gemv_f16_portable(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
    for (size_t r = b; r < e; r++) { float s = 0; for (size_t i = 0; i < n; i++) s += half_to_float(w[r * ld + i]) * x[i]; y[r] = s; }
}
static void gemv_bf16_portable(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
    for (size_t r = b; r < e; r++) { float s = 0; for (size_t i = 0; i < n; i++) s += bf16_to_float(w[r * ld + i]) * x[i]; y[r] = s; }
}

// y[0..n) = sum_{k in [b, e)} x[k] * w[k * ld + 0..n): the transposed product, one weight row at a time.
#define GEMV_T_PORTABLE(NAME, T, WIDEN)                                                                     \
    static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {     \
        for (size_t j = 0; j < n; j++) y[j] = 0;                                                             \
        for (size_t k = b; k < e; k++) { const T *wr = w + k * ld; float xk = x[k];                        \
            for (size_t j = 0; j < n; j++) y[j] += xk * WIDEN(wr[j]); }                                    \
    }
static inline float identity_f(float v) { return v; }
GEMV_T_PORTABLE(gemv_t_f32_portable, float, identity_f)
GEMV_T_PORTABLE(gemv_t_f16_portable, uint16_t, half_to_float)
GEMV_T_PORTABLE(gemv_t_bf16_portable, uint16_t, bf16_to_float)

#if defined(__x86_64__)
// ---- AVX-512: one row at a time, 64 values per step in four independent accumulators. Streaming
// one row after another measured about twice the bandwidth of interleaving four rows (the hardware
// prefetcher follows one sequential stream best; docs/BENCHMARKS.md). ----

AVX512 static inline __m512 load_f32(const float *p) { return _mm512_loadu_ps(p); }
AVX512 static inline __m512 load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
AVX512 static inline __m512 load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
// Masked loads of the last k < 16 values of a row (zeros beyond): short rows, such as a left
// factor at rank 230 or an active rank, would otherwise end in a scalar loop.
AVX512 static inline __m512 load_f32_masked(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
AVX512 static inline __m512 load_f16_masked(const uint16_t *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
AVX512 static inline __m512 load_bf16_masked(const uint16_t *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

#define GEMV_AVX512(NAME, T, LOAD, LOAD_MASKED)                                                             \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        for (size_t r = b; r < e; r++) {                                                                     \
            const T *wr = w + r * ld;                                                                        \
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps(); \
            size_t i = 0;                                                                                    \
            for (; i + 64 <= n; i += 64) {                                                                   \
                a0 = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a0);                              \
                a1 = _mm512_fmadd_ps(LOAD(wr + i + 16), _mm512_loadu_ps(x + i + 16), a1);                    \
                a2 = _mm512_fmadd_ps(LOAD(wr + i + 32), _mm512_loadu_ps(x + i + 32), a2);                    \
                a3 = _mm512_fmadd_ps(LOAD(wr + i + 48), _mm512_loadu_ps(x + i + 48), a3);                    \
            }                                                                                                \
            for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a0);   \
            if (i < n) {                                                                                     \
                __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                              \
                a1 = _mm512_fmadd_ps(LOAD_MASKED(wr + i, m), _mm512_maskz_loadu_ps(m, x + i), a1);          \
            }                                                                                                \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));      \
        }                                                                                                    \
    }

// Short rows (attention scores: a head of 64 values per cached key): the horizontal sum of each
// row's accumulator costs more than its few FMAs, so 16 rows are summed together by a transposing
// reduction (16 vectors of partial sums -> one vector of 16 row sums, 15 adds and 24 shuffles).
AVX512 static inline __m512 reduce16(__m512 v[16]) {
    __m512 w[8], u[4];
    for (int i = 0; i < 8; i++) w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(w[2 * i]), b = _mm512_castps_pd(w[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    __m512 p01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    __m512 p23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(p01, p23, 0x88), _mm512_shuffle_f32x4(p01, p23, 0xDD));
}

#define GEMV_SHORT_AVX512(NAME, T, LOAD, LOAD_MASKED)                                                       \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        size_t full = n & ~(size_t)15;                                                                       \
        __mmask16 m = (__mmask16)((1u << (n - full)) - 1);                                                   \
        size_t r = b;                                                                                        \
        for (; r + 16 <= e; r += 16) {                                                                       \
            __m512 acc[16];                                                                                  \
            for (int k = 0; k < 16; k++) {                                                                   \
                const T *wr = w + (r + k) * ld;                                                              \
                __m512 a = _mm512_setzero_ps();                                                              \
                for (size_t i = 0; i < full; i += 16) a = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a); \
                if (m) a = _mm512_fmadd_ps(LOAD_MASKED(wr + full, m), _mm512_maskz_loadu_ps(m, x + full), a);  \
                acc[k] = a;                                                                                  \
            }                                                                                                \
            _mm512_storeu_ps(y + r, reduce16(acc));                                                          \
        }                                                                                                    \
        for (; r < e; r++) {                                                                                 \
            const T *wr = w + r * ld;                                                                        \
            __m512 a = _mm512_setzero_ps();                                                                  \
            for (size_t i = 0; i < full; i += 16) a = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a); \
            if (m) a = _mm512_fmadd_ps(LOAD_MASKED(wr + full, m), _mm512_maskz_loadu_ps(m, x + full), a);      \
            y[r] = _mm512_reduce_add_ps(a);                                                                  \
        }                                                                                                    \
    }
GEMV_SHORT_AVX512(gemv_short_f32_avx512, float, load_f32, load_f32_masked)
GEMV_SHORT_AVX512(gemv_short_f16_avx512, uint16_t, load_f16, load_f16_masked)
GEMV_SHORT_AVX512(gemv_short_bf16_avx512, uint16_t, load_bf16, load_bf16_masked)

GEMV_AVX512(gemv_f32_avx512, float, load_f32, load_f32_masked)
GEMV_AVX512(gemv_f16_avx512, uint16_t, load_f16, load_f16_masked)
GEMV_AVX512(gemv_bf16_avx512, uint16_t, load_bf16, load_bf16_masked)

// The transposed product streams the rows of W one after another (each row once, sequentially),
// accumulating into y, which stays in L1 (n ≤ a few thousand floats): a low-rank left factor kept
// as Bᵀ [rank × outputs], where one worker's share of the rank is a contiguous block of rows.
#define GEMV_T_AVX512(NAME, T, LOAD, LOAD_MASKED)                                                           \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        size_t full = n & ~(size_t)15;                                                                       \
        __mmask16 m = (__mmask16)((1u << (n - full)) - 1);                                                   \
        for (size_t j = 0; j < n; j++) y[j] = 0;                                                             \
        for (size_t k = b; k < e; k++) {                                                                     \
            const T *wr = w + k * ld;                                                                        \
            __m512 xk = _mm512_set1_ps(x[k]);                                                                \
            size_t j = 0;                                                                                    \
            for (; j + 64 <= full; j += 64) {                                                                \
                _mm512_storeu_ps(y + j, _mm512_fmadd_ps(LOAD(wr + j), xk, _mm512_loadu_ps(y + j)));          \
                _mm512_storeu_ps(y + j + 16, _mm512_fmadd_ps(LOAD(wr + j + 16), xk, _mm512_loadu_ps(y + j + 16))); \
                _mm512_storeu_ps(y + j + 32, _mm512_fmadd_ps(LOAD(wr + j + 32), xk, _mm512_loadu_ps(y + j + 32))); \
                _mm512_storeu_ps(y + j + 48, _mm512_fmadd_ps(LOAD(wr + j + 48), xk, _mm512_loadu_ps(y + j + 48))); \
            }                                                                                                \
            for (; j < full; j += 16) _mm512_storeu_ps(y + j, _mm512_fmadd_ps(LOAD(wr + j), xk, _mm512_loadu_ps(y + j))); \
            if (m) _mm512_mask_storeu_ps(y + full, m, _mm512_fmadd_ps(LOAD_MASKED(wr + full, m), xk, _mm512_maskz_loadu_ps(m, y + full))); \
        }                                                                                                    \
    }
// Narrow outputs (attention: a head of 64 values, summed over every cached position): y lives in
// up to 8 registers for the whole block of rows instead of a load and store per row.
#define GEMV_T_NARROW_AVX512(NAME, T, LOAD_MASKED)                                                          \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        __m512 acc[8];                                                                                       \
        __mmask16 m[8];                                                                                      \
        size_t chunks = (n + 15) / 16;                                                                       \
        for (size_t c = 0; c < 8; c++) {                                                                     \
            acc[c] = _mm512_setzero_ps();                                                                    \
            size_t left = c * 16 < n ? n - c * 16 : 0;                                                       \
            m[c] = (__mmask16)(left >= 16 ? 0xFFFF : ((1u << left) - 1));                                    \
        }                                                                                                    \
        for (size_t k = b; k < e; k++) {                                                                     \
            const T *wr = w + k * ld;                                                                        \
            __m512 xk = _mm512_set1_ps(x[k]);                                                                \
            for (size_t c = 0; c < chunks; c++) acc[c] = _mm512_fmadd_ps(LOAD_MASKED(wr + 16 * c, m[c]), xk, acc[c]); \
        }                                                                                                    \
        for (size_t c = 0; c < chunks; c++) _mm512_mask_storeu_ps(y + 16 * c, m[c], acc[c]);                 \
    }
GEMV_T_NARROW_AVX512(gemv_t_narrow_f32_avx512, float, load_f32_masked)
GEMV_T_NARROW_AVX512(gemv_t_narrow_f16_avx512, uint16_t, load_f16_masked)
GEMV_T_NARROW_AVX512(gemv_t_narrow_bf16_avx512, uint16_t, load_bf16_masked)

GEMV_T_AVX512(gemv_t_f32_avx512, float, load_f32, load_f32_masked)
GEMV_T_AVX512(gemv_t_f16_avx512, uint16_t, load_f16, load_f16_masked)
GEMV_T_AVX512(gemv_t_bf16_avx512, uint16_t, load_bf16, load_bf16_masked)

AVX512 static void widen_f16_avx512(const uint16_t *h, float *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(out + i, load_f16(h + i));
    for (; i < count; i++) out[i] = half_to_float(h[i]);
}
AVX512 static void widen_bf16_avx512(const uint16_t *h, float *out, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(out + i, load_bf16(h + i));
    for (; i < count; i++) out[i] = bf16_to_float(h[i]);
}

static int forced_portable = 0;
void lowrank_kernels_force_portable(int on) { forced_portable = on; }

static int use_avx512(void) {
    static int cached = -1;
    if (forced_portable) return 0;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("f16c");
    }
    return cached;
}
#else
void lowrank_kernels_force_portable(int on) { (void)on; }
static int use_avx512(void) { return 0; }
#endif

int lowrank_kernels_use_avx512(void) { return use_avx512(); }

void lowrank_gemv_f32(const float *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n < 256) gemv_short_f32_avx512(w, ld, x, y, b, e, n); else gemv_f32_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_f32_portable(w, ld, x, y, b, e, n);
}
void lowrank_gemv_f16(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n < 256) gemv_short_f16_avx512(w, ld, x, y, b, e, n); else gemv_f16_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_f16_portable(w, ld, x, y, b, e, n);
}
void lowrank_gemv_bf16(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n < 256) gemv_short_bf16_avx512(w, ld, x, y, b, e, n); else gemv_bf16_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_bf16_portable(w, ld, x, y, b, e, n);
}
void lowrank_gemv_t_f32(const float *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n <= 128) gemv_t_narrow_f32_avx512(w, ld, x, y, b, e, n); else gemv_t_f32_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_t_f32_portable(w, ld, x, y, b, e, n);
}
void lowrank_gemv_t_f16(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n <= 128) gemv_t_narrow_f16_avx512(w, ld, x, y, b, e, n); else gemv_t_f16_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_t_f16_portable(w, ld, x, y, b, e, n);
}
void lowrank_gemv_t_bf16(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
#if defined(__x86_64__)
    if (use_avx512()) { if (n <= 128) gemv_t_narrow_bf16_avx512(w, ld, x, y, b, e, n); else gemv_t_bf16_avx512(w, ld, x, y, b, e, n); return; }
#endif
    gemv_t_bf16_portable(w, ld, x, y, b, e, n);
}
void lowrank_widen_f16(const uint16_t *h, float *out, size_t count) {
#if defined(__x86_64__)
    if (use_avx512()) { widen_f16_avx512(h, out, count); return; }
#endif
    for (size_t i = 0; i < count; i++) out[i] = half_to_float(h[i]);
}
void lowrank_widen_bf16(const uint16_t *h, float *out, size_t count) {
#if defined(__x86_64__)
    if (use_avx512()) { widen_bf16_avx512(h, out, count); return; }
#endif
    for (size_t i = 0; i < count; i++) out[i] = bf16_to_float(h[i]);
}
