#ifndef LOWRANK_CKERNELS_AVX2_H
#define LOWRANK_CKERNELS_AVX2_H
// The AVX2 tier of the decode kernels (AVX2, FMA and F16C: Intel since Haswell, AMD since Zen 1;
// private to CKernels). Each entry has the meaning and the arguments of the public
// `lowrank_…` function of the same name in CKernels.h; kernels.c calls these when the CPU has AVX2
// but not the AVX-512 subset the wider kernels need. Head sizes of the attention entries are
// multiples of 8, and the few-row entries take t <= 4.
#include <stddef.h>
#include <stdint.h>
#define LOWRANK_AVX2_HIDDEN __attribute__((visibility("hidden")))

#define LOWRANK_AVX2_PRODUCTS(SUFFIX, T)                                                                    \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_gemv_##SUFFIX(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n); \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_gemv_t_##SUFFIX(const T *w, size_t ld, const float *x, float *y, size_t b, size_t e, size_t n); \
    LOWRANK_AVX2_HIDDEN int lowrank_avx2_gemv_pair_##SUFFIX(const T *a, size_t lda, size_t in, const T *bt, size_t ldb, size_t out, \
                                                            const float *x, float *z, float *y, size_t b, size_t e); \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_gemm_rows_##SUFFIX(const T *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, \
                                                             size_t ldy, size_t b, size_t e, size_t n);              \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_gemm_t_rows_##SUFFIX(const T *w, size_t ld, const float *x, size_t ldx, size_t t, float *y, \
                                                               size_t ldy, size_t b, size_t e, size_t n);
LOWRANK_AVX2_PRODUCTS(f32, float)
LOWRANK_AVX2_PRODUCTS(f16, uint16_t)
LOWRANK_AVX2_PRODUCTS(bf16, uint16_t)

#define LOWRANK_AVX2_ATTENTION(SUFFIX, T)                                                                   \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_attend_scores_##SUFFIX(const T *k, size_t ld, const float *q, size_t group, size_t d, \
                                                                 float *scores, size_t ss, size_t b, size_t e, const T *next); \
    LOWRANK_AVX2_HIDDEN void lowrank_avx2_attend_values_##SUFFIX(const T *v, size_t ld, const float *p, size_t ps, size_t group, \
                                                                 size_t d, float *out, size_t b, size_t e, const T *next);
LOWRANK_AVX2_ATTENTION(f32, float)
LOWRANK_AVX2_ATTENTION(f16, uint16_t)

LOWRANK_AVX2_HIDDEN size_t lowrank_avx2_round_f16(const float *x, uint16_t *out, size_t count);
LOWRANK_AVX2_HIDDEN void lowrank_avx2_widen_f16(const uint16_t *h, float *out, size_t count);
LOWRANK_AVX2_HIDDEN void lowrank_avx2_widen_bf16(const uint16_t *h, float *out, size_t count);
LOWRANK_AVX2_HIDDEN float lowrank_avx2_read_sum(const float *p, size_t n);
#endif
