#ifndef LOWRANK_CKERNELS_PREFETCH_H
#define LOWRANK_CKERNELS_PREFETCH_H
// Software prefetch of the rows the next attention kernel call will read (private to CKernels).
//
// Decoding reads each key/value head of the cache as a short stream (a worker's share of one head:
// 288 rows of 128 bytes for SmolLM2 at position 576 in half precision), and the weights streamed
// between two layers have evicted it from every cache level. Each such stream pays the memory's
// latency while the hardware prefetcher ramps up, and scores, softmax and values ran one stream
// after another: in a one-thread C test over 300 layers' worth of cache (AMD EPYC Zen 3), scores
// then values over a layer's three heads took 27.6 µs; issuing the same rows of the next stream (the
// head's values while its scores are computed, the next head's keys while these values are summed)
// took 21.0 µs (docs/BENCHMARKS.md, 2026-12-04, 20:35–21:50 UTC). A worker's share of one head
// (36 KB half, 72 KB Float32) fits the L2 cache, so the prefetched rows are still there when read.
// In the engine, 0.9 → 0.8 ms of attention per token over a half cache; a Float32 cache (twice the
// bytes, bound by bandwidth) ran 0.965× as fast with it, so decoding passes no rows to prefetch there.
#include <stddef.h>
#include <stdint.h>

// Every cache line of rows [r, r + n) of `rows` (row stride ld elements of `size` bytes, `d` of
// them read per row), toward L1. Nothing is read: a prefetch never faults, and it changes no result.
static inline void lowrank_prefetch_rows(const void *rows, size_t ld, size_t size, size_t d, size_t r, size_t n) {
    if (!rows || n == 0) return;
    const char *base = (const char *)rows;
    if (ld == d) {  // contiguous rows: one span
        uintptr_t from = (uintptr_t)(base + r * ld * size) & ~(uintptr_t)63, to = (uintptr_t)(base + (r + n) * ld * size);
        for (uintptr_t a = from; a < to; a += 64) __builtin_prefetch((const void *)a, 0, 3);
        return;
    }
    for (size_t i = r; i < r + n; i++) {
        uintptr_t from = (uintptr_t)(base + i * ld * size) & ~(uintptr_t)63, to = (uintptr_t)(base + (i * ld + d) * size);
        for (uintptr_t a = from; a < to; a += 64) __builtin_prefetch((const void *)a, 0, 3);
    }
}
#endif
