// Single-thread bandwidth of the decode kernels on SmolLM2-135M's shapes, outside the engine (no
// worker pool, no other per-token work): how close a low-rank layer's products come to the dense
// ones, and what decode attention costs. Built and run by benchmarks/kernel_bandwidth.sh.
// Every matrix is a separate allocation, 30 layers' worth (far beyond the caches), as in decoding.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include "CKernels.h"

// Every buffer starts on a cache line, as the engine allocates a runtime model's weights and the KV
// cache (AlignedBuffer, AlignedAllocation); with the argument `misaligned` each starts 48 bytes
// into a line instead, where large Swift arrays put their elements (the loaders' Float32 arrays,
// which the engine streamed before 2026-12-02 afternoon).
static size_t misalignment = 0;
static void *allocations[1024];
static size_t allocationCount = 0;
static void *lines(size_t bytes) {
    char *p = aligned_alloc(64, (bytes + misalignment + 63) / 64 * 64);
    allocations[allocationCount++] = p;
    return p + misalignment;
}
static void releaseAll(void) { while (allocationCount > 0) free(allocations[--allocationCount]); }

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

enum { LAYERS = 30, KINDS = 7, REPEATS = 10 };
// q, k, v, o, gate, up, down: outputs, inputs, and the uniform rank at 40% removed (⌊0.6·m·n/(m+n)⌋).
static const size_t shape[KINDS][3] = {{576, 576, 172}, {192, 576, 86}, {192, 576, 86}, {576, 576, 172},
                                       {1536, 576, 251}, {1536, 576, 251}, {576, 1536, 251}};

static void gemv(int half, const void *w, size_t ld, const float *x, float *y, size_t rows, size_t inputs) {
    if (half) lowrank_gemv_f16(w, ld, x, y, 0, rows, inputs); else lowrank_gemv_f32(w, ld, x, y, 0, rows, inputs);
}
static void gemv_t(int half, const void *w, size_t ld, const float *x, float *y, size_t rows, size_t outputs) {
    if (half) lowrank_gemv_t_f16(w, ld, x, y, 0, rows, outputs); else lowrank_gemv_t_f32(w, ld, x, y, 0, rows, outputs);
}

static void projections(int half) {
    size_t es = half ? 2 : 4;
    void *dense[LAYERS][KINDS], *factors[LAYERS][KINDS];
    for (int l = 0; l < LAYERS; l++)
        for (int p = 0; p < KINDS; p++) {
            size_t o = shape[p][0], i = shape[p][1], r = shape[p][2];
            dense[l][p] = lines(o * i * es); memset(dense[l][p], 0x3c, o * i * es);
            factors[l][p] = lines(r * (o + i) * es); memset(factors[l][p], 0x3c, r * (o + i) * es);
        }
    static float x[1536], z[512], y[1536];
    for (int i = 0; i < 1536; i++) x[i] = 1e-3f * i;
    const char *names[4] = {"dense W·x", "low-rank A·x then Bᵀ·z", "low-rank A·x only", "low-rank Bᵀ·z only"};
    for (int mode = 0; mode < 4; mode++) {
        double best = 1e9; size_t bytes = 0;
        for (int rep = 0; rep < REPEATS; rep++) {
            bytes = 0;
            double t0 = now();
            for (int l = 0; l < LAYERS; l++)
                for (int p = 0; p < KINDS; p++) {
                    size_t o = shape[p][0], i = shape[p][1], r = shape[p][2];
                    const char *a = factors[l][p], *bt = a + r * i * es;  // A [r × in], then Bᵀ [r × out]
                    if (mode == 0) { gemv(half, dense[l][p], i, x, y, o, i); bytes += o * i * es; continue; }
                    if (mode != 3) { gemv(half, a, i, x, z, r, i); bytes += r * i * es; }
                    if (mode != 2) { gemv_t(half, bt, o, z, y, r, o); bytes += r * o * es; }
                }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        printf("%s %-26s %7.1f MB  %6.2f ms  %5.1f GB/s\n", half ? "f16" : "f32", names[mode], bytes / 1e6, best * 1e3, bytes / best / 1e9);
    }
    releaseAll();
    
}

// Decode attention at a 600-token context: 3 key/value heads of 64, 3 query heads each, Float32
// cache rows [positions × 192]; 200 MB are streamed between tokens to evict the cache, as the
// weights do when decoding.
static void attention(void) {
    const size_t positions = 600, kvHeads = 3, d = 64, ld = kvHeads * d, group = 3;
    float *k[LAYERS], *v[LAYERS];
    for (int l = 0; l < LAYERS; l++) {
        k[l] = lines(positions * ld * 4); v[l] = lines(positions * ld * 4);
        for (size_t i = 0; i < positions * ld; i++) { k[l][i] = (i % 13) * 0.01f; v[l][i] = (i % 7) * 0.01f; }
    }
    size_t flushBytes = (size_t)200 << 20;
    char *flush = malloc(flushBytes); memset(flush, 1, flushBytes);
    static float q[9 * 64], scores[3 * 600], out[9 * 64];
    for (int i = 0; i < 9 * 64; i++) q[i] = 0.01f * i;
    double best = 1e9;
    for (int rep = 0; rep < REPEATS; rep++) {
        for (size_t i = 0; i < flushBytes; i += 64) flush[i]++;
        double t0 = now();
        for (int l = 0; l < LAYERS; l++)
            for (size_t h = 0; h < kvHeads; h++) {
                lowrank_attend_scores_f32(k[l] + h * d, ld, q + h * group * d, group, d, scores, positions, 0, positions);
                lowrank_attend_values_f32(v[l] + h * d, ld, scores, positions, group, d, out + h * group * d, 0, positions);
            }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("f32 attention, 600 positions, 30 layers: %.2f ms per token  %5.1f GB/s\n", best * 1e3, 2.0 * LAYERS * positions * ld * 4 / best / 1e9);
    free(flush);
    releaseAll();
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "misaligned") == 0) misalignment = 48;
    printf("buffers: %s\n", misalignment ? "48 bytes into a cache line" : "cache-line aligned");
    printf("AVX-512 kernels: %s\n", lowrank_kernels_use_avx512() ? "yes" : "no");
    projections(0);
    projections(1);
    attention();
    return 0;
}
