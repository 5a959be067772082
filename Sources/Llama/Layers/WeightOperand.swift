import LinearAlgebra

/// A weight as the decode kernels read it: the address of its values, its row stride and its
/// precision. A trivial value: copying one counts no references.
///
/// Why it exists: the workers of a fused decode region each copied the group's members (`Linear`
/// values, which hold their weights' buffers), so every region retained and released the same
/// buffers from both cores, several times per member, and the reference counts' cache lines
/// moved between the cores about 150 times per token (`perf`: `swift_retain`/`swift_release` at 1.9%
/// of the samples, under `ProjectionGroup.applyRows`). The calling thread now makes operands before
/// the region and the workers read only those (measured: 0.62–0.64 ms per token outside regions
/// against 0.69–0.88 before; the helper's slower share was not this; docs/BENCHMARKS.md).
///
/// An operand is valid while the `WeightMatrix` it came from is alive: its values never move (an
/// aligned buffer, a memory mapping, or a `let` array that is never mutated).
struct WeightOperand {
    let base: UnsafeRawPointer?
    /// Values per stored row (the row stride).
    let columns: Int
    let precision: WeightPrecision

    /// One low-rank chunk of one input row with this operand as the right factor A and `left` as
    /// Bᵀ (`DecodeKernels.gemvPair`): `z[k] = A[k, 0..<n] · x` and `y = Σ_k z[k] · Bᵀ[k, 0..<outputs]`
    /// for k in `ranks`. False (nothing written) when the factors' precisions differ or this CPU's
    /// tier has no fused kernel for these sizes.
    @inline(__always)
    func gemvPair(left: WeightOperand, ranks: Range<Int>, columns n: Int, outputs: Int, x: UnsafePointer<Float>,
                  z: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>) -> Bool {
        guard precision == left.precision else { return false }
        switch precision {
        case .float32:
            return DecodeKernels.gemvPair(float32, lda: columns, inputs: n, left.float32, ldb: left.columns, outputs: outputs,
                                          ranks: ranks, x: x, z: z, y: y)
        case .float16, .bfloat16:
            return DecodeKernels.gemvPair(half, lda: columns, inputs: n, left.half, ldb: left.columns, outputs: outputs,
                                          format: precision.halfFormat!, ranks: ranks, x: x, z: z, y: y)
        }
    }

    private var float32: UnsafePointer<Float> { base!.assumingMemoryBound(to: Float.self) }
    private var half: UnsafePointer<UInt16> { base!.assumingMemoryBound(to: UInt16.self) }

    /// `y[i] = W[i, 0..<n] · x` for i in `part` (one input row; part of a fused decode region).
    @inline(__always)
    func gemvRows(_ part: Range<Int>, columns n: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32: DecodeKernels.gemv(float32, ld: columns, inputs: n, rows: part, x: x, y: y)
        case .float16, .bfloat16: DecodeKernels.gemv(half, format: precision.halfFormat!, ld: columns, inputs: n, rows: part, x: x, y: y)
        }
    }

    /// `y[s][i] = W[i, 0..<n] · x[s]` for i in `part` and every input row s < t (row strides `ldx`,
    /// `ldy`). One row runs the one-row decode kernel; up to four rows share each weight load
    /// (`DecodeKernels.gemvRows`); more rows go four at a time over blocks of weight rows small enough
    /// to stay in L2, so the weights still come from memory once.
    @inline(__always)
    func gemvRows(_ part: Range<Int>, columns n: Int, x: UnsafePointer<Float>, ldx: Int, rows t: Int,
                  y: UnsafeMutablePointer<Float>, ldy: Int) {
        if t == 1 {
            gemvRows(part, columns: n, x: x, y: y)
            return
        }
        let width = t <= DecodeKernels.rowsPerCall ? part.count : max(8, WeightMatrix.blockBytes / max(1, n * precision.bytesPerValue))
        Self.blocks(of: part, width: width, rows: t) { rows, s, count in
            switch precision {
            case .float32:
                DecodeKernels.gemvRows(float32, ld: columns, inputs: n, rows: rows, x: x + s * ldx, ldx: ldx, count: count,
                                       y: y + s * ldy, ldy: ldy)
            case .float16, .bfloat16:
                DecodeKernels.gemvRows(half, format: precision.halfFormat!, ld: columns, inputs: n, rows: rows,
                                       x: x + s * ldx, ldx: ldx, count: count, y: y + s * ldy, ldy: ldy)
            }
        }
    }

    /// `y[s][j] = Σ_{k ∈ rows} x[s][k] · W[k, j]` for j in `block` and every input row s < t
    /// (overwrites those entries): the transposed product. One row runs the one-row kernel; up to
    /// four rows share each weight load; more rows go four at a time over blocks of columns whose
    /// rows stay in L2.
    @inline(__always)
    func gemvTransposedRows(rows: Range<Int>, columns block: Range<Int>, x: UnsafePointer<Float>, ldx: Int, count t: Int,
                            y: UnsafeMutablePointer<Float>, ldy: Int) {
        if t == 1 {
            gemvTransposed(rows: rows, columns: block, x: x, y: y)
            return
        }
        let width = t <= DecodeKernels.rowsPerCall ? block.count
            : max(16, WeightMatrix.blockBytes / max(1, rows.count * precision.bytesPerValue)) / 16 * 16
        Self.blocks(of: block, width: width, rows: t) { part, s, count in
            switch precision {
            case .float32:
                DecodeKernels.gemvTransposedRows(float32 + part.lowerBound, ld: columns, outputs: part.count, rows: rows,
                                                 x: x + s * ldx, ldx: ldx, count: count, y: y + s * ldy + part.lowerBound, ldy: ldy)
            case .float16, .bfloat16:
                DecodeKernels.gemvTransposedRows(half + part.lowerBound, format: precision.halfFormat!, ld: columns,
                                                 outputs: part.count, rows: rows, x: x + s * ldx, ldx: ldx, count: count,
                                                 y: y + s * ldy + part.lowerBound, ldy: ldy)
            }
        }
    }

    /// Runs `body(block, s, count)` over consecutive blocks of `range` at most `width` long, and for
    /// each block over the input rows s, s + 1, …, s + count − 1 that one few-row kernel call takes
    /// (`DecodeKernels.rowsPerCall` at a time, t rows in all): the blocking both few-row products share.
    @inline(__always)
    private static func blocks(of range: Range<Int>, width: Int, rows t: Int, _ body: (Range<Int>, Int, Int) -> Void) {
        let step = DecodeKernels.rowsPerCall
        var start = range.lowerBound
        while start < range.upperBound {
            let block = start..<min(range.upperBound, start + width)
            for s in stride(from: 0, to: t, by: step) { body(block, s, min(step, t - s)) }
            start = block.upperBound
        }
    }

    /// `y[j] = Σ_{k ∈ rows} x[k] · W[k, j]` for j in `block` (overwrites those entries, the others
    /// untouched): the transposed product over a block of rows, each streamed once in order.
    @inline(__always)
    func gemvTransposed(rows: Range<Int>, columns block: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32:
            DecodeKernels.gemvTransposed(float32 + block.lowerBound, ld: columns, outputs: block.count, rows: rows, x: x, y: y + block.lowerBound)
        case .float16, .bfloat16:
            DecodeKernels.gemvTransposed(half + block.lowerBound, format: precision.halfFormat!, ld: columns, outputs: block.count,
                                         rows: rows, x: x, y: y + block.lowerBound)
        }
    }
}
