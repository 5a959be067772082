#ifndef LOWRANK_CKERNELS_H
#define LOWRANK_CKERNELS_H
// Hand-written matrix-vector kernels for batch-1 decoding, where the weights are streamed from
// memory once per token and the speed is the memory bandwidth. AVX-512 and AVX2 versions (selected
// at run time with __builtin_cpu_supports) and portable fallbacks; each has a Swift reference twin
// and a test comparing every tier the CPU has with it (Tests/LinearAlgebraTests/DecodeKernelTests.swift).
#include <stddef.h>
#include <stdint.h>

/// y[r] = sum_{i < inputs} w[r * ld + i] * x[i] for r in [row_begin, row_end); w is float32. ld (the
/// row stride, >= inputs) lets a product use the first `inputs` columns of a wider matrix: a low-rank
/// factor run at an active rank below its stored rank.
void lowrank_gemv_f32(const float *w, size_t ld, const float *x, float *y, size_t row_begin, size_t row_end, size_t inputs);
/// The same with IEEE half-precision weights.
void lowrank_gemv_f16(const uint16_t *w, size_t ld, const float *x, float *y, size_t row_begin, size_t row_end, size_t inputs);
/// The same with bfloat16 weights.
void lowrank_gemv_bf16(const uint16_t *w, size_t ld, const float *x, float *y, size_t row_begin, size_t row_end, size_t inputs);
/// y[j] = sum_{k in [k_begin, k_end)} x[k] * w[k * ld + j] for j in [0, outputs): the transposed
/// product, streaming rows k of w in order (a left factor stored as B^T [rank x outputs]).
void lowrank_gemv_t_f32(const float *w, size_t ld, const float *x, float *y, size_t k_begin, size_t k_end, size_t outputs);
void lowrank_gemv_t_f16(const uint16_t *w, size_t ld, const float *x, float *y, size_t k_begin, size_t k_end, size_t outputs);
void lowrank_gemv_t_bf16(const uint16_t *w, size_t ld, const float *x, float *y, size_t k_begin, size_t k_end, size_t outputs);
/// One low-rank chunk of one input row, rank by rank: for k in [k_begin, k_end), z[k] = a[k * lda + i] · x[i]
/// summed over i < inputs, then y[j] = sum_k z[k] * bt[k * ldb + j] for j < outputs (y overwritten). The
/// rows of the right factor `a` and of the left factor `bt` (B^T) are read side by side, as two
/// streams that each continue where the previous chunk of the same worker left off, instead of one
/// after the other. Gives the same bits as lowrank_gemv then lowrank_gemv_t. Returns 1 when done,
/// 0 (nothing written) where this CPU's tier has no fused kernel for these sizes: the AVX2 and
/// AVX-512 tiers fuse inputs >= 256 and outputs > 64 (AVX2) or > 128 (AVX-512), the sizes where the
/// two products run their long-row and in-memory transposed kernels; the caller then runs them.
int lowrank_gemv_pair_f32(const float *a, size_t lda, size_t inputs, const float *bt, size_t ldb, size_t outputs,
                          const float *x, float *z, float *y, size_t k_begin, size_t k_end);
int lowrank_gemv_pair_f16(const uint16_t *a, size_t lda, size_t inputs, const uint16_t *bt, size_t ldb, size_t outputs,
                          const float *x, float *z, float *y, size_t k_begin, size_t k_end);
int lowrank_gemv_pair_bf16(const uint16_t *a, size_t lda, size_t inputs, const uint16_t *bt, size_t ldb, size_t outputs,
                           const float *x, float *z, float *y, size_t k_begin, size_t k_end);
/// A few input rows at once (batched decoding; t <= 4 on the fast path): y[s * ldy + r] =
/// sum_{i < inputs} w[r * ld + i] * x[s * ldx + i] for s < t and r in [row_begin, row_end). Each weight
/// value is read once for all t rows.
void lowrank_gemm_rows_f32(const float *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                           size_t row_begin, size_t row_end, size_t inputs);
void lowrank_gemm_rows_f16(const uint16_t *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                           size_t row_begin, size_t row_end, size_t inputs);
void lowrank_gemm_rows_bf16(const uint16_t *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                            size_t row_begin, size_t row_end, size_t inputs);
/// The transposed product for t rows: y[s * ldy + j] = sum_{k in [k_begin, k_end)} x[s * ldx + k] * w[k * ld + j]
/// for s < t, j < outputs (overwrites y). Each weight value is read once for all t rows.
void lowrank_gemm_t_rows_f32(const float *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                             size_t k_begin, size_t k_end, size_t outputs);
void lowrank_gemm_t_rows_f16(const uint16_t *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                             size_t k_begin, size_t k_end, size_t outputs);
void lowrank_gemm_t_rows_bf16(const uint16_t *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, size_t ldy,
                              size_t k_begin, size_t k_end, size_t outputs);
/// Grouped-query decode attention, the query heads of one key/value head together: for g < group and
/// r in [b, e), scores[g * ss + (r - b)] = q[g * d + 0..d) . k[r * ld + 0..d). Each key row is read once.
/// `next` (or NULL): rows [b, e) of another part of the cache, same ld and type, that the next call
/// will read (this head's values); the vector tiers prefetch them while these rows are read, so their
/// memory latency overlaps this call's work. It changes no result; the portable loops ignore it.
void lowrank_attend_scores_f32(const float *k, size_t ld, const float *q, size_t group, size_t d,
                               float *scores, size_t ss, size_t b, size_t e, const float *next);
/// out[g * d + j] = sum_{r in [b, e)} p[g * ps + (r - b)] * v[r * ld + j] for g < group, j < d (overwrites
/// out): the weighted values of the group, each value row read once. `next` as for the scores (the
/// next head's keys).
void lowrank_attend_values_f32(const float *v, size_t ld, const float *p, size_t ps, size_t group, size_t d,
                               float *out, size_t b, size_t e, const float *next);
/// The same over a half-precision cache (keys and values stored as IEEE half).
void lowrank_attend_scores_f16(const uint16_t *k, size_t ld, const float *q, size_t group, size_t d,
                               float *scores, size_t ss, size_t b, size_t e, const uint16_t *next);
void lowrank_attend_values_f16(const uint16_t *v, size_t ld, const float *p, size_t ps, size_t group, size_t d,
                               float *out, size_t b, size_t e, const uint16_t *next);
/// out[i] = half(x[i]) for i in [0, count), rounding to nearest even; finite values beyond the half
/// range (|x| >= 65520) saturate to ±65504 instead of becoming infinite. Returns how many did.
size_t lowrank_round_f16(const float *x, uint16_t *out, size_t count);
/// out[i] = (float)h[i] for i in [0, count): half precision.
void lowrank_widen_f16(const uint16_t *h, float *out, size_t count);
/// out[i] = (float)h[i]: bfloat16.
void lowrank_widen_bf16(const uint16_t *h, float *out, size_t count);
/// The sum of p[0..n): reads the buffer once in order (the memory bandwidth probe of `lowrank bench`).
float lowrank_read_sum(const float *p, size_t n);
/// The tier of kernels the CPU supports: 2 AVX-512 (F, BW, VL; with F16C and FMA), 1 AVX2 (with FMA
/// and F16C), 0 none (the portable loops).
int lowrank_kernels_cpu_level(void);
/// The tier in use: the CPU's, or a lower one forced by lowrank_kernels_force_level.
int lowrank_kernels_level(void);
/// Runs a lower tier than the CPU supports (tests, A/B measurements); a level at or above the CPU's,
/// or -1, restores the choice by CPU.
void lowrank_kernels_force_level(int level);
/// Tests: run the transposed products in 256- or 512-bit vectors whatever the CPU (0 restores the choice by CPU).
void lowrank_kernels_force_transposed_width(int bits);
/// A spin-wait hint (x86 PAUSE) for the worker pool.
static inline void _mm_pause_shim(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}
/// Work stealing over contiguous segments (`Parallel.forEachStealing`): a segment's remaining
/// chunks are packed as (front << 32 | back). Its owner takes chunks from the front, a worker that
/// has run out takes them from the back, so each worker streams one contiguous run of its own
/// segment and stolen chunks come from the far end of another. Each returns the chunk index, or -1
/// when the segment is empty.
static inline int64_t lowrank_claim_front(uint64_t *segment) {
    uint64_t s = __atomic_load_n(segment, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t front = (uint32_t)(s >> 32), back = (uint32_t)s;
        if (front >= back) return -1;
        uint64_t next = ((uint64_t)(front + 1) << 32) | back;
        if (__atomic_compare_exchange_n(segment, &s, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return front;
    }
}
static inline int64_t lowrank_claim_back(uint64_t *segment) {
    uint64_t s = __atomic_load_n(segment, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t front = (uint32_t)(s >> 32), back = (uint32_t)s;
        if (front >= back) return -1;
        uint64_t next = ((uint64_t)front << 32) | (back - 1);
        if (__atomic_compare_exchange_n(segment, &s, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return back - 1;
    }
}
/// Counts one finished chunk of a member off `counter` and returns how many are left: the worker
/// that finishes the last one (0 left) sees every other chunk's writes (acquire-release) and adds
/// the member's partial outputs (`ProjectionGroup.applyRows`).
static inline int64_t lowrank_count_down(int64_t *counter) {
    return __atomic_sub_fetch(counter, 1, __ATOMIC_ACQ_REL);
}
/// Chunks left in a segment (a hint: it may change at once).
static inline int64_t lowrank_segment_remaining(const uint64_t *segment) {
    uint64_t s = __atomic_load_n(segment, __ATOMIC_RELAXED);
    uint32_t front = (uint32_t)(s >> 32), back = (uint32_t)s;
    return front < back ? (int64_t)(back - front) : 0;
}
#endif
