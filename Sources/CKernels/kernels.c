#include "CKernels.h"
#include <string.h>
#include <math.h>
#include "half.h"
#include "avx2.h"
#include "prefetch.h"
#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))
#endif

// ---- portable fallbacks ----

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
GEMV_T_PORTABLE(gemv_t_f32_portable, float, identity_f)
GEMV_T_PORTABLE(gemv_t_f16_portable, uint16_t, half_to_float)
GEMV_T_PORTABLE(gemv_t_bf16_portable, uint16_t, bf16_to_float)

// Decode attention for the query heads that share one key/value head (grouped-query attention),
// over a Float32 or a half-precision cache.
#define ATTEND_PORTABLE(SUFFIX, T, WIDEN)                                                                   \
    static void attend_scores_##SUFFIX##_portable(const T *k, size_t ld, const float *q, size_t group, size_t d, \
                                                  float *scores, size_t ss, size_t b, size_t e) {           \
        for (size_t r = b; r < e; r++)                                                                       \
            for (size_t g = 0; g < group; g++) {                                                             \
                float s = 0;                                                                                 \
                for (size_t i = 0; i < d; i++) s += q[g * d + i] * WIDEN(k[r * ld + i]);                    \
                scores[g * ss + (r - b)] = s;                                                                \
            }                                                                                                \
    }                                                                                                        \
    static void attend_values_##SUFFIX##_portable(const T *v, size_t ld, const float *p, size_t ps, size_t group, size_t d, \
                                                  float *out, size_t b, size_t e) {                          \
        for (size_t i = 0; i < group * d; i++) out[i] = 0;                                                   \
        for (size_t r = b; r < e; r++)                                                                       \
            for (size_t g = 0; g < group; g++) {                                                             \
                float w = p[g * ps + (r - b)];                                                               \
                for (size_t i = 0; i < d; i++) out[g * d + i] += w * WIDEN(v[r * ld + i]);                  \
            }                                                                                                \
    }
ATTEND_PORTABLE(f32, float, identity_f)
ATTEND_PORTABLE(f16, uint16_t, half_to_float)

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
    AVX512 static inline float NAME##_row(const T *wr, const float *x, size_t n) {                          \
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps(); \
        size_t i = 0;                                                                                        \
        for (; i + 64 <= n; i += 64) {                                                                       \
            a0 = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a0);                                  \
            a1 = _mm512_fmadd_ps(LOAD(wr + i + 16), _mm512_loadu_ps(x + i + 16), a1);                        \
            a2 = _mm512_fmadd_ps(LOAD(wr + i + 32), _mm512_loadu_ps(x + i + 32), a2);                        \
            a3 = _mm512_fmadd_ps(LOAD(wr + i + 48), _mm512_loadu_ps(x + i + 48), a3);                        \
        }                                                                                                    \
        for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(LOAD(wr + i), _mm512_loadu_ps(x + i), a0);       \
        if (i < n) {                                                                                         \
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                                                  \
            a1 = _mm512_fmadd_ps(LOAD_MASKED(wr + i, m), _mm512_maskz_loadu_ps(m, x + i), a1);              \
        }                                                                                                    \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));           \
    }                                                                                                        \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        for (size_t r = b; r < e; r++) y[r] = NAME##_row(w + r * ld, x, n);                                  \
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
// Every weight vector costs a load and a store of y, so this kernel is bound by the core's stores
// rather than by memory: it works in 256-bit vectors. On Zen 4 (AVX-512 executed as 256-bit
// halves) the 512-bit version streamed 30 GB/s on one thread and this one 37–39, as fast as the
// row products (benchmarks/kernel_bandwidth.sh, docs/BENCHMARKS.md; not measured on Intel, whose
// cores also store at most 64 bytes per cycle). Two rows per pass (half the y traffic) measured slower in both
// widths, as did y kept in registers over column blocks (a strided read of W).
// No software prefetch here: 4 KiB ahead raised one thread's bandwidth (14–19 → 22–29 GB/s,
// benchmarks/kernel_bandwidth.sh) but lowered decoding with two workers (SVD-LLM 20% f32: 53 → 63
// tokens/s without it, medians of 4 interleaved runs; docs/BENCHMARKS.md): both cores already
// saturate the memory system, and the extra requests only compete.
AVX512 static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
AVX512 static inline __m256 load8_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
AVX512 static inline __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
// VEC is the vector type (W floats), LOADV widens W stored values; the other arguments are that
// width's intrinsics, so the 256-bit and the 512-bit kernels below are one body.
// The first row of the block stores x[b]·w instead of adding it to a y zeroed beforehand: the zeroing
// pass (a memset of each chunk's partial output, often not in L1) was 1.9% of the samples of the
// SVD-LLM 20% checkpoint decoding in Float32; with the first row storing, the transposed kernel
// and memset together went from 37.6% to 34.1% (perf, AMD EPYC; tokens/s moved within the noise).
#define GEMV_T_AVX512(NAME, T, VEC, W, LOADV, WIDEN, SET1, LOADY, STOREY, FMA, MUL)                             \
    /* one row's work, shared with the fused low-rank product (the same bits) */                            \
    AVX512 static inline void NAME##_first(const T *wr, float xs, float *y, size_t n) {                     \
        size_t full = n & ~(size_t)(W - 1);                                                                  \
        VEC xk = SET1(xs);                                                                                   \
        size_t j = 0;                                                                                        \
        for (; j < full; j += W) STOREY(y + j, MUL(LOADV(wr + j), xk));                                      \
        for (; j < n; j++) y[j] = WIDEN(wr[j]) * xs;                                                         \
    }                                                                                                        \
    AVX512 static inline void NAME##_add(const T *wr, float xs, float *y, size_t n) {                       \
        size_t full = n & ~(size_t)(W - 1);                                                                  \
        VEC xk = SET1(xs);                                                                                   \
        size_t j = 0;                                                                                        \
        for (; j + 4 * W <= full; j += 4 * W) {                                                              \
            STOREY(y + j, FMA(LOADV(wr + j), xk, LOADY(y + j)));                                             \
            STOREY(y + j + W, FMA(LOADV(wr + j + W), xk, LOADY(y + j + W)));                                 \
            STOREY(y + j + 2 * W, FMA(LOADV(wr + j + 2 * W), xk, LOADY(y + j + 2 * W)));                     \
            STOREY(y + j + 3 * W, FMA(LOADV(wr + j + 3 * W), xk, LOADY(y + j + 3 * W)));                     \
        }                                                                                                    \
        for (; j < full; j += W) STOREY(y + j, FMA(LOADV(wr + j), xk, LOADY(y + j)));                        \
        for (; j < n; j++) y[j] = fmaf(WIDEN(wr[j]), xs, y[j]);                                              \
    }                                                                                                        \
    AVX512 static void NAME(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {\
        if (b >= e) { for (size_t j = 0; j < n; j++) y[j] = 0; return; }                                     \
        /* the first row stores w·x, so y is not zeroed in a pass of its own */                              \
        NAME##_first(w + b * ld, x[b], y, n);                                                                \
        for (size_t k = b + 1; k < e; k++) NAME##_add(w + k * ld, x[k], y, n);                               \
    }
#define GEMV_T_256(NAME, T, LOAD8, WIDEN) \
    GEMV_T_AVX512(NAME, T, __m256, 8, LOAD8, WIDEN, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_mul_ps)
#define GEMV_T_512(NAME, T, LOAD, WIDEN) \
    GEMV_T_AVX512(NAME, T, __m512, 16, LOAD, WIDEN, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_mul_ps)
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

GEMV_T_256(gemv_t_f32_avx512, float, load8_f32, identity_f)
GEMV_T_256(gemv_t_f16_avx512, uint16_t, load8_f16, half_to_float)
GEMV_T_256(gemv_t_bf16_avx512, uint16_t, load8_bf16, bf16_to_float)

// The transposed product in 512-bit vectors, for half-precision factors on cores that execute them whole: a
// 256-bit load of halves brings only 16 bytes. On an Intel Xeon (family 6, model 167) the SVD-LLM
// 40% checkpoint in F16 decoded 0.7–10% faster with it than with the 256-bit kernel (median 6%,
// 7 interleaved pairs at two threads; docs/BENCHMARKS.md); Zen 4 splits each 512-bit operation in
// two and keeps the 256-bit kernel (transposed_wide below chooses). Float32 factors keep the
// 256-bit kernel everywhere: 4 interleaved pairs on that Xeon gave −6% to +8%, no gain beyond
// the noise. (The Float32 wide kernel runs only when a test forces it.)
GEMV_T_512(gemv_t_wide_f32_avx512, float, load_f32, identity_f)
GEMV_T_512(gemv_t_wide_f16_avx512, uint16_t, load_f16, half_to_float)
GEMV_T_512(gemv_t_wide_bf16_avx512, uint16_t, load_bf16, bf16_to_float)

// The fused low-rank chunk (lowrank_gemv_pair_*) from the rows of gemv_*_avx512 and of one width of
// the transposed kernel (`TRANSPOSED`), so it gives their bits.
#define GEMV_PAIR_AVX512(NAME, T, ROW, TRANSPOSED)                                                          \
    AVX512 static void NAME(const T *a, size_t lda, size_t in, const T *bt, size_t ldb, size_t out,          \
                            const float *x, float *z, float *y, size_t b, size_t e) {                        \
        for (size_t r = b; r < e; r++) {                                                                     \
            float zr = ROW(a + r * lda, x, in);                                                              \
            z[r] = zr;                                                                                       \
            if (r == b) TRANSPOSED##_first(bt + r * ldb, zr, y, out); else TRANSPOSED##_add(bt + r * ldb, zr, y, out); \
        }                                                                                                    \
    }
GEMV_PAIR_AVX512(gemv_pair_f32_avx512, float, gemv_f32_avx512_row, gemv_t_f32_avx512)
GEMV_PAIR_AVX512(gemv_pair_wide_f32_avx512, float, gemv_f32_avx512_row, gemv_t_wide_f32_avx512)
GEMV_PAIR_AVX512(gemv_pair_f16_avx512, uint16_t, gemv_f16_avx512_row, gemv_t_f16_avx512)
GEMV_PAIR_AVX512(gemv_pair_wide_f16_avx512, uint16_t, gemv_f16_avx512_row, gemv_t_wide_f16_avx512)
GEMV_PAIR_AVX512(gemv_pair_bf16_avx512, uint16_t, gemv_bf16_avx512_row, gemv_t_bf16_avx512)
GEMV_PAIR_AVX512(gemv_pair_wide_bf16_avx512, uint16_t, gemv_bf16_avx512_row, gemv_t_wide_bf16_avx512)

// The entry point of a few-row kernel: `NAME##_t` specialised for each row count 1-4 (T a
// compile-time constant there, so the accumulators of the rows not used vanish).
#define ROWS_BY_COUNT(NAME, T_)                                                                             \
    AVX512 static void NAME(const T_ *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy, \
                            size_t b, size_t e, size_t n) {                                                  \
        switch (t) {                                                                                         \
        case 1: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 1); break;                                          \
        case 2: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 2); break;                                          \
        case 3: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 3); break;                                          \
        default: NAME##_t(w, ld, x, ldx, y, ldy, b, e, n, 4); break;                                         \
        }                                                                                                    \
    }

// A few input rows at once (batched decoding, t <= 4): each weight value is loaded into a register
// once and multiplied into every row's accumulator, so a step over t rows reads the weights once
// instead of t times (from L2 at best), and the loads per FMA fall from 2 to 1/2.
// Rows of W: four at a time into 4 x T accumulators, summed by the transposing reduction.
#define GEMM_ROWS_AVX512(NAME, T_, LOAD, LOAD_MASKED)                                                        \
    AVX512 static inline __attribute__((always_inline)) void NAME##_t(const T_ *w, size_t ld, const float *x, size_t ldx, \
        float *y, size_t ldy, size_t b, size_t e, size_t n, const int T) {                                   \
        size_t full = n & ~(size_t)15;                                                                       \
        __mmask16 m = (__mmask16)((1u << (n - full)) - 1);                                                   \
        size_t r = b;                                                                                        \
        for (; r + 4 <= e; r += 4) {                                                                         \
            const T_ *w0 = w + r * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;                          \
            __m512 acc[16];                                                                                  \
            for (int k = 0; k < 16; k++) acc[k] = _mm512_setzero_ps();                                       \
            for (size_t i = 0; i < full; i += 16) {                                                          \
                __m512 a0 = LOAD(w0 + i), a1 = LOAD(w1 + i), a2 = LOAD(w2 + i), a3 = LOAD(w3 + i);           \
                for (int s = 0; s < T; s++) {                                                                \
                    __m512 xs = _mm512_loadu_ps(x + s * ldx + i);                                            \
                    acc[s] = _mm512_fmadd_ps(a0, xs, acc[s]); acc[4 + s] = _mm512_fmadd_ps(a1, xs, acc[4 + s]); \
                    acc[8 + s] = _mm512_fmadd_ps(a2, xs, acc[8 + s]); acc[12 + s] = _mm512_fmadd_ps(a3, xs, acc[12 + s]); \
                }                                                                                            \
            }                                                                                                \
            if (m) {                                                                                         \
                __m512 a0 = LOAD_MASKED(w0 + full, m), a1 = LOAD_MASKED(w1 + full, m);                       \
                __m512 a2 = LOAD_MASKED(w2 + full, m), a3 = LOAD_MASKED(w3 + full, m);                       \
                for (int s = 0; s < T; s++) {                                                                \
                    __m512 xs = _mm512_maskz_loadu_ps(m, x + s * ldx + full);                                \
                    acc[s] = _mm512_fmadd_ps(a0, xs, acc[s]); acc[4 + s] = _mm512_fmadd_ps(a1, xs, acc[4 + s]); \
                    acc[8 + s] = _mm512_fmadd_ps(a2, xs, acc[8 + s]); acc[12 + s] = _mm512_fmadd_ps(a3, xs, acc[12 + s]); \
                }                                                                                            \
            }                                                                                                \
            float sums[16];                                                                                  \
            _mm512_storeu_ps(sums, reduce16(acc));                                                           \
            for (int s = 0; s < T; s++)                                                                      \
                for (int k = 0; k < 4; k++) y[s * ldy + r + k] = sums[4 * k + s];                            \
        }                                                                                                    \
        for (; r < e; r++) {                                                                                 \
            const T_ *wr = w + r * ld;                                                                       \
            __m512 acc[4];                                                                                   \
            for (int s = 0; s < 4; s++) acc[s] = _mm512_setzero_ps();                                        \
            for (size_t i = 0; i < full; i += 16) {                                                          \
                __m512 a = LOAD(wr + i);                                                                     \
                for (int s = 0; s < T; s++) acc[s] = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + s * ldx + i), acc[s]); \
            }                                                                                                \
            if (m) {                                                                                         \
                __m512 a = LOAD_MASKED(wr + full, m);                                                        \
                for (int s = 0; s < T; s++) acc[s] = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + s * ldx + full), acc[s]); \
            }                                                                                                \
            for (int s = 0; s < T; s++) y[s * ldy + r] = _mm512_reduce_add_ps(acc[s]);                       \
        }                                                                                                    \
    }                                                                                                        \
    ROWS_BY_COUNT(NAME, T_)
GEMM_ROWS_AVX512(gemm_rows_f32_avx512, float, load_f32, load_f32_masked)
GEMM_ROWS_AVX512(gemm_rows_f16_avx512, uint16_t, load_f16, load_f16_masked)
GEMM_ROWS_AVX512(gemm_rows_bf16_avx512, uint16_t, load_bf16, load_bf16_masked)

// The transposed product for t <= 4 rows: rows k of W are streamed four at a time (four sequential
// streams), the 4 x T values x[s][k] held broadcast in registers, and each 16-value chunk of every
// output row loaded and stored once per four rows of W (not once per row, as t single-row passes do).
// The first rows store instead of adding to a y zeroed beforehand, as in the one-row kernel: `perf`
// of SVD-LLM 20% f32 at `bench --batch 4`, `memset` 1.60% of the samples before, 0.02% after, the
// kernel's own share unchanged (20.05% and 20.02%).
#define GEMM_T_ROWS_AVX512(NAME, T_, LOAD, LOAD_MASKED)                                                      \
    AVX512 static inline __attribute__((always_inline)) void NAME##_t(const T_ *w, size_t ld, const float *x, size_t ldx, \
        float *y, size_t ldy, size_t b, size_t e, size_t n, const int T) {                                   \
        size_t full = n & ~(size_t)15;                                                                       \
        __mmask16 m = (__mmask16)((1u << (n - full)) - 1);                                                   \
        if (b >= e) { for (int s = 0; s < T; s++) for (size_t j = 0; j < n; j++) y[s * ldy + j] = 0; return; } \
        int first = 1;  /* the first rows store instead of adding to a zeroed y (as gemv_t) */            \
        size_t k = b;                                                                                        \
        for (; k + 4 <= e; k += 4) {                                                                         \
            const T_ *w0 = w + k * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;                          \
            __m512 xb[4][4];                                                                                 \
            for (int s = 0; s < T; s++) for (int q = 0; q < 4; q++) xb[s][q] = _mm512_set1_ps(x[s * ldx + k + q]); \
            for (size_t j = 0; j < full; j += 16) {                                                          \
                __m512 a0 = LOAD(w0 + j), a1 = LOAD(w1 + j), a2 = LOAD(w2 + j), a3 = LOAD(w3 + j);           \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + j;                                                             \
                    __m512 acc = first ? _mm512_mul_ps(a0, xb[s][0]) : _mm512_fmadd_ps(a0, xb[s][0], _mm512_loadu_ps(ys));                         \
                    acc = _mm512_fmadd_ps(a1, xb[s][1], acc); acc = _mm512_fmadd_ps(a2, xb[s][2], acc);        \
                    _mm512_storeu_ps(ys, _mm512_fmadd_ps(a3, xb[s][3], acc));                                \
                }                                                                                            \
            }                                                                                                \
            if (m) {                                                                                         \
                __m512 a0 = LOAD_MASKED(w0 + full, m), a1 = LOAD_MASKED(w1 + full, m);                       \
                __m512 a2 = LOAD_MASKED(w2 + full, m), a3 = LOAD_MASKED(w3 + full, m);                       \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + full;                                                          \
                    __m512 acc = first ? _mm512_mul_ps(a0, xb[s][0]) : _mm512_fmadd_ps(a0, xb[s][0], _mm512_maskz_loadu_ps(m, ys));                \
                    acc = _mm512_fmadd_ps(a1, xb[s][1], acc); acc = _mm512_fmadd_ps(a2, xb[s][2], acc);        \
                    _mm512_mask_storeu_ps(ys, m, _mm512_fmadd_ps(a3, xb[s][3], acc));                        \
                }                                                                                            \
            }                                                                                                \
            first = 0;                                                                                       \
        }                                                                                                    \
        for (; k < e; k++) {                                                                                 \
            const T_ *wr = w + k * ld;                                                                       \
            __m512 xs[4];                                                                                    \
            for (int s = 0; s < T; s++) xs[s] = _mm512_set1_ps(x[s * ldx + k]);                              \
            for (size_t j = 0; j < full; j += 16) {                                                          \
                __m512 a = LOAD(wr + j);                                                                     \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + j;                                                             \
                    _mm512_storeu_ps(ys, first ? _mm512_mul_ps(a, xs[s]) : _mm512_fmadd_ps(a, xs[s], _mm512_loadu_ps(ys)));                    \
                }                                                                                            \
            }                                                                                                \
            if (m) {                                                                                         \
                __m512 a = LOAD_MASKED(wr + full, m);                                                        \
                for (int s = 0; s < T; s++) {                                                                \
                    float *ys = y + s * ldy + full;                                                          \
                    _mm512_mask_storeu_ps(ys, m, first ? _mm512_mul_ps(a, xs[s]) : _mm512_fmadd_ps(a, xs[s], _mm512_maskz_loadu_ps(m, ys)));   \
                }                                                                                            \
            }                                                                                                \
            first = 0;                                                                                       \
        }                                                                                                    \
    }                                                                                                        \
    ROWS_BY_COUNT(NAME, T_)
GEMM_T_ROWS_AVX512(gemm_t_rows_f32_avx512, float, load_f32, load_f32_masked)
GEMM_T_ROWS_AVX512(gemm_t_rows_f16_avx512, uint16_t, load_f16, load_f16_masked)
GEMM_T_ROWS_AVX512(gemm_t_rows_bf16_avx512, uint16_t, load_bf16, load_bf16_masked)

// Grouped-query decode attention. The `group` query heads of one key/value head are scored in one
// pass over the cached keys (16 keys at a time, summed by the transposing reduction; the block is
// reread from L1 for each query head) and weighted in one pass over the values, so each cached row
// is read from memory once instead of once per query head. Head sizes are multiples of 16.
// Both prefetch the same rows of `next` as they go (prefetch.h).
#define ATTEND_SCORES_AVX512(SUFFIX, T, LOAD)                                                                \
AVX512 static void attend_scores_##SUFFIX##_avx512(const T *k, size_t ld, const float *q, size_t group, size_t d, \
                                                   float *scores, size_t ss, size_t b, size_t e, const T *next) { \
    size_t r = b;                                                                                            \
    for (; r + 16 <= e; r += 16) {                                                                           \
        lowrank_prefetch_rows(next, ld, sizeof(T), d, r, 16);                                                \
        for (size_t g = 0; g < group; g++) {                                                                 \
            const float *qg = q + g * d;                                                                     \
            __m512 acc[16];                                                                                  \
            if (d == 64) {  /* the common head size, unrolled: the loop's own overhead was the hot spot */  \
                __m512 q0 = _mm512_loadu_ps(qg), q1 = _mm512_loadu_ps(qg + 16), q2 = _mm512_loadu_ps(qg + 32), q3 = _mm512_loadu_ps(qg + 48); \
                for (int j = 0; j < 16; j++) {                                                               \
                    const T *kr = k + (r + j) * ld;                                                          \
                    __m512 a = _mm512_mul_ps(LOAD(kr), q0), c = _mm512_mul_ps(LOAD(kr + 16), q1);            \
                    a = _mm512_fmadd_ps(LOAD(kr + 32), q2, a);                                               \
                    c = _mm512_fmadd_ps(LOAD(kr + 48), q3, c);                                               \
                    acc[j] = _mm512_add_ps(a, c);                                                            \
                }                                                                                            \
            } else {                                                                                         \
                for (int j = 0; j < 16; j++) {                                                               \
                    const T *kr = k + (r + j) * ld;                                                          \
                    __m512 a = _mm512_mul_ps(LOAD(kr), _mm512_loadu_ps(qg));                                 \
                    for (size_t i = 16; i < d; i += 16) a = _mm512_fmadd_ps(LOAD(kr + i), _mm512_loadu_ps(qg + i), a); \
                    acc[j] = a;                                                                              \
                }                                                                                            \
            }                                                                                                \
            _mm512_storeu_ps(scores + g * ss + (r - b), reduce16(acc));                                      \
        }                                                                                                    \
    }                                                                                                        \
    lowrank_prefetch_rows(next, ld, sizeof(T), d, r, e - r);                                                 \
    for (; r < e; r++) {                                                                                     \
        const T *kr = k + r * ld;                                                                            \
        for (size_t g = 0; g < group; g++) {                                                                 \
            __m512 a = _mm512_setzero_ps();                                                                  \
            for (size_t i = 0; i < d; i += 16) a = _mm512_fmadd_ps(LOAD(kr + i), _mm512_loadu_ps(q + g * d + i), a); \
            scores[g * ss + (r - b)] = _mm512_reduce_add_ps(a);                                              \
        }                                                                                                    \
    }                                                                                                        \
}
ATTEND_SCORES_AVX512(f32, float, load_f32)
ATTEND_SCORES_AVX512(f16, uint16_t, load_f16)
// Values: with a head of 64, up to six query heads keep their sums in 24 registers for the whole
// pass (G is a compile-time constant so the accumulators stay in registers); other shapes sum in
// memory (L1), still reading each value row once per pass.
#define ATTEND_VALUES_64(SUFFIX, T, LOAD, G)                                                                \
    AVX512 static void attend_values64_##SUFFIX##_g##G(const T *v, size_t ld, const float *p, size_t ps, float *out, size_t b, size_t e, \
                                                       const T *next) {                                     \
        __m512 acc[G][4];                                                                                    \
        for (int g = 0; g < G; g++) for (int c = 0; c < 4; c++) acc[g][c] = _mm512_setzero_ps();            \
        for (size_t r = b; r < e; r++) {                                                                     \
            if (next && ((r - b) & 3) == 0) lowrank_prefetch_rows(next, ld, sizeof(T), 64, r, e - r < 4 ? e - r : 4); \
            const T *vr = v + r * ld;                                                                        \
            __m512 v0 = LOAD(vr), v1 = LOAD(vr + 16), v2 = LOAD(vr + 32), v3 = LOAD(vr + 48);                \
            for (int g = 0; g < G; g++) {                                                                    \
                __m512 w = _mm512_set1_ps(p[g * ps + (r - b)]);                                              \
                acc[g][0] = _mm512_fmadd_ps(v0, w, acc[g][0]); acc[g][1] = _mm512_fmadd_ps(v1, w, acc[g][1]); \
                acc[g][2] = _mm512_fmadd_ps(v2, w, acc[g][2]); acc[g][3] = _mm512_fmadd_ps(v3, w, acc[g][3]); \
            }                                                                                                \
        }                                                                                                    \
        for (int g = 0; g < G; g++) for (int c = 0; c < 4; c++) _mm512_storeu_ps(out + g * 64 + 16 * c, acc[g][c]); \
    }
#define ATTEND_VALUES_AVX512(SUFFIX, T, LOAD)                                                                \
ATTEND_VALUES_64(SUFFIX, T, LOAD, 1) ATTEND_VALUES_64(SUFFIX, T, LOAD, 2) ATTEND_VALUES_64(SUFFIX, T, LOAD, 3)  \
ATTEND_VALUES_64(SUFFIX, T, LOAD, 4) ATTEND_VALUES_64(SUFFIX, T, LOAD, 5) ATTEND_VALUES_64(SUFFIX, T, LOAD, 6)  \
AVX512 static void attend_values_##SUFFIX##_avx512(const T *v, size_t ld, const float *p, size_t ps, size_t group, size_t d, \
                                                   float *out, size_t b, size_t e, const T *next) {           \
    if (d == 64) {                                                                                           \
        for (size_t g0 = 0; g0 < group; g0 += 6) {                                                           \
            size_t n = group - g0 < 6 ? group - g0 : 6;                                                      \
            const float *pg = p + g0 * ps;                                                                   \
            float *og = out + g0 * 64;                                                                       \
            const T *pf = g0 == 0 ? next : NULL;  /* the next rows, during the first pass */                 \
            switch (n) {                                                                                     \
            case 1: attend_values64_##SUFFIX##_g1(v, ld, pg, ps, og, b, e, pf); break;                       \
            case 2: attend_values64_##SUFFIX##_g2(v, ld, pg, ps, og, b, e, pf); break;                       \
            case 3: attend_values64_##SUFFIX##_g3(v, ld, pg, ps, og, b, e, pf); break;                       \
            case 4: attend_values64_##SUFFIX##_g4(v, ld, pg, ps, og, b, e, pf); break;                       \
            case 5: attend_values64_##SUFFIX##_g5(v, ld, pg, ps, og, b, e, pf); break;                       \
            default: attend_values64_##SUFFIX##_g6(v, ld, pg, ps, og, b, e, pf); break;                      \
            }                                                                                                \
        }                                                                                                    \
        return;                                                                                              \
    }                                                                                                        \
    for (size_t i = 0; i < group * d; i++) out[i] = 0;                                                       \
    for (size_t r = b; r < e; r++) {                                                                         \
        lowrank_prefetch_rows(next, ld, sizeof(T), d, r, 1);                                                 \
        const T *vr = v + r * ld;                                                                            \
        for (size_t g = 0; g < group; g++) {                                                                 \
            __m512 w = _mm512_set1_ps(p[g * ps + (r - b)]);                                                  \
            float *o = out + g * d;                                                                          \
            for (size_t i = 0; i < d; i += 16) _mm512_storeu_ps(o + i, _mm512_fmadd_ps(LOAD(vr + i), w, _mm512_loadu_ps(o + i))); \
        }                                                                                                    \
    }                                                                                                        \
}
ATTEND_VALUES_AVX512(f32, float, load_f32)
ATTEND_VALUES_AVX512(f16, uint16_t, load_f16)

// Rounding to half for the cache: vcvtps2ph rounds to nearest even; values that would become
// infinite saturate to ±65504 and are counted (float_to_half_saturating is the scalar twin).
AVX512 static size_t round_f16_avx512(const float *x, uint16_t *out, size_t count) {
    size_t saturated = 0, i = 0;
    const __m512 limit = _mm512_set1_ps(65520.0f), largest = _mm512_set1_ps(65504.0f);
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), magnitude));
        __mmask16 over = _mm512_cmp_ps_mask(a, limit, _CMP_GE_OQ) & _mm512_cmp_ps_mask(a, _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
        if (over) {
            saturated += (size_t)__builtin_popcount(over);
            __m512 clamped = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(largest),
                                                  _mm512_andnot_si512(magnitude, _mm512_castps_si512(v))));
            v = _mm512_mask_blend_ps(over, v, clamped);
        }
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < count; i++) { int s = 0; out[i] = float_to_half_saturating(x[i], &s); saturated += (size_t)s; }
    return saturated;
}

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

#endif

// The tier of kernels in use: 2 AVX-512 (F, BW, VL with F16C and FMA), 1 AVX2 (with FMA and F16C),
// 0 the portable loops. The CPU decides; a test or the user (LOWRANK_DECODE_KERNELS, read by the
// command-line tool) may force a lower tier, never a higher one.
static int forced_level = -1;
#if defined(__x86_64__)
// The transposed product's vector width: 256 bits on AMD family 0x19 (Zen 3 has no AVX-512; Zen 4
// executes each 512-bit operation as two 256-bit halves, where the 256-bit kernel measured faster),
// 512 bits on every other AVX-512 core. A test forces either (0: by CPU, 256 or 512).
static int forced_transposed_width = 0;
void lowrank_kernels_force_transposed_width(int bits) { forced_transposed_width = bits; }
#include <cpuid.h>
static int transposed_wide(void) {
    if (forced_transposed_width) return forced_transposed_width == 512;
    static int cached = -1;
    if (cached < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0, family = 0;
        int amd = 0;
        if (__get_cpuid(0, &a, &b, &c, &d)) amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
        if (__get_cpuid(1, &a, &b, &c, &d)) family = ((a >> 8) & 0xf) + (((a >> 8) & 0xf) == 0xf ? (a >> 20) & 0xff : 0);
        cached = !(amd && family == 0x19);
    }
    return cached;
}

int lowrank_kernels_cpu_level(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        int fma16 = __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
        if (fma16 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) cached = 2;
        else if (fma16 && __builtin_cpu_supports("avx2")) cached = 1;
        else cached = 0;
    }
    return cached;
}
#else
void lowrank_kernels_force_transposed_width(int bits) { (void)bits; }
int lowrank_kernels_cpu_level(void) { return 0; }
#endif
void lowrank_kernels_force_level(int level) { forced_level = level; }
static inline int level(void) {
    int cpu = lowrank_kernels_cpu_level();
    return forced_level >= 0 && forced_level < cpu ? forced_level : cpu;
}
int lowrank_kernels_level(void) { return level(); }

// Memory read bandwidth probe (bench): the sum of a buffer far larger than the caches, read once in
// order with the same 64-byte loads as the decode kernels.
#if defined(__x86_64__)
AVX512 static float read_sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i)); a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32)); a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += p[i];
    return s;
}
// Each public entry below tries the AVX-512 kernel, then the AVX2 one, then falls through to the
// portable loops.
#define TIERS(AVX512_CALL, AVX2_CALL)                                                                       \
    { int l = level(); if (l == 2) { AVX512_CALL; return; } if (l == 1) { AVX2_CALL; return; } }
#define TIERS_RETURNING(AVX512_CALL, AVX2_CALL)                                                             \
    { int l = level(); if (l == 2) return AVX512_CALL; if (l == 1) return AVX2_CALL; }
#else
#define TIERS(AVX512_CALL, AVX2_CALL) {}
#define TIERS_RETURNING(AVX512_CALL, AVX2_CALL) {}
#endif
float lowrank_read_sum(const float *p, size_t n) {
    TIERS_RETURNING(read_sum_avx512(p, n), lowrank_avx2_read_sum(p, n))
    float s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

// Where the AVX-512 products switch kernel, shared with the fused low-rank chunk, which runs only
// where both run the long-row and the in-memory transposed kernel.
#define AVX512_LONG_ROWS 256       /* inputs from which a row product runs gemv_*_avx512 */
#define AVX512_NARROW_OUTPUTS 128  /* outputs up to which the transposed product keeps y in registers */
#define GEMV_DISPATCH(SUFFIX, T)                                                                            \
    void lowrank_gemv_##SUFFIX(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) { \
        TIERS(if (n < AVX512_LONG_ROWS) gemv_short_##SUFFIX##_avx512(w, ld, x, y, b, e, n); else gemv_##SUFFIX##_avx512(w, ld, x, y, b, e, n), \
              lowrank_avx2_gemv_##SUFFIX(w, ld, x, y, b, e, n))                                              \
        gemv_##SUFFIX##_portable(w, ld, x, y, b, e, n);                                                      \
    }
GEMV_DISPATCH(f32, float)
GEMV_DISPATCH(f16, uint16_t)
GEMV_DISPATCH(bf16, uint16_t)
void lowrank_gemv_t_f32(const float *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) {
    TIERS(if (n <= AVX512_NARROW_OUTPUTS) gemv_t_narrow_f32_avx512(w, ld, x, y, b, e, n); else if (forced_transposed_width == 512) gemv_t_wide_f32_avx512(w, ld, x, y, b, e, n); else gemv_t_f32_avx512(w, ld, x, y, b, e, n),
          lowrank_avx2_gemv_t_f32(w, ld, x, y, b, e, n))
    gemv_t_f32_portable(w, ld, x, y, b, e, n);
}
#define GEMV_T_HALF_DISPATCH(SUFFIX)                                                                        \
    void lowrank_gemv_t_##SUFFIX(const uint16_t *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n) { \
        TIERS(if (n <= AVX512_NARROW_OUTPUTS) gemv_t_narrow_##SUFFIX##_avx512(w, ld, x, y, b, e, n); else if (transposed_wide()) gemv_t_wide_##SUFFIX##_avx512(w, ld, x, y, b, e, n); else gemv_t_##SUFFIX##_avx512(w, ld, x, y, b, e, n), \
              lowrank_avx2_gemv_t_##SUFFIX(w, ld, x, y, b, e, n))                                            \
        gemv_t_##SUFFIX##_portable(w, ld, x, y, b, e, n);                                                    \
    }
GEMV_T_HALF_DISPATCH(f16)
GEMV_T_HALF_DISPATCH(bf16)
// The fused low-rank chunk where its rows are those the two products run (the long-row kernel and
// the transposed kernel that keeps y in memory, at the width the transposed product picks); 0
// elsewhere (short rows, narrow outputs, the portable tier): the caller runs the two products.
#define GEMV_PAIR_DISPATCH(SUFFIX, T, WIDE)                                                                 \
    int lowrank_gemv_pair_##SUFFIX(const T *a, size_t lda, size_t inputs, const T *bt, size_t ldb, size_t outputs, \
                                   const float *x, float *z, float *y, size_t k_begin, size_t k_end) {     \
        TIERS_RETURNING(gemv_pair_##SUFFIX##_avx512_entry(a, lda, inputs, bt, ldb, outputs, x, z, y, k_begin, k_end, WIDE), \
                        lowrank_avx2_gemv_pair_##SUFFIX(a, lda, inputs, bt, ldb, outputs, x, z, y, k_begin, k_end)) \
        return 0;                                                                                            \
    }
#define GEMV_PAIR_AVX512_ENTRY(SUFFIX, T)                                                                   \
    AVX512 static int gemv_pair_##SUFFIX##_avx512_entry(const T *a, size_t lda, size_t in, const T *bt, size_t ldb, size_t out, \
                                                        const float *x, float *z, float *y, size_t b, size_t e, int wide) { \
        if (in < AVX512_LONG_ROWS || out <= AVX512_NARROW_OUTPUTS || b >= e) return 0;                       \
        if (wide) gemv_pair_wide_##SUFFIX##_avx512(a, lda, in, bt, ldb, out, x, z, y, b, e);                 \
        else gemv_pair_##SUFFIX##_avx512(a, lda, in, bt, ldb, out, x, z, y, b, e);                           \
        return 1;                                                                                            \
    }
#if defined(__x86_64__)
GEMV_PAIR_AVX512_ENTRY(f32, float)
GEMV_PAIR_AVX512_ENTRY(f16, uint16_t)
GEMV_PAIR_AVX512_ENTRY(bf16, uint16_t)
#endif
GEMV_PAIR_DISPATCH(f32, float, forced_transposed_width == 512)
GEMV_PAIR_DISPATCH(f16, uint16_t, transposed_wide())
GEMV_PAIR_DISPATCH(bf16, uint16_t, transposed_wide())
// A few rows (t <= 4; more are split by the caller): the portable twins are t single-row passes.
#define GEMM_ROWS_DISPATCH(SUFFIX, T_)                                                                       \
    void lowrank_gemm_rows_##SUFFIX(const T_ *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy, \
                                    size_t b, size_t e, size_t n) {                                          \
        if (t <= 4) TIERS(gemm_rows_##SUFFIX##_avx512(w, ld, x, ldx, t, y, ldy, b, e, n),                     \
                          lowrank_avx2_gemm_rows_##SUFFIX(w, ld, x, ldx, t, y, ldy, b, e, n))                \
        for (size_t s = 0; s < t; s++) gemv_##SUFFIX##_portable(w, ld, x + s * ldx, y + s * ldy, b, e, n); \
    }                                                                                                        \
    void lowrank_gemm_t_rows_##SUFFIX(const T_ *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy, \
                                      size_t b, size_t e, size_t n) {                                        \
        if (t <= 4) TIERS(gemm_t_rows_##SUFFIX##_avx512(w, ld, x, ldx, t, y, ldy, b, e, n),                   \
                          lowrank_avx2_gemm_t_rows_##SUFFIX(w, ld, x, ldx, t, y, ldy, b, e, n))              \
        for (size_t s = 0; s < t; s++) gemv_t_##SUFFIX##_portable(w, ld, x + s * ldx, y + s * ldy, b, e, n); \
    }
GEMM_ROWS_DISPATCH(f32, float)
GEMM_ROWS_DISPATCH(f16, uint16_t)
GEMM_ROWS_DISPATCH(bf16, uint16_t)

// Head sizes: multiples of 16 for the AVX-512 kernels, of 8 for the AVX2 ones (which an AVX-512 CPU
// also runs), others the portable loops.
#if defined(__x86_64__)
#define ATTEND_TIERS(AVX512_CALL, AVX2_CALL)                                                                \
    { int l = level(); if (l == 2 && d > 0 && d % 16 == 0) { AVX512_CALL; return; }                          \
      if (l >= 1 && d > 0 && d % 8 == 0) { AVX2_CALL; return; } }
#else
#define ATTEND_TIERS(AVX512_CALL, AVX2_CALL) {}
#endif
#define ATTEND_DISPATCH(SUFFIX, T)                                                                          \
    void lowrank_attend_scores_##SUFFIX(const T *k, size_t ld, const float *q, size_t group, size_t d,      \
                                        float *scores, size_t ss, size_t b, size_t e, const T *next) {      \
        ATTEND_TIERS(attend_scores_##SUFFIX##_avx512(k, ld, q, group, d, scores, ss, b, e, next),            \
                     lowrank_avx2_attend_scores_##SUFFIX(k, ld, q, group, d, scores, ss, b, e, next))        \
        attend_scores_##SUFFIX##_portable(k, ld, q, group, d, scores, ss, b, e);                             \
    }                                                                                                        \
    void lowrank_attend_values_##SUFFIX(const T *v, size_t ld, const float *p, size_t ps, size_t group, size_t d, \
                                        float *out, size_t b, size_t e, const T *next) {                    \
        ATTEND_TIERS(attend_values_##SUFFIX##_avx512(v, ld, p, ps, group, d, out, b, e, next),               \
                     lowrank_avx2_attend_values_##SUFFIX(v, ld, p, ps, group, d, out, b, e, next))           \
        attend_values_##SUFFIX##_portable(v, ld, p, ps, group, d, out, b, e);                                \
    }
ATTEND_DISPATCH(f32, float)
ATTEND_DISPATCH(f16, uint16_t)
size_t lowrank_round_f16(const float *x, uint16_t *out, size_t count) {
    TIERS_RETURNING(round_f16_avx512(x, out, count), lowrank_avx2_round_f16(x, out, count))
    size_t saturated = 0;
    for (size_t i = 0; i < count; i++) { int s = 0; out[i] = float_to_half_saturating(x[i], &s); saturated += (size_t)s; }
    return saturated;
}
void lowrank_widen_f16(const uint16_t *h, float *out, size_t count) {
    TIERS(widen_f16_avx512(h, out, count), lowrank_avx2_widen_f16(h, out, count))
    for (size_t i = 0; i < count; i++) out[i] = half_to_float(h[i]);
}
void lowrank_widen_bf16(const uint16_t *h, float *out, size_t count) {
    TIERS(widen_bf16_avx512(h, out, count), lowrank_avx2_widen_bf16(h, out, count))
    for (size_t i = 0; i < count; i++) out[i] = bf16_to_float(h[i]);
}
