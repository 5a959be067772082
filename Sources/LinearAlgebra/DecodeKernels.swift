import CKernels

/// 16-bit floating-point formats weights may be stored in.
public enum HalfFormat: Sendable {
    case float16
    case bfloat16
}

/// Matrix-vector products for batch-1 decoding, on weights stored as Float32 or 16-bit floats
/// (`CKernels`: AVX-512 or AVX2 when the CPU has it, portable loops otherwise). OpenBLAS's sgemv
/// reached only about half the memory bandwidth on the project machines (docs/BENCHMARKS.md), hence these.
public enum DecodeKernels {
    /// Tests: the vector width of the transposed products' AVX-512 kernels (256 or 512 bits), or
    /// nil for the choice by CPU (half-precision factors: 256 on Zen 4, which splits 512-bit
    /// operations, 512 elsewhere; Float32 factors: 256).
    public static func forceTransposedWidth(_ bits: Int?) { lowrank_kernels_force_transposed_width(Int32(bits ?? 0)) }

    /// `y[r] = W[r, 0..<inputs] · x` for r in `rows`; W row-major Float32 with row stride `ld`
    /// (default `inputs`; a larger stride runs a prefix of each row: the active rank of a factor).
    @inline(__always)
    public static func gemv(_ w: UnsafePointer<Float>, ld: Int? = nil, inputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                            y: UnsafeMutablePointer<Float>) {
        lowrank_gemv_f32(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
    }

    /// The same with 16-bit weights.
    @inline(__always)
    public static func gemv(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int? = nil, inputs: Int, rows: Range<Int>,
                            x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_gemv_f16(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
        case .bfloat16: lowrank_gemv_bf16(w, ld ?? inputs, x, y, rows.lowerBound, rows.upperBound, inputs)
        }
    }

    /// `y[j] = Σ_{k ∈ rows} x[k] · W[k, j]` for j in `0..<outputs` (overwrites y): the transposed
    /// product over a block of rows of W (row stride `ld`).
    @inline(__always)
    public static func gemvTransposed(_ w: UnsafePointer<Float>, ld: Int, outputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                                      y: UnsafeMutablePointer<Float>) {
        lowrank_gemv_t_f32(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
    }

    /// The same with 16-bit weights.
    @inline(__always)
    public static func gemvTransposed(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, outputs: Int, rows: Range<Int>,
                                      x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_gemv_t_f16(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
        case .bfloat16: lowrank_gemv_t_bf16(w, ld, x, y, rows.lowerBound, rows.upperBound, outputs)
        }
    }

    /// One low-rank chunk of one input row, rank by rank: `z[k] = A[k, 0..<inputs] · x`, then
    /// `y[0..<outputs] = Σ_k z[k] · Bᵀ[k, 0..<outputs]` for k in `ranks` (overwrites y), reading the
    /// rows of A and of Bᵀ side by side. The same bits as `gemv` then `gemvTransposed`. Returns false
    /// (nothing written) where this CPU's tier has no fused kernel for these sizes (the portable
    /// tier, short rows, narrow outputs); the caller then runs those two (`lowrank_gemv_pair_f32`).
    ///
    /// Why: a worker's chunk read A's rows and then Bᵀ's, so each chunk began two memory streams one
    /// after the other, and the next chunk began them again. Read side by side, each stream goes on
    /// where the worker's previous chunk left it. In a C test of SmolLM2's SVD-LLM 40% groups in
    /// half precision (30 layers, each group's chunks cut as `GroupChunks` does, two threads, AMD
    /// EPYC Zen 3), the chunks streamed 32.4 → 37.3 GB/s (one thread 18.8 → 20.8); docs/BENCHMARKS.md.
    @inline(__always)
    public static func gemvPair(_ a: UnsafePointer<Float>, lda: Int, inputs: Int, _ bt: UnsafePointer<Float>, ldb: Int, outputs: Int,
                                ranks: Range<Int>, x: UnsafePointer<Float>, z: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) -> Bool {
        lowrank_gemv_pair_f32(a, lda, inputs, bt, ldb, outputs, x, z, y, ranks.lowerBound, ranks.upperBound) != 0
    }

    /// The same with 16-bit factors (both in `format`).
    @inline(__always)
    public static func gemvPair(_ a: UnsafePointer<UInt16>, lda: Int, inputs: Int, _ bt: UnsafePointer<UInt16>, ldb: Int, outputs: Int,
                                format: HalfFormat, ranks: Range<Int>, x: UnsafePointer<Float>, z: UnsafeMutablePointer<Float>,
                                y: UnsafeMutablePointer<Float>) -> Bool {
        switch format {
        case .float16: lowrank_gemv_pair_f16(a, lda, inputs, bt, ldb, outputs, x, z, y, ranks.lowerBound, ranks.upperBound) != 0
        case .bfloat16: lowrank_gemv_pair_bf16(a, lda, inputs, bt, ldb, outputs, x, z, y, ranks.lowerBound, ranks.upperBound) != 0
        }
    }

    /// Input rows a call of `gemvRows`/`gemvTransposedRows` takes at once (more are split).
    public static let rowsPerCall = 4

    /// `y[s · ldy + r] = W[r, 0..<inputs] · x[s · ldx ..< s · ldx + inputs]` for r in `rows` and
    /// s < `count` (≤ `rowsPerCall`): a few input rows at once, each weight value read once for all.
    @inline(__always)
    public static func gemvRows(_ w: UnsafePointer<Float>, ld: Int, inputs: Int, rows: Range<Int>, x: UnsafePointer<Float>, ldx: Int,
                                count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        lowrank_gemm_rows_f32(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
    }

    @inline(__always)
    public static func gemvRows(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, inputs: Int, rows: Range<Int>,
                                x: UnsafePointer<Float>, ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch format {
        case .float16: lowrank_gemm_rows_f16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
        case .bfloat16: lowrank_gemm_rows_bf16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, inputs)
        }
    }

    /// `y[s · ldy + j] = Σ_{k ∈ rows} x[s · ldx + k] · W[k, j]` for j < `outputs` and s < `count`
    /// (≤ `rowsPerCall`; overwrites y): the transposed product for a few input rows at once.
    @inline(__always)
    public static func gemvTransposedRows(_ w: UnsafePointer<Float>, ld: Int, outputs: Int, rows: Range<Int>, x: UnsafePointer<Float>,
                                          ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        lowrank_gemm_t_rows_f32(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
    }

    @inline(__always)
    public static func gemvTransposedRows(_ w: UnsafePointer<UInt16>, format: HalfFormat, ld: Int, outputs: Int, rows: Range<Int>,
                                          x: UnsafePointer<Float>, ldx: Int, count t: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        switch format {
        case .float16: lowrank_gemm_t_rows_f16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
        case .bfloat16: lowrank_gemm_t_rows_bf16(w, ld, x, ldx, t, y, ldy, rows.lowerBound, rows.upperBound, outputs)
        }
    }

    /// Grouped-query attention scores while decoding: `scores[g · stride + (r − positions.lowerBound)]
    /// = q_g · K[r]` for the `group` query heads `q [group × headSize]` that share one key head, and
    /// cached keys K (row stride `ld`) at `positions`. Each key row is read from memory once.
    /// `next`: the rows the next call reads at the same positions and stride (this head's values),
    /// prefetched by the vector tiers while the keys are read; no result changes.
    @inline(__always)
    public static func attentionScores(keys k: UnsafePointer<Float>, ld: Int, queries q: UnsafePointer<Float>, group: Int,
                                       headSize d: Int, positions: Range<Int>, into scores: UnsafeMutablePointer<Float>, stride: Int,
                                       prefetching next: UnsafePointer<Float>? = nil) {
        lowrank_attend_scores_f32(k, ld, q, group, d, scores, stride, positions.lowerBound, positions.upperBound, next)
    }

    /// The weighted values of a group: `out[g · headSize + j] = Σ_r p[g · stride + (r − lower)] · V[r, j]`
    /// over `positions` (overwrites `out [group × headSize]`). Each value row is read once. `next`: as
    /// for the scores (the next head's keys).
    @inline(__always)
    public static func attentionValues(values v: UnsafePointer<Float>, ld: Int, weights p: UnsafePointer<Float>, stride: Int,
                                       group: Int, headSize d: Int, positions: Range<Int>, into out: UnsafeMutablePointer<Float>,
                                       prefetching next: UnsafePointer<Float>? = nil) {
        lowrank_attend_values_f32(v, ld, p, stride, group, d, out, positions.lowerBound, positions.upperBound, next)
    }

    /// `attentionScores` over a half-precision cache (keys as IEEE half bit patterns).
    @inline(__always)
    public static func attentionScores(keys k: UnsafePointer<UInt16>, ld: Int, queries q: UnsafePointer<Float>, group: Int,
                                       headSize d: Int, positions: Range<Int>, into scores: UnsafeMutablePointer<Float>, stride: Int,
                                       prefetching next: UnsafePointer<UInt16>? = nil) {
        lowrank_attend_scores_f16(k, ld, q, group, d, scores, stride, positions.lowerBound, positions.upperBound, next)
    }

    /// `attentionValues` over a half-precision cache.
    @inline(__always)
    public static func attentionValues(values v: UnsafePointer<UInt16>, ld: Int, weights p: UnsafePointer<Float>, stride: Int,
                                       group: Int, headSize d: Int, positions: Range<Int>, into out: UnsafeMutablePointer<Float>,
                                       prefetching next: UnsafePointer<UInt16>? = nil) {
        lowrank_attend_values_f16(v, ld, p, stride, group, d, out, positions.lowerBound, positions.upperBound, next)
    }

    /// `out[i] = half(x[i])` for i < count, rounding to nearest even as `Float16(_:)` does, except
    /// that finite values beyond the half range (|x| ≥ 65520) saturate to ±65504 instead of
    /// becoming infinite. Returns how many saturated.
    @inline(__always)
    @discardableResult
    public static func roundToHalf(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt16>, count: Int) -> Int {
        Int(lowrank_round_f16(x, out, count))
    }

    /// Σ p[i] for i < count, reading the buffer once in order (a memory bandwidth probe).
    public static func readSum(_ p: UnsafePointer<Float>, count: Int) -> Float { lowrank_read_sum(p, count) }

    /// `out[i] = Float(h[i])`.
    @inline(__always)
    public static func widen(_ h: UnsafePointer<UInt16>, format: HalfFormat, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .float16: lowrank_widen_f16(h, out, count)
        case .bfloat16: lowrank_widen_bf16(h, out, count)
        }
    }
}
