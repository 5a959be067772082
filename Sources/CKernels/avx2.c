// The decode kernels in AVX2 with FMA and F16C (256-bit vectors, 16 of them): what the AVX-512
// kernels of kernels.c do, for the CPUs without AVX-512 (AMD Zen 1–3, Intel client cores). Before
// these existed such CPUs ran the portable loops, scalar and with a branchy half-to-float per
// weight: SmolLM2-135M decoded several times slower than the memory allows (docs/BENCHMARKS.md).
// The shapes of the work are the AVX-512 kernels' (one sequential stream per weight row, the
// transposed product storing through y, grouped attention reading each cached row once); what
// changes is what 16 registers and 32-bit-only masked loads allow:
// - tails of fewer than 8 values are loaded with vmaskmovps (Float32) or through a zero-padded copy
//   (16-bit formats, which have no masked load here), so no load reaches past a row;
// - the blocked kernels take 2 weight rows per step where the AVX-512 ones take 4 (4 × 4
//   accumulators would be all 16 registers);
// - 8 row sums are reduced together by `reduce8` (the AVX-512 kernels reduce 16).
#include "avx2.h"
#include "half.h"
#include "prefetch.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline __m256 load_f32(const float *p) { return _mm256_loadu_ps(p); }
AVX2 static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
AVX2 static inline __m256 load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

// The first k < 8 values at p, zeros beyond; nothing past them is read.
static const int32_t tail_ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
AVX2 static inline __m256i tail_mask(size_t k) { return _mm256_loadu_si256((const __m256i *)(tail_ones + 8 - k)); }
AVX2 static inline __m256 load_f32_tail(const float *p, size_t k) { return _mm256_maskload_ps(p, tail_mask(k)); }
AVX2 static inline __m256 load_f16_tail(const uint16_t *p, size_t k) {
    uint16_t b[8] = {0};
    memcpy(b, p, 2 * k);
    return load_f16(b);
}
AVX2 static inline __m256 load_bf16_tail(const uint16_t *p, size_t k) {
    uint16_t b[8] = {0};
    memcpy(b, p, 2 * k);
    return load_bf16(b);
}

AVX2 static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// 8 vectors of partial sums -> one vector of their 8 totals. Two rounds of vhaddps leave, in each
// 128-bit half, the sums of four vectors over that half's lanes; the halves are then added.
AVX2 static inline __m256 reduce8(const __m256 v[8]) {
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 c = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, c, 0x20), _mm256_permute2f128_ps(a, c, 0x31));
}

// ---- row products: y[r] = w[r, 0..n) · x ----

// Long rows: one row at a time, 32 values per step in four accumulators.
#define GEMV_LONG(NAME, T, LOAD, LOAD_TAIL)                                                                 \
    AVX2 static inline float NAME##_row(const T *wr, const float *x, size_t n) {                            \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(); \
        size_t i = 0;                                                                                        \
        for (; i + 32 <= n; i += 32) {                                                                       \
            a0 = _mm256_fmadd_ps(LOAD(wr + i), _mm256_loadu_ps(x + i), a0);                                  \
            a1 = _mm256_fmadd_ps(LOAD(wr + i + 8), _mm256_loadu_ps(x + i + 8), a1);                          \
            a2 = _mm256_fmadd_ps(LOAD(wr + i + 16), _mm256_loadu_ps(x + i + 16), a2);                        \
            a3 = _mm256_fmadd_ps(LOAD(wr + i + 24), _mm256_loadu_ps(x + i + 24), a3);                        \
        }                                                                                                    \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(wr + i), _mm256_loadu_ps(x + i), a0);          \
        if (i < n) a1 = _mm256_fmadd_ps(LOAD_TAIL(wr + i, n - i), load_f32_tail(x + i, n - i), a1);         \
        return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                            \
    }                                                                                                        \
    AVX2 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {  \
        for (size_t r = b; r < e; r++) y[r] = NAME##_row(w + r * ld, x, n);                                  \
    }

// Short rows (fewer than 256 values): 8 rows summed together by `reduce8`, since one row's
// horizontal sum costs as much as its few FMAs.
#define GEMV_SHORT(NAME, T, LOAD, LOAD_TAIL)                                                                \
    AVX2 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {  \
        size_t full = n & ~(size_t)7, k = n - full;                                                          \
        __m256 xt = load_f32_tail(x + full, k);                                                              \
        size_t r = b;                                                                                        \
        for (; r + 8 <= e; r += 8) {                                                                         \
            __m256 acc[8];                                                                                   \
            for (int j = 0; j < 8; j++) {                                                                    \
                const T *wr = w + (r + j) * ld;                                                              \
                __m256 a = _mm256_setzero_ps(), c = _mm256_setzero_ps();                                     \
                size_t i = 0;                                                                                \
                for (; i + 16 <= full; i += 16) {                                                            \
                    a = _mm256_fmadd_ps(LOAD(wr + i), _mm256_loadu_ps(x + i), a);                            \
                    c = _mm256_fmadd_ps(LOAD(wr + i + 8), _mm256_loadu_ps(x + i + 8), c);                    \
                }                                                                                            \
                if (i < full) a = _mm256_fmadd_ps(LOAD(wr + i), _mm256_loadu_ps(x + i), a);                  \
                if (k) c = _mm256_fmadd_ps(LOAD_TAIL(wr + full, k), xt, c);                                  \
                acc[j] = _mm256_add_ps(a, c);                                                                \
            }                                                                                                \
            _mm256_storeu_ps(y + r, reduce8(acc));                                                           \
        }                                                                                                    \
        for (; r < e; r++) {                                                                                 \
            const T *wr = w + r * ld;                                                                        \
            __m256 a = _mm256_setzero_ps();                                                                  \
            for (size_t i = 0; i < full; i += 8) a = _mm256_fmadd_ps(LOAD(wr + i), _mm256_loadu_ps(x + i), a); \
            if (k) a = _mm256_fmadd_ps(LOAD_TAIL(wr + full, k), xt, a);                                      \
            y[r] = hsum(a);                                                                                  \
        }                                                                                                    \
    }

// ---- the transposed product: y[0..n) = Σ_{k ∈ [b, e)} x[k] · w[k, 0..n) ----

// Rows of w streamed in order, y (in L1) loaded and stored once per row; the first row stores
// instead of adding to a zeroed y, as in the AVX-512 kernel. `_first` and `_add` are one row's
// work, shared with the fused low-rank product below so both give the same bits.
#define GEMV_T(NAME, T, LOAD, WIDEN)                                                                        \
    AVX2 static inline void NAME##_first(const T *wr, float xs, float *y, size_t n) {                       \
        size_t full = n & ~(size_t)7;                                                                        \
        __m256 xk = _mm256_set1_ps(xs);                                                                      \
        size_t j = 0;                                                                                        \
        for (; j < full; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(LOAD(wr + j), xk));                  \
        for (; j < n; j++) y[j] = WIDEN(wr[j]) * xs;                                                         \
    }                                                                                                        \
    AVX2 static inline void NAME##_add(const T *wr, float xs, float *y, size_t n) {                         \
        size_t full = n & ~(size_t)7;                                                                        \
        __m256 xk = _mm256_set1_ps(xs);                                                                      \
        size_t j = 0;                                                                                        \
        for (; j + 32 <= full; j += 32) {                                                                    \
            _mm256_storeu_ps(y + j, _mm256_fmadd_ps(LOAD(wr + j), xk, _mm256_loadu_ps(y + j)));              \
            _mm256_storeu_ps(y + j + 8, _mm256_fmadd_ps(LOAD(wr + j + 8), xk, _mm256_loadu_ps(y + j + 8)));  \
            _mm256_storeu_ps(y + j + 16, _mm256_fmadd_ps(LOAD(wr + j + 16), xk, _mm256_loadu_ps(y + j + 16))); \
            _mm256_storeu_ps(y + j + 24, _mm256_fmadd_ps(LOAD(wr + j + 24), xk, _mm256_loadu_ps(y + j + 24))); \
        }                                                                                                    \
        for (; j < full; j += 8) _mm256_storeu_ps(y + j, _mm256_fmadd_ps(LOAD(wr + j), xk, _mm256_loadu_ps(y + j))); \
        for (; j < n; j++) y[j] = fmaf(WIDEN(wr[j]), xs, y[j]);                                              \
    }                                                                                                        \
    AVX2 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {  \
        if (b >= e) { for (size_t j = 0; j < n; j++) y[j] = 0; return; }                                     \
        NAME##_first(w + b * ld, x[b], y, n);                                                                \
        for (size_t k = b + 1; k < e; k++) NAME##_add(w + k * ld, x[k], y, n);                               \
    }

// Narrow outputs (n <= 64): y stays in 8 registers for the whole block of rows, the last partial
// vector included (zeros beyond n, stored masked).
#define GEMV_T_NARROW(NAME, T, LOAD, LOAD_TAIL)                                                             \
    AVX2 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {  \
        __m256 acc[8];                                                                                       \
        size_t full = n / 8, k = n - 8 * full;                                                               \
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();                                           \
        for (size_t r = b; r < e; r++) {                                                                     \
            const T *wr = w + r * ld;                                                                        \
            __m256 xk = _mm256_set1_ps(x[r]);                                                                \
            for (size_t c = 0; c < full; c++) acc[c] = _mm256_fmadd_ps(LOAD(wr + 8 * c), xk, acc[c]);       \
            if (k) acc[full] = _mm256_fmadd_ps(LOAD_TAIL(wr + 8 * full, k), xk, acc[full]);                  \
        }                                                                                                    \
        for (size_t c = 0; c < full; c++) _mm256_storeu_ps(y + 8 * c, acc[c]);                              \
        if (k) _mm256_maskstore_ps(y + 8 * full, tail_mask(k), acc[full]);                                  \
    }

// ---- a few input rows at once (t <= 4): each weight value loaded once for all t rows ----

// `NAME##_t` specialised for each row count (T a compile-time constant there).
#define ROWS_BY_COUNT(NAME, T_)                                                                             \
    AVX2 static void NAME(const T_ *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy, \
                          size_t b, size_t e, size_t n) {                                                    \
        switch (t) {                                                                                         \
        case 1: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 1); break;                                          \
        case 2: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 2); break;                                          \
        case 3: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 3); break;                                          \
        default: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 4); break;                                         \
        }                                                                                                    \
    }

// Rows of W two at a time into 2 × T accumulators (acc[4 · row + s]), reduced together.
#define GEMM_ROWS(NAME, T_, LOAD, LOAD_TAIL)                                                                \
    AVX2 static inline __attribute__((always_inline)) void NAME##_t(const T_ *w, size_t ld, const float *x, size_t ldx, \
        float *y, size_t ldy, size_t b, size_t e, size_t n, const int T) {                                   \
        size_t full = n & ~(size_t)7, k = n - full;                                                          \
        size_t r = b;                                                                                        \
        for (; r + 2 <= e; r += 2) {                                                                         \
            const T_ *w0 = w + r * ld, *w1 = w0 + ld;                                                        \
            __m256 acc[8];                                                                                   \
            for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();                                        \
            for (size_t i = 0; i < full; i += 8) {                                                           \
                __m256 a0 = LOAD(w0 + i), a1 = LOAD(w1 + i);                                                 \
                for (int s = 0; s < T; s++) {                                                                \
                    __m256 xs = _mm256_loadu_ps(x + s * ldx + i);                                            \
                    acc[s] = _mm256_fmadd_ps(a0, xs, acc[s]); acc[4 + s] = _mm256_fmadd_ps(a1, xs, acc[4 + s]); \
                }                                                                                            \
            }                                                                                                \
            if (k) {                                                                                         \
                __m256 a0 = LOAD_TAIL(w0 + full, k), a1 = LOAD_TAIL(w1 + full, k);                           \
                for (int s = 0; s < T; s++) {                                                                \
                    __m256 xs = load_f32_tail(x + s * ldx + full, k);                                        \
                    acc[s] = _mm256_fmadd_ps(a0, xs, acc[s]); acc[4 + s] = _mm256_fmadd_ps(a1, xs, acc[4 + s]); \
                }                                                                                            \
            }                                                                                                \
            float sums[8];                                                                                   \
            _mm256_storeu_ps(sums, reduce8(acc));                                                            \
            for (int s = 0; s < T; s++) { y[s * ldy + r] = sums[s]; y[s * ldy + r + 1] = sums[4 + s]; }     \
        }                                                                                                    \
        for (; r < e; r++) {                                                                                 \
            const T_ *wr = w + r * ld;                                                                       \
            __m256 acc[4];                                                                                   \
            for (int s = 0; s < 4; s++) acc[s] = _mm256_setzero_ps();                                        \
            for (size_t i = 0; i < full; i += 8) {                                                           \
                __m256 a = LOAD(wr + i);                                                                     \
                for (int s = 0; s < T; s++) acc[s] = _mm256_fmadd_ps(a, _mm256_loadu_ps(x + s * ldx + i), acc[s]); \
            }                                                                                                \
            if (k) {                                                                                         \
                __m256 a = LOAD_TAIL(wr + full, k);                                                          \
                for (int s = 0; s < T; s++) acc[s] = _mm256_fmadd_ps(a, load_f32_tail(x + s * ldx + full, k), acc[s]); \
            }                                                                                                \
            for (int s = 0; s < T; s++) y[s * ldy + r] = hsum(acc[s]);                                       \
        }                                                                                                    \
    }                                                                                                        \
    ROWS_BY_COUNT(NAME, T_)

// The transposed product for t rows: rows of W two at a time (two sequential streams), x[s][k]
// broadcast in 2 × T registers, each 8-value chunk of every output row loaded and stored once per
// two rows of W; the first rows store instead of adding to a zeroed y.
#define GEMM_T_ROWS(NAME, T_, LOAD, LOAD_TAIL)                                                              \
    AVX2 static inline __attribute__((always_inline)) void NAME##_t(const T_ *w, size_t ld, const float *x, size_t ldx, \
        float *y, size_t ldy, size_t b, size_t e, size_t n, const int T) {                                   \
        size_t full = n & ~(size_t)7, k = n - full;                                                          \
        __m256i m = tail_mask(k);                                                                            \
        if (b >= e) { for (int s = 0; s < T; s++) for (size_t j = 0; j < n; j++) y[s * ldy + j] = 0; return; } \
        int first = 1;                                                                                       \
        size_t q = b;                                                                                        \
        for (; q + 2 <= e; q += 2) {                                                                         \
            const T_ *w0 = w + q * ld, *w1 = w0 + ld;                                                        \
            __m256 xb[4][2];                                                                                 \
            for (int s = 0; s < T; s++) { xb[s][0] = _mm256_set1_ps(x[s * ldx + q]); xb[s][1] = _mm256_set1_ps(x[s * ldx + q + 1]); } \
            for (size_t j = 0; j < full; j += 8) {                                                           \
                __m256 a0 = LOAD(w0 + j), a1 = LOAD(w1 + j);                                                 \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + j;                                                             \
                    __m256 acc = first ? _mm256_mul_ps(a0, xb[s][0]) : _mm256_fmadd_ps(a0, xb[s][0], _mm256_loadu_ps(ys)); \
                    _mm256_storeu_ps(ys, _mm256_fmadd_ps(a1, xb[s][1], acc));                                \
                }                                                                                            \
            }                                                                                                \
            if (k) {                                                                                         \
                __m256 a0 = LOAD_TAIL(w0 + full, k), a1 = LOAD_TAIL(w1 + full, k);                           \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + full;                                                          \
                    __m256 acc = first ? _mm256_mul_ps(a0, xb[s][0]) : _mm256_fmadd_ps(a0, xb[s][0], _mm256_maskload_ps(ys, m)); \
                    _mm256_maskstore_ps(ys, m, _mm256_fmadd_ps(a1, xb[s][1], acc));                          \
                }                                                                                            \
            }                                                                                                \
            first = 0;                                                                                       \
        }                                                                                                    \
        for (; q < e; q++) {                                                                                 \
            const T_ *wr = w + q * ld;                                                                       \
            __m256 xs[4];                                                                                    \
            for (int s = 0; s < T; s++) xs[s] = _mm256_set1_ps(x[s * ldx + q]);                              \
            for (size_t j = 0; j < full; j += 8) {                                                           \
                __m256 a = LOAD(wr + j);                                                                     \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + j;                                                             \
                    _mm256_storeu_ps(ys, first ? _mm256_mul_ps(a, xs[s]) : _mm256_fmadd_ps(a, xs[s], _mm256_loadu_ps(ys))); \
                }                                                                                            \
            }                                                                                                \
            if (k) {                                                                                         \
                __m256 a = LOAD_TAIL(wr + full, k);                                                          \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + full;                                                          \
                    _mm256_maskstore_ps(ys, m, first ? _mm256_mul_ps(a, xs[s]) : _mm256_fmadd_ps(a, xs[s], _mm256_maskload_ps(ys, m))); \
                }                                                                                            \
            }                                                                                                \
            first = 0;                                                                                       \
        }                                                                                                    \
    }                                                                                                        \
    ROWS_BY_COUNT(NAME, T_)

// Where each product switches kernel, shared with the fused low-rank chunk, which runs only where
// both products run the long-row and the in-memory transposed kernel.
#define AVX2_LONG_ROWS 256      /* inputs from which a row product runs gemv_long */
#define AVX2_NARROW_OUTPUTS 64  /* outputs up to which the transposed product keeps y in registers */
#define PRODUCTS(SUFFIX, T, LOAD, LOAD_TAIL, WIDEN)                                                         \
    GEMV_LONG(gemv_long_##SUFFIX, T, LOAD, LOAD_TAIL)                                                        \
    GEMV_SHORT(gemv_short_##SUFFIX, T, LOAD, LOAD_TAIL)                                                      \
    GEMV_T(gemv_t_##SUFFIX, T, LOAD, WIDEN)                                                                  \
    GEMV_T_NARROW(gemv_t_narrow_##SUFFIX, T, LOAD, LOAD_TAIL)                                                \
    GEMM_ROWS(gemm_rows_##SUFFIX, T, LOAD, LOAD_TAIL)                                                        \
    GEMM_T_ROWS(gemm_t_rows_##SUFFIX, T, LOAD, LOAD_TAIL)                                                    \
    void lowrank_avx2_gemv_##SUFFIX(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) { \
        if (n < AVX2_LONG_ROWS) gemv_short_##SUFFIX(w, ld, x, y, b, e, n); else gemv_long_##SUFFIX(w, ld, x, y, b, e, n); \
    }                                                                                                        \
    void lowrank_avx2_gemv_t_##SUFFIX(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) { \
        if (n <= AVX2_NARROW_OUTPUTS) gemv_t_narrow_##SUFFIX(w, ld, x, y, b, e, n); else gemv_t_##SUFFIX(w, ld, x, y, b, e, n); \
    }                                                                                                        \
    /* One low-rank chunk, rank by rank: z[r] = a[r] · x, then y += z[r] · bt[r] (the first rank stores), \
       the same rows as gemv_long then gemv_t, so the same bits; 0 where those are not the kernels. */   \
    int lowrank_avx2_gemv_pair_##SUFFIX(const T *a, size_t lda, size_t in, const T *bt, size_t ldb, size_t out, \
                                        const float *x, float *z, float *y, size_t b, size_t e) {            \
        if (in < AVX2_LONG_ROWS || out <= AVX2_NARROW_OUTPUTS || b >= e) return 0;                           \
        for (size_t r = b; r < e; r++) {                                                                     \
            float zr = gemv_long_##SUFFIX##_row(a + r * lda, x, in);                                         \
            z[r] = zr;                                                                                       \
            if (r == b) gemv_t_##SUFFIX##_first(bt + r * ldb, zr, y, out);                                   \
            else gemv_t_##SUFFIX##_add(bt + r * ldb, zr, y, out);                                            \
        }                                                                                                    \
        return 1;                                                                                            \
    }                                                                                                        \
    void lowrank_avx2_gemm_rows_##SUFFIX(const T *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, \
                                         size_t ldy, size_t b, size_t e, size_t n) {                         \
        gemm_rows_##SUFFIX(w, ld, x, ldx, t, y, ldy, b, e, n);                                               \
    }                                                                                                        \
    void lowrank_avx2_gemm_t_rows_##SUFFIX(const T *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, \
                                           size_t ldy, size_t b, size_t e, size_t n) {                       \
        gemm_t_rows_##SUFFIX(w, ld, x, ldx, t, y, ldy, b, e, n);                                             \
    }
PRODUCTS(f32, float, load_f32, load_f32_tail, identity_f)
PRODUCTS(f16, uint16_t, load_f16, load_f16_tail, half_to_float)
PRODUCTS(bf16, uint16_t, load_bf16, load_bf16_tail, bf16_to_float)

// ---- grouped-query decode attention (head size d a multiple of 8) ----

// Scores: 8 cached keys at a time for each query head of the group (the block is reread from L1 for
// the next head), two accumulators per key, the 8 sums reduced together; the same 8 rows of `next`
// are prefetched first (prefetch.h). With a head of 64 the query head stays in 8 registers over the
// 8 keys: read from L1 for every key it made two 256-bit loads per multiply-add, and loads were the
// limit (288 keys of 3 query heads in L1/L2, Zen 3: 2.5 → 2.0 µs). Same operations, same bits.
#define ATTEND_SCORES(SUFFIX, T, LOAD)                                                                      \
    void lowrank_avx2_attend_scores_##SUFFIX(const T *k, size_t ld, const float *q, size_t group, size_t d, \
                                             float *scores, size_t ss, size_t b, size_t e, const T *next) {  \
        attend_scores_##SUFFIX##_body(k, ld, q, group, d, scores, ss, b, e, next);                           \
    }
#define ATTEND_SCORES_BODY(SUFFIX, T, LOAD)                                                                 \
    AVX2 static inline __m256 score_##SUFFIX(const T *kr, const float *qg, size_t d) {                     \
        __m256 a = _mm256_mul_ps(LOAD(kr), _mm256_loadu_ps(qg)), c = _mm256_setzero_ps();                    \
        size_t i = 8;                                                                                        \
        for (; i + 16 <= d; i += 16) {                                                                       \
            c = _mm256_fmadd_ps(LOAD(kr + i), _mm256_loadu_ps(qg + i), c);                                   \
            a = _mm256_fmadd_ps(LOAD(kr + i + 8), _mm256_loadu_ps(qg + i + 8), a);                           \
        }                                                                                                    \
        if (i < d) c = _mm256_fmadd_ps(LOAD(kr + i), _mm256_loadu_ps(qg + i), c);                            \
        return _mm256_add_ps(a, c);                                                                          \
    }                                                                                                        \
    /* score_ for a head of 64 with the query in registers: the same operations in the same order */    \
    AVX2 static inline __m256 score64_##SUFFIX(const T *kr, const __m256 qv[8]) {                          \
        __m256 a = _mm256_mul_ps(LOAD(kr), qv[0]), c = _mm256_fmadd_ps(LOAD(kr + 8), qv[1], _mm256_setzero_ps()); \
        c = _mm256_fmadd_ps(LOAD(kr + 24), qv[3], c); a = _mm256_fmadd_ps(LOAD(kr + 16), qv[2], a);          \
        c = _mm256_fmadd_ps(LOAD(kr + 40), qv[5], c); a = _mm256_fmadd_ps(LOAD(kr + 32), qv[4], a);          \
        c = _mm256_fmadd_ps(LOAD(kr + 56), qv[7], c); a = _mm256_fmadd_ps(LOAD(kr + 48), qv[6], a);          \
        return _mm256_add_ps(a, c);                                                                          \
    }                                                                                                        \
    /* reduce8 of 8 keys' score64_, four at a time (rows 0–3 make its first half, 4–7 its second), so */  \
    /* at most 8 + 4 + 2 registers are live */                                                               \
    AVX2 static inline __m256 scores8x64_##SUFFIX(const T *kr, size_t ld, const float *qg) {                \
        __m256 qv[8];                                                                                        \
        for (int i = 0; i < 8; i++) qv[i] = _mm256_loadu_ps(qg + 8 * i);                                     \
        __m256 lo = _mm256_hadd_ps(_mm256_hadd_ps(score64_##SUFFIX(kr, qv), score64_##SUFFIX(kr + ld, qv)),   \
                                   _mm256_hadd_ps(score64_##SUFFIX(kr + 2 * ld, qv), score64_##SUFFIX(kr + 3 * ld, qv))); \
        __m256 hi = _mm256_hadd_ps(_mm256_hadd_ps(score64_##SUFFIX(kr + 4 * ld, qv), score64_##SUFFIX(kr + 5 * ld, qv)), \
                                   _mm256_hadd_ps(score64_##SUFFIX(kr + 6 * ld, qv), score64_##SUFFIX(kr + 7 * ld, qv))); \
        return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));   \
    }                                                                                                        \
    AVX2 static void attend_scores_##SUFFIX##_body(const T *k, size_t ld, const float *q, size_t group, size_t d, \
                                                   float *scores, size_t ss, size_t b, size_t e, const T *next) { \
        size_t r = b;                                                                                        \
        for (; r + 8 <= e; r += 8) {                                                                         \
            lowrank_prefetch_rows(next, ld, sizeof(T), d, r, 8);                                             \
            for (size_t g = 0; g < group; g++) {                                                             \
                if (d == 64) {                                                                               \
                    _mm256_storeu_ps(scores + g * ss + (r - b), scores8x64_##SUFFIX(k + r * ld, ld, q + g * 64)); \
                    continue;                                                                                \
                }                                                                                            \
                __m256 acc[8];                                                                               \
                for (int j = 0; j < 8; j++) acc[j] = score_##SUFFIX(k + (r + j) * ld, q + g * d, d);         \
                _mm256_storeu_ps(scores + g * ss + (r - b), reduce8(acc));                                   \
            }                                                                                                \
        }                                                                                                    \
        lowrank_prefetch_rows(next, ld, sizeof(T), d, r, e - r);                                             \
        for (; r < e; r++)                                                                                   \
            for (size_t g = 0; g < group; g++) scores[g * ss + (r - b)] = hsum(score_##SUFFIX(k + r * ld, q + g * d, d)); \
    }
ATTEND_SCORES_BODY(f32, float, load_f32)
ATTEND_SCORES_BODY(f16, uint16_t, load_f16)
ATTEND_SCORES(f32, float, load_f32)
ATTEND_SCORES(f16, uint16_t, load_f16)

// Values: a block of 32 columns of up to G = 3 query heads sums in 12 registers over every cached
// position, so each value row is read once per pass: a position's G weights are broadcast first,
// then each 8-column vector of the row is loaded and used G times (12 + 3 + 1 = 16 registers).
// Loading the row's four vectors first needed 17, and the compiler kept two sums on the stack, a
// store and a reload each per position (288 positions of 3 heads in L1/L2, Zen 3: 4.5 → 1.2 µs;
// same bits). Heads whose size is not a multiple of 32 sum in memory (L1) instead. The first pass
// prefetches the same rows of `next`, 4 at a time.
#define ATTEND_VALUES_32(SUFFIX, T, LOAD, G)                                                                \
    AVX2 static void attend_values32_##SUFFIX##_g##G(const T *v, size_t ld, const float *p, size_t ps, float *out, size_t d, \
                                                     size_t b, size_t e, const T *next) {                     \
        __m256 acc[G][4];                                                                                    \
        for (int g = 0; g < G; g++) for (int c = 0; c < 4; c++) acc[g][c] = _mm256_setzero_ps();            \
        for (size_t r = b; r < e; r++) {                                                                     \
            if (next && ((r - b) & 3) == 0) lowrank_prefetch_rows(next, ld, sizeof(T), d, r, e - r < 4 ? e - r : 4); \
            const T *vr = v + r * ld;                                                                        \
            __m256 w[G];                                                                                     \
            for (int g = 0; g < G; g++) w[g] = _mm256_broadcast_ss(p + g * ps + (r - b));                    \
            for (int c = 0; c < 4; c++) {                                                                    \
                __m256 x = LOAD(vr + 8 * c);                                                                 \
                for (int g = 0; g < G; g++) acc[g][c] = _mm256_fmadd_ps(x, w[g], acc[g][c]);                 \
            }                                                                                                \
        }                                                                                                    \
        for (int g = 0; g < G; g++) for (int c = 0; c < 4; c++) _mm256_storeu_ps(out + g * d + 8 * c, acc[g][c]); \
    }
#define ATTEND_VALUES(SUFFIX, T, LOAD)                                                                      \
    ATTEND_VALUES_32(SUFFIX, T, LOAD, 1) ATTEND_VALUES_32(SUFFIX, T, LOAD, 2) ATTEND_VALUES_32(SUFFIX, T, LOAD, 3) \
    AVX2 static void attend_values_##SUFFIX##_body(const T *v, size_t ld, const float *p, size_t ps, size_t group, size_t d, \
                                                   float *out, size_t b, size_t e, const T *next) {          \
        if (d % 32 == 0) {                                                                                   \
            for (size_t c = 0; c < d; c += 32)                                                               \
                for (size_t g0 = 0; g0 < group; g0 += 3) {                                                   \
                    size_t n = group - g0 < 3 ? group - g0 : 3;                                              \
                    const float *pg = p + g0 * ps;                                                           \
                    float *og = out + g0 * d + c;                                                            \
                    const T *pf = c == 0 && g0 == 0 ? next : NULL;  /* the next rows, during the first pass */ \
                    if (n == 1) attend_values32_##SUFFIX##_g1(v + c, ld, pg, ps, og, d, b, e, pf);           \
                    else if (n == 2) attend_values32_##SUFFIX##_g2(v + c, ld, pg, ps, og, d, b, e, pf);      \
                    else attend_values32_##SUFFIX##_g3(v + c, ld, pg, ps, og, d, b, e, pf);                  \
                }                                                                                            \
            return;                                                                                          \
        }                                                                                                    \
        for (size_t i = 0; i < group * d; i++) out[i] = 0;                                                   \
        for (size_t r = b; r < e; r++) {                                                                     \
            lowrank_prefetch_rows(next, ld, sizeof(T), d, r, 1);                                             \
            const T *vr = v + r * ld;                                                                        \
            for (size_t g = 0; g < group; g++) {                                                             \
                __m256 w = _mm256_set1_ps(p[g * ps + (r - b)]);                                              \
                float *o = out + g * d;                                                                      \
                for (size_t i = 0; i < d; i += 8) _mm256_storeu_ps(o + i, _mm256_fmadd_ps(LOAD(vr + i), w, _mm256_loadu_ps(o + i))); \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
    void lowrank_avx2_attend_values_##SUFFIX(const T *v, size_t ld, const float *p, size_t ps, size_t group, size_t d, \
                                             float *out, size_t b, size_t e, const T *next) {                \
        attend_values_##SUFFIX##_body(v, ld, p, ps, group, d, out, b, e, next);                              \
    }
ATTEND_VALUES(f32, float, load_f32)
ATTEND_VALUES(f16, uint16_t, load_f16)

// ---- conversions and the bandwidth probe ----

// Rounding to half for the cache: vcvtps2ph rounds to nearest even; finite values that would become
// infinite saturate to ±65504 and are counted (float_to_half_saturating is the scalar twin).
AVX2 static size_t round_f16_body(const float *x, uint16_t *out, size_t count) {
    size_t saturated = 0, i = 0;
    const __m256 limit = _mm256_set1_ps(65520.0f), largest = _mm256_set1_ps(65504.0f), infinity = _mm256_set1_ps(INFINITY);
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 a = _mm256_and_ps(v, magnitude);
        __m256 over = _mm256_and_ps(_mm256_cmp_ps(a, limit, _CMP_GE_OQ), _mm256_cmp_ps(a, infinity, _CMP_LT_OQ));
        int bits = _mm256_movemask_ps(over);
        if (bits) {
            saturated += (size_t)__builtin_popcount((unsigned)bits);
            v = _mm256_blendv_ps(v, _mm256_or_ps(largest, _mm256_andnot_ps(magnitude, v)), over);
        }
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < count; i++) { int s = 0; out[i] = float_to_half_saturating(x[i], &s); saturated += (size_t)s; }
    return saturated;
}
size_t lowrank_avx2_round_f16(const float *x, uint16_t *out, size_t count) { return round_f16_body(x, out, count); }

AVX2 static void widen_f16_body(const uint16_t *h, float *out, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, load_f16(h + i));
    for (; i < count; i++) out[i] = half_to_float(h[i]);
}
void lowrank_avx2_widen_f16(const uint16_t *h, float *out, size_t count) { widen_f16_body(h, out, count); }
AVX2 static void widen_bf16_body(const uint16_t *h, float *out, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, load_bf16(h + i));
    for (; i < count; i++) out[i] = bf16_to_float(h[i]);
}
void lowrank_avx2_widen_bf16(const uint16_t *h, float *out, size_t count) { widen_bf16_body(h, out, count); }

AVX2 static float read_sum_body(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i)); a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16)); a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += p[i];
    return s;
}
float lowrank_avx2_read_sum(const float *p, size_t n) { return read_sum_body(p, n); }
#endif
