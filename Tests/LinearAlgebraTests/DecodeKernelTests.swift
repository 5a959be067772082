import Testing
import LinearAlgebra
import TestSupport

/// The C decode kernels (every tier this CPU runs: AVX-512, AVX2, portable) against plain Swift loops that widen with Swift's
/// own Float16 and bit-shift bfloat16 conversions.
@Suite("Decode kernels match their reference twins", .serialized)
struct DecodeKernelTests {
    // Rows of 16 or more run the blocked short-row kernel (inputs < 256) with its transposing reduction.
    static let shapes = [(rows: 7, inputs: 37), (rows: 8, inputs: 64), (rows: 13, inputs: 576), (rows: 4, inputs: 230), (rows: 3, inputs: 5),
                         (rows: 37, inputs: 64), (rows: 33, inputs: 7), (rows: 48, inputs: 230), (rows: 17, inputs: 300), (rows: 11, inputs: 200)]

    func reference(_ w: [Float], rows: Int, inputs: Int, x: [Float]) -> [Float] {
        (0..<rows).map { r in (0..<inputs).reduce(Float(0)) { $0 + w[r * inputs + $1] * x[$1] } }
    }

    @Test(arguments: DecodeKernels.supportedLevels)
    func gemvOnEveryWeightFormatMatchesPlainLoops(level: DecodeKernels.Level) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        var rng = SeededGenerator(seed: 12)
        for (rows, inputs) in Self.shapes {
            let w = rng.floats(rows * inputs, scale: 1), x = rng.floats(inputs, scale: 1)
            let f16 = w.map { Float16($0).bitPattern }
            let bf16 = w.map { UInt16($0.bitPattern >> 16) }
            let expected32 = reference(w, rows: rows, inputs: inputs, x: x)
            let expected16 = reference(f16.map { Float(Float16(bitPattern: $0)) }, rows: rows, inputs: inputs, x: x)
            let expectedBF = reference(bf16.map { Float(bitPattern: UInt32($0) << 16) }, rows: rows, inputs: inputs, x: x)
            var y = [Float](repeating: .nan, count: rows)
            // Rows 1..<rows only: the kernel must leave row 0 alone.
            w.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer {
                DecodeKernels.gemv(wp.baseAddress!, inputs: inputs, rows: 1..<rows, x: xp.baseAddress!, y: $0.baseAddress!)
            } } }
            #expect(y[0].isNaN)
            for r in 1..<rows { #expect(abs(y[r] - expected32[r]) < 1e-4, "f32 \(rows)×\(inputs) row \(r)") }
            for (bits, format, expected) in [(f16, HalfFormat.float16, expected16), (bf16, .bfloat16, expectedBF)] {
                bits.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer {
                    DecodeKernels.gemv(wp.baseAddress!, format: format, inputs: inputs, rows: 0..<rows, x: xp.baseAddress!, y: $0.baseAddress!)
                } } }
                for r in 0..<rows { #expect(abs(y[r] - expected[r]) < 1e-4, "\(format) \(rows)×\(inputs) row \(r)") }
            }
        }
    }

    /// A row stride larger than the row length runs a prefix of each row (a factor at an active
    /// rank): the same values as the kernel on a compact copy of that prefix, bit for bit.
    @Test(arguments: DecodeKernels.supportedLevels)
    func aRowStrideRunsThePrefixOfEachRow(level: DecodeKernels.Level) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        var rng = SeededGenerator(seed: 44)
        for (rows, ld, inputs) in [(5, 230, 117), (9, 64, 64), (3, 100, 7), (40, 192, 64)] {
            let w = rng.floats(rows * ld, scale: 1), x = rng.floats(ld, scale: 1)
            let compact = (0..<rows).flatMap { r in w[(r * ld)..<(r * ld + inputs)] }
            var strided = [Float](repeating: 0, count: rows), dense = strided
            w.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in strided.withUnsafeMutableBufferPointer {
                DecodeKernels.gemv(wp.baseAddress!, ld: ld, inputs: inputs, rows: 0..<rows, x: xp.baseAddress!, y: $0.baseAddress!)
            } } }
            compact.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in dense.withUnsafeMutableBufferPointer {
                DecodeKernels.gemv(wp.baseAddress!, inputs: inputs, rows: 0..<rows, x: xp.baseAddress!, y: $0.baseAddress!)
            } } }
            #expect(strided == dense, "\(rows) × \(inputs) of \(ld)")
            let expected = reference(compact, rows: rows, inputs: inputs, x: Array(x.prefix(inputs)))
            for r in 0..<rows { #expect(abs(strided[r] - expected[r]) < 1e-4) }
            let halves = w.map { Float16($0).bitPattern }
            var y16 = [Float](repeating: 0, count: rows)
            halves.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y16.withUnsafeMutableBufferPointer {
                DecodeKernels.gemv(wp.baseAddress!, format: .float16, ld: ld, inputs: inputs, rows: 0..<rows, x: xp.baseAddress!, y: $0.baseAddress!)
            } } }
            let expected16 = reference(compact.map { Float(Float16($0)) }, rows: rows, inputs: inputs, x: Array(x.prefix(inputs)))
            for r in 0..<rows { #expect(abs(y16[r] - expected16[r]) < 1e-4) }
        }
    }

    /// The transposed product (a left factor kept as Bᵀ) over a block of rows, in every format, with
    /// the AVX-512 kernels in 256-bit and in 512-bit vectors (chosen by CPU otherwise).
    @Test(arguments: DecodeKernels.supportedLevels, [256, 512])
    func theTransposedProductOverABlockOfRowsMatchesPlainLoops(level: DecodeKernels.Level, width: Int) throws {
        try DecodeKernels.force(level)
        DecodeKernels.forceTransposedWidth(width)
        defer {
            try? DecodeKernels.force(nil)
            DecodeKernels.forceTransposedWidth(nil)
        }
        var rng = SeededGenerator(seed: 45)
        for (rows, outputs, block) in [(20, 576, 3..<17), (7, 37, 0..<7), (5, 64, 2..<2), (9, 100, 4..<9), (600, 64, 0..<600), (30, 128, 5..<30), (12, 129, 0..<12),
                                       (6, 200, 1..<6), (4, 203, 0..<4), (3, 1542, 0..<3), (8, 6, 1..<8)] {
            let w = rng.floats(rows * outputs, scale: 1), x = rng.floats(rows, scale: 1)
            func expected(_ widen: (Int) -> Float) -> [Float] {
                (0..<outputs).map { j in block.reduce(Float(0)) { $0 + x[$1] * widen($1 * outputs + j) } }
            }
            var y = [Float](repeating: .nan, count: outputs)
            w.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer {
                DecodeKernels.gemvTransposed(wp.baseAddress!, ld: outputs, outputs: outputs, rows: block, x: xp.baseAddress!, y: $0.baseAddress!)
            } } }
            for (a, b) in zip(y, expected { w[$0] }) { #expect(abs(a - b) < 1e-4, "f32 \(rows) × \(outputs) rows \(block)") }
            let f16 = w.map { Float16($0).bitPattern }, bf16 = w.map { UInt16($0.bitPattern >> 16) }
            for (bits, format, widen) in [(f16, HalfFormat.float16, { (i: Int) in Float(Float16(bitPattern: f16[i])) }),
                                          (bf16, .bfloat16, { (i: Int) in Float(bitPattern: UInt32(bf16[i]) << 16) })] {
                bits.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer {
                    DecodeKernels.gemvTransposed(wp.baseAddress!, format: format, ld: outputs, outputs: outputs, rows: block, x: xp.baseAddress!, y: $0.baseAddress!)
                } } }
                for (a, b) in zip(y, expected(widen)) { #expect(abs(a - b) < 1e-4, "\(format) \(rows) × \(outputs)") }
            }
        }
    }

    /// The fused low-rank chunk (A's and Bᵀ's rows read side by side) gives the bits of the right
    /// product then the transposed one, in every format, with row strides and rank ranges that do
    /// not start at 0, and the AVX-512 transposed product in 256- and 512-bit vectors. It runs for
    /// inputs ≥ 256 and outputs > 64 (AVX2) or > 128 (AVX-512); elsewhere (and on the portable
    /// tier) it answers false and writes nothing. Ranks outside the range keep their z.
    @Test(arguments: DecodeKernels.supportedLevels, [256, 512])
    func theFusedLowRankChunkGivesTheBitsOfItsTwoProducts(level: DecodeKernels.Level, width: Int) throws {
        try DecodeKernels.force(level)
        DecodeKernels.forceTransposedWidth(width)
        defer {
            try? DecodeKernels.force(nil)
            DecodeKernels.forceTransposedWidth(nil)
        }
        var rng = SeededGenerator(seed: 46)
        // (rank, lda, inputs, ldb, outputs, ranks): SmolLM2-like chunks, a prefix of wider rows, a
        // tail of inputs past the 32-wide blocks, outputs past the 8-wide ones, one rank, and sizes
        // the fused kernel leaves to the two products.
        let shapes = [(64, 576, 576, 1536, 1536, 16..<48), (40, 1536, 1536, 576, 576, 0..<40), (20, 600, 300, 200, 131, 3..<19),
                      (9, 260, 259, 77, 77, 8..<9), (7, 300, 300, 128, 128, 1..<7), (12, 576, 576, 64, 64, 0..<12),
                      (12, 255, 255, 576, 576, 2..<10), (6, 576, 576, 576, 576, 4..<4)]
        for (rank, lda, inputs, ldb, outputs, ranks) in shapes {
            let a = rng.floats(rank * lda, scale: 1), bt = rng.floats(rank * ldb, scale: 1), x = rng.floats(lda, scale: 1)
            let fuses = inputs >= 256 && !ranks.isEmpty && (level == .avx2 && outputs > 64 || level == .avx512 && outputs > 128)
            func check<T>(_ a: [T], _ bt: [T], _ name: String, pair: (UnsafePointer<T>, UnsafePointer<T>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Bool,
                          separate: (UnsafePointer<T>, UnsafePointer<T>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
                var z = [Float](repeating: .nan, count: rank), y = [Float](repeating: .nan, count: outputs)
                var z2 = z, y2 = y
                let ran = a.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in x.withUnsafeBufferPointer { xp in
                    z.withUnsafeMutableBufferPointer { zp in y.withUnsafeMutableBufferPointer { yp in
                        pair(ap.baseAddress!, bp.baseAddress!, xp.baseAddress!, zp.baseAddress!, yp.baseAddress!)
                    } } } } }
                #expect(ran == fuses, "\(name) \(level) \(inputs) → \(outputs) ranks \(ranks)")
                guard ran else {
                    #expect(z.allSatisfy(\.isNaN) && y.allSatisfy(\.isNaN), "\(name): nothing is written when not fused")
                    return
                }
                a.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in x.withUnsafeBufferPointer { xp in
                    z2.withUnsafeMutableBufferPointer { zp in y2.withUnsafeMutableBufferPointer { yp in
                        separate(ap.baseAddress!, bp.baseAddress!, xp.baseAddress!, zp.baseAddress!, yp.baseAddress!)
                    } } } } }
                #expect(z.map(\.bitPattern) == z2.map(\.bitPattern), "\(name) z, \(inputs) → \(outputs) ranks \(ranks)")
                #expect(y.map(\.bitPattern) == y2.map(\.bitPattern), "\(name) y, \(inputs) → \(outputs) ranks \(ranks)")
                #expect((0..<rank).allSatisfy { ranks.contains($0) != z[$0].isNaN }, "\(name): z outside the ranks untouched")
            }
            check(a, bt, "f32", pair: { ap, bp, xp, zp, yp in
                DecodeKernels.gemvPair(ap, lda: lda, inputs: inputs, bp, ldb: ldb, outputs: outputs, ranks: ranks, x: xp, z: zp, y: yp)
            }, separate: { ap, bp, xp, zp, yp in
                DecodeKernels.gemv(ap, ld: lda, inputs: inputs, rows: ranks, x: xp, y: zp)
                DecodeKernels.gemvTransposed(bp, ld: ldb, outputs: outputs, rows: ranks, x: zp, y: yp)
            })
            // The reference twin for the fused f32 chunk: plain loops, to rounding.
            if fuses {
                var z = [Float](repeating: 0, count: rank), y = [Float](repeating: 0, count: outputs)
                _ = a.withUnsafeBufferPointer { ap in bt.withUnsafeBufferPointer { bp in x.withUnsafeBufferPointer { xp in
                    z.withUnsafeMutableBufferPointer { zp in y.withUnsafeMutableBufferPointer { yp in
                        DecodeKernels.gemvPair(ap.baseAddress!, lda: lda, inputs: inputs, bp.baseAddress!, ldb: ldb, outputs: outputs, ranks: ranks,
                                               x: xp.baseAddress!, z: zp.baseAddress!, y: yp.baseAddress!)
                    } } } } }
                let zr = ranks.map { k in (0..<inputs).reduce(Float(0)) { $0 + a[k * lda + $1] * x[$1] } }
                for (i, k) in ranks.enumerated() { #expect(abs(z[k] - zr[i]) < 1e-3 * max(1, abs(zr[i]))) }
                for j in 0..<outputs {
                    let yr = ranks.enumerated().reduce(Float(0)) { $0 + zr[$1.offset] * bt[$1.element * ldb + j] }
                    #expect(abs(y[j] - yr) < 1e-2 * max(1, abs(yr)), "f32 y[\(j)]")
                }
            }
            for format in [HalfFormat.float16, .bfloat16] {
                let widen: (Float) -> UInt16 = format == .float16 ? { Float16($0).bitPattern } : { UInt16($0.bitPattern >> 16) }
                check(a.map(widen), bt.map(widen), "\(format)", pair: { ap, bp, xp, zp, yp in
                    DecodeKernels.gemvPair(ap, lda: lda, inputs: inputs, bp, ldb: ldb, outputs: outputs, format: format, ranks: ranks, x: xp, z: zp, y: yp)
                }, separate: { ap, bp, xp, zp, yp in
                    DecodeKernels.gemv(ap, format: format, ld: lda, inputs: inputs, rows: ranks, x: xp, y: zp)
                    DecodeKernels.gemvTransposed(bp, format: format, ld: ldb, outputs: outputs, rows: ranks, x: zp, y: yp)
                })
            }
        }
    }

    /// The few-row kernels (batched decoding: each weight value loaded once for up to four input
    /// rows) against plain loops, for 1–4 rows, every format, row strides on the weights, the
    /// inputs and the outputs, row ranges that are not multiples of the four-row block, and tails
    /// that are not multiples of 16. Entries outside the asked rows and columns stay untouched.
    @Test(arguments: DecodeKernels.supportedLevels)
    func theFewRowProductsMatchPlainLoopsAndLeaveOtherEntriesAlone(level: DecodeKernels.Level) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        var rng = SeededGenerator(seed: 47)
        for (rows, ld, inputs, block) in [(13, 576, 576, 1..<12), (9, 240, 230, 0..<9), (6, 37, 20, 2..<6), (4, 16, 16, 0..<4), (21, 64, 64, 3..<3)] {
            let w = rng.floats(rows * ld, scale: 1)
            let f16 = w.map { Float16($0).bitPattern }, bf16 = w.map { UInt16($0.bitPattern >> 16) }
            let formats: [(HalfFormat?, (Int) -> Float)] = [(nil, { w[$0] }), (.float16, { Float(Float16(bitPattern: f16[$0])) }),
                                                           (.bfloat16, { Float(bitPattern: UInt32(bf16[$0]) << 16) })]
            for t in 1...4 {
                // y[s][r] = W[r, 0..<inputs] · x[s], x rows with stride ldx = inputs + 3, y rows with stride rows + 2.
                let ldx = inputs + 3, ldy = rows + 2
                let x = rng.floats(t * ldx, scale: 1)
                for (format, widen) in formats {
                    var y = [Float](repeating: .nan, count: t * ldy)
                    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                        if let format {
                            (format == .float16 ? f16 : bf16).withUnsafeBufferPointer {
                                DecodeKernels.gemvRows($0.baseAddress!, format: format, ld: ld, inputs: inputs, rows: block, x: xp.baseAddress!,
                                                       ldx: ldx, count: t, y: yp.baseAddress!, ldy: ldy)
                            }
                        } else {
                            w.withUnsafeBufferPointer {
                                DecodeKernels.gemvRows($0.baseAddress!, ld: ld, inputs: inputs, rows: block, x: xp.baseAddress!, ldx: ldx, count: t,
                                                       y: yp.baseAddress!, ldy: ldy)
                            }
                        }
                    } }
                    for s in 0..<t {
                        for r in 0..<ldy {
                            let value = y[s * ldy + r]
                            guard block.contains(r) else { #expect(value.isNaN, "row \(r) of input \(s) is outside \(block)"); continue }
                            let expected = (0..<inputs).reduce(Float(0)) { $0 + widen(r * ld + $1) * x[s * ldx + $1] }
                            #expect(abs(value - expected) < 1e-4, "\(String(describing: format)) t \(t) \(rows)×\(inputs) of \(ld) row \(r)")
                        }
                    }
                    // Transposed: y[s][j] = Σ_{k ∈ block} x[s][k] · W[k, j] for j < inputs (W's first `inputs` columns).
                    let xt = rng.floats(t * (rows + 1), scale: 1), ldxt = rows + 1, ldyt = inputs + 5
                    var yt = [Float](repeating: .nan, count: t * ldyt)
                    xt.withUnsafeBufferPointer { xp in yt.withUnsafeMutableBufferPointer { yp in
                        if let format {
                            (format == .float16 ? f16 : bf16).withUnsafeBufferPointer {
                                DecodeKernels.gemvTransposedRows($0.baseAddress!, format: format, ld: ld, outputs: inputs, rows: block,
                                                                 x: xp.baseAddress!, ldx: ldxt, count: t, y: yp.baseAddress!, ldy: ldyt)
                            }
                        } else {
                            w.withUnsafeBufferPointer {
                                DecodeKernels.gemvTransposedRows($0.baseAddress!, ld: ld, outputs: inputs, rows: block, x: xp.baseAddress!,
                                                                 ldx: ldxt, count: t, y: yp.baseAddress!, ldy: ldyt)
                            }
                        }
                    } }
                    for s in 0..<t {
                        for j in 0..<ldyt {
                            let value = yt[s * ldyt + j]
                            guard j < inputs else { #expect(value.isNaN, "column \(j) of input \(s) is past the outputs"); continue }
                            let expected = block.reduce(Float(0)) { $0 + xt[s * ldxt + $1] * widen($1 * ld + j) }
                            #expect(abs(value - expected) < 1e-4, "transposed \(String(describing: format)) t \(t) rows \(block) column \(j)")
                        }
                    }
                }
            }
        }
    }

    /// Grouped-query decode attention: the query heads of one key head scored together, and their
    /// weighted values, against plain loops, over a Float32 cache and over a half one (each stored
    /// half read exactly). AVX-512: head size 64 sums in registers (groups up to 7 = two passes), 16
    /// and 128 in memory, 24 (not a multiple of 16) falls to the AVX2 kernels. AVX2: 32, 64 and 128
    /// in registers (up to 3 heads per pass), 16 and 24 in memory. Position ranges start inside the
    /// cache and end off a 16-row block. Each kernel gives the same bits when it also prefetches
    /// another head's rows (the rows the next call reads, as decoding passes them).
    @Test(arguments: DecodeKernels.supportedLevels, [false, true])
    func groupedAttentionScoresAndValuesMatchPlainLoops(level: DecodeKernels.Level, halfCache: Bool) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        var rng = SeededGenerator(seed: halfCache ? 47 : 46)
        for (d, group, kvHeads, positions) in [(64, 3, 3, 0..<150), (64, 7, 2, 5..<40), (64, 1, 1, 3..<4), (16, 2, 2, 0..<33),
                                               (128, 4, 2, 17..<80), (24, 2, 1, 1..<20), (64, 6, 1, 0..<16), (32, 2, 2, 4..<29)] {
            let ld = kvHeads * d, rows = positions.upperBound
            var k = rng.floats(rows * ld, scale: 1), v = rng.floats(rows * ld, scale: 1)
            let q = rng.floats(group * d, scale: 1)
            let kBits = k.map { Float16($0).bitPattern }, vBits = v.map { Float16($0).bitPattern }
            if halfCache {  // the values the kernels must see
                k = kBits.map { Float(Float16(bitPattern: $0)) }
                v = vBits.map { Float(Float16(bitPattern: $0)) }
            }
            let n = positions.count, stride = n + 3
            let kvHead = kvHeads - 1  // the last head: its columns start at an offset inside each row
            let p = rng.floats(group * stride, scale: 1)
            // Scores, then values weighted by p. `prefetch`: each kernel also prefetches the other
            // array's rows at the same positions (as decoding passes them), which must change no bit.
            func run(prefetch: Bool) -> (scores: [Float], values: [Float]) {
                var scores = [Float](repeating: .nan, count: group * stride), out = [Float](repeating: .nan, count: group * d)
                q.withUnsafeBufferPointer { qp in p.withUnsafeBufferPointer { pp in
                    scores.withUnsafeMutableBufferPointer { s in out.withUnsafeMutableBufferPointer { o in
                        if halfCache {
                            kBits.withUnsafeBufferPointer { kp in vBits.withUnsafeBufferPointer { vp in
                                let keys = kp.baseAddress! + kvHead * d, values = vp.baseAddress! + kvHead * d
                                DecodeKernels.attentionScores(keys: keys, ld: ld, queries: qp.baseAddress!, group: group, headSize: d,
                                                              positions: positions, into: s.baseAddress!, stride: stride, prefetching: prefetch ? values : nil)
                                DecodeKernels.attentionValues(values: values, ld: ld, weights: pp.baseAddress!, stride: stride, group: group, headSize: d,
                                                              positions: positions, into: o.baseAddress!, prefetching: prefetch ? kp.baseAddress! : nil)
                            } }
                        } else {
                            k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                                let keys = kp.baseAddress! + kvHead * d, values = vp.baseAddress! + kvHead * d
                                DecodeKernels.attentionScores(keys: keys, ld: ld, queries: qp.baseAddress!, group: group, headSize: d,
                                                              positions: positions, into: s.baseAddress!, stride: stride, prefetching: prefetch ? values : nil)
                                DecodeKernels.attentionValues(values: values, ld: ld, weights: pp.baseAddress!, stride: stride, group: group, headSize: d,
                                                              positions: positions, into: o.baseAddress!, prefetching: prefetch ? kp.baseAddress! : nil)
                            } }
                        }
                    } }
                } }
                return (scores, out)
            }
            let (scores, out) = run(prefetch: false)
            let prefetched = run(prefetch: true)
            #expect(prefetched.scores.map(\.bitPattern) == scores.map(\.bitPattern), "scores d \(d) group \(group): prefetching changed them")
            #expect(prefetched.values.map(\.bitPattern) == out.map(\.bitPattern), "values d \(d) group \(group): prefetching changed them")
            for g in 0..<group {
                for (i, r) in positions.enumerated() {
                    let expected = (0..<d).reduce(Float(0)) { $0 + q[g * d + $1] * k[r * ld + kvHead * d + $1] }
                    #expect(abs(scores[g * stride + i] - expected) < 1e-4, "scores d \(d) group \(group) head \(g) row \(r)")
                }
                #expect(scores[g * stride + n].isNaN, "the kernel writes only the positions asked for")
            }
            for g in 0..<group {
                for j in 0..<d {
                    let expected = positions.enumerated().reduce(Float(0)) { $0 + p[g * stride + $1.offset] * v[$1.element * ld + kvHead * d + j] }
                    #expect(abs(out[g * d + j] - expected) < 1e-4, "values d \(d) group \(group) head \(g) column \(j)")
                }
            }
        }
    }

    /// Rounding for a half cache: to nearest even exactly as `Float16(_:)` (ties, subnormals, the
    /// smallest values that round to zero), except that finite values at or beyond 65520, which
    /// would become infinite, saturate to ±65504 and are counted; infinities and NaN pass through.
    @Test(arguments: DecodeKernels.supportedLevels)
    func roundingToHalfMatchesFloat16AndSaturatesInsteadOfOverflowing(level: DecodeKernels.Level) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        var rng = SeededGenerator(seed: 48)
        let tiny = Float(bitPattern: 0x3300_0000)  // 2^-25: half of the smallest subnormal, a tie that rounds to 0
        let special: [Float] = [0, -0, 1, -1, 1.0009765625 + 0x1p-11, 1 + 0x1p-11, 1 + 3 * 0x1p-11, tiny, tiny.nextUp, -tiny.nextUp,
                                0x1p-24 * 1.5, 0x1p-24 * 2.5, 6.1035156e-05, 6.0975552e-05, 65504, 65519.99, -65519.99, 65520, -65520, 70000,
                                -1e6, Float.greatestFiniteMagnitude, .infinity, -.infinity, .nan]
        // Specials both in the 16-wide part and in the scalar tail; random values of every scale.
        let values = special + (0..<40).map { i in rng.floats(1, scale: 1)[0] * Float(sign: .plus, exponent: i - 28, significand: 1) } + special
        var bits = [UInt16](repeating: 0, count: values.count)
        let saturated = values.withUnsafeBufferPointer { x in bits.withUnsafeMutableBufferPointer {
            DecodeKernels.roundToHalf(x.baseAddress!, into: $0.baseAddress!, count: values.count)
        } }
        var expectedSaturated = 0
        for (x, b) in zip(values, bits) {
            if x.isNaN {
                #expect(Float16(bitPattern: b).isNaN, "NaN stays NaN")
            } else if x.isFinite && abs(x) >= 65520 {
                expectedSaturated += 1
                #expect(b == (x < 0 ? 0xFBFF : 0x7BFF), "\(x) saturates to ±65504, got 0x\(String(b, radix: 16))")
            } else {
                #expect(b == Float16(x).bitPattern, "\(x): 0x\(String(b, radix: 16)) against 0x\(String(Float16(x).bitPattern, radix: 16))")
            }
        }
        #expect(saturated == expectedSaturated && saturated == 10)
    }

    @Test(arguments: DecodeKernels.supportedLevels)
    func wideningIsExactIncludingSubnormalsInfinitiesAndNaN(level: DecodeKernels.Level) throws {
        try DecodeKernels.force(level)
        defer { try? DecodeKernels.force(nil) }
        let halves: [UInt16] = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF, 0x7C00, 0xFC00, 0x3555]
            + (0..<20).map { UInt16($0 * 3271 % 65536) }
        var out = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBufferPointer { h in out.withUnsafeMutableBufferPointer { DecodeKernels.widen(h.baseAddress!, format: .float16, count: halves.count, into: $0.baseAddress!) } }
        for (bits, value) in zip(halves, out) {
            let expected = Float(Float16(bitPattern: bits))
            #expect(value == expected || (value.isNaN && expected.isNaN), "0x\(String(bits, radix: 16))")
        }
        let nan: [UInt16] = [0x7E00]
        var one: [Float] = [0]
        nan.withUnsafeBufferPointer { h in one.withUnsafeMutableBufferPointer { DecodeKernels.widen(h.baseAddress!, format: .float16, count: 1, into: $0.baseAddress!) } }
        #expect(one[0].isNaN)
        // bfloat16 widening is a shift: bit for bit, NaN payloads included; past 16 values so the
        // vector loops run too.
        let brain: [UInt16] = [0x3F80, 0xC0A0, 0x7F80, 0x0001, 0x7FC1, 0xFF80] + (0..<30).map { UInt16($0 * 4099 % 65536) }
        var b = [Float](repeating: 0, count: brain.count)
        brain.withUnsafeBufferPointer { h in b.withUnsafeMutableBufferPointer { DecodeKernels.widen(h.baseAddress!, format: .bfloat16, count: brain.count, into: $0.baseAddress!) } }
        #expect(b.map(\.bitPattern) == brain.map { UInt32($0) << 16 })
    }

    /// `LOWRANK_DECODE_KERNELS` forces a tier for A/B runs: a lower tier is taken and reported as
    /// forced; a name that is no tier, and a tier above the CPU's, are refused with a message that
    /// names the variable.
    @Test func theEnvironmentForcesALowerTierAndRefusesWhatTheCPUCannotRun() throws {
        defer { try? DecodeKernels.force(nil) }
        try DecodeKernels.applyEnvironment("portable")
        #expect(DecodeKernels.level == .portable)
        #expect(DecodeKernels.summary == (DecodeKernels.cpuLevel == .portable ? "portable"
                                            : "portable (forced by LOWRANK_DECODE_KERNELS; the CPU runs \(DecodeKernels.cpuLevel))"))
        try DecodeKernels.applyEnvironment(nil)  // unset: changes nothing
        #expect(DecodeKernels.level == .portable)
        try DecodeKernels.force(nil)
        #expect(DecodeKernels.level == DecodeKernels.cpuLevel)
        #expect(throws: DecodeKernels.ChoiceError.self) { try DecodeKernels.applyEnvironment("sse9") }
        do {
            try DecodeKernels.applyEnvironment("AVX9")
        } catch {
            #expect(error.description.contains("LOWRANK_DECODE_KERNELS=AVX9") && error.description.contains("portable"))
        }
        // Above the CPU's tier (an AVX-512 CPU has none above it): refused, the tier unchanged.
        for level in DecodeKernels.Level.allCases where level > DecodeKernels.cpuLevel {
            #expect(throws: DecodeKernels.ChoiceError.self) { try DecodeKernels.applyEnvironment(level.description) }
            #expect(DecodeKernels.level == DecodeKernels.cpuLevel)
        }
        #expect(DecodeKernels.Level(name: "AVX2") == .avx2)
    }
}
