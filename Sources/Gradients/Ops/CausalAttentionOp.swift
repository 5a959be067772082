import LinearAlgebra

/// Causal grouped-query attention over one sequence, `out[T × H·d]` from `q[T × H·d]` and
/// `k, v[T × G·d]` (G key/value heads; query head h reads head h/(H/G), Hugging Face `repeat_kv`):
/// `P = softmax(q_h·k_gᵀ/√d)` with keys after the query masked, `out_h = P·v_g`.
///
/// Backward (per query head, P recomputed from q and k rather than kept: at 2048 tokens the
/// probabilities of 30 layers would take 4.5 GB):
/// `dP = dout_h·v_gᵀ`, `dS_ij = P_ij·(dP_ij − Σ_k P_ik·dP_ik)`, `dq_h = dS·k_g/√d`,
/// `dk_g += dSᵀ·q_h/√d`, `dv_g += Pᵀ·dout_h`.
public enum CausalAttentionOp {
    /// Per-worker scratch the forward and backward need, in floats.
    public static func scratchCount(rows t: Int) -> Int { 2 * t * t }

    public static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, rows t: Int, heads: Int,
                               keyValueHeads: Int, headSize d: Int, into out: UnsafeMutablePointer<Float>,
                               scratch: [UnsafeMutablePointer<Float>]) {
        let qw = heads * d, kvw = keyValueHeads * d, group = heads / keyValueHeads
        let workers = min(scratch.count, heads)
        let box = UncheckedSendableBox((q, k, v, out, scratch))  // each worker owns its heads and scratch
        Parallel.forEach(workers) { worker in
            let (q, k, v, out, scratch) = box.value
            var head = worker
            while head < heads {
                let g = head / group
                let p = scratch[worker]
                probabilities(q: q + head * d, k: k + g * d, ldq: qw, ldk: kvw, rows: t, headSize: d, into: p)
                BLAS.gemmNN(m: t, n: d, k: t, a: p, lda: t, b: v + g * d, ldb: kvw, c: out + head * d, ldc: qw)
                head += workers
            }
        }
    }

    /// Writes `dq [T × H·d]`, `dk` and `dv [T × G·d]` (overwritten, not accumulated).
    /// `headScratch` holds `2·H·T·d` floats: each query head's share of dk and dv before the group sum.
    public static func backward(_ dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                rows t: Int, heads: Int, keyValueHeads: Int, headSize d: Int,
                                dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                scratch: [UnsafeMutablePointer<Float>], headScratch: UnsafeMutablePointer<Float>) {
        let qw = heads * d, kvw = keyValueHeads * d, group = heads / keyValueHeads
        let scale = 1 / Float(d).squareRoot()
        let workers = min(scratch.count, heads)
        let box = UncheckedSendableBox((dout, q, k, v, dq, scratch, headScratch))  // per head: own dq columns and partials
        Parallel.forEach(workers) { worker in
            let (dout, q, k, v, dq, scratch, headScratch) = box.value
            var head = worker
            while head < heads {
                let g = head / group
                let p = scratch[worker], dp = scratch[worker] + t * t
                probabilities(q: q + head * d, k: k + g * d, ldq: qw, ldk: kvw, rows: t, headSize: d, into: p)
                BLAS.gemmNT(m: t, n: t, k: d, a: dout + head * d, lda: qw, b: v + g * d, ldb: kvw, c: dp, ldc: t)
                for i in 0..<t {
                    let pi = p + i * t, dpi = dp + i * t
                    var dot: Float = 0
                    for j in 0...i { dot += pi[j] * dpi[j] }
                    for j in 0...i { dpi[j] = pi[j] * (dpi[j] - dot) }
                    if i + 1 < t { (dpi + i + 1).update(repeating: 0, count: t - i - 1) }
                }
                let dkHead = headScratch + head * t * d, dvHead = headScratch + (heads + head) * t * d  // [T × d] each
                BLAS.gemmNN(m: t, n: d, k: t, alpha: scale, a: dp, lda: t, b: k + g * d, ldb: kvw, c: dq + head * d, ldc: qw)
                BLAS.gemmTN(m: t, n: d, k: t, alpha: scale, a: dp, lda: t, b: q + head * d, ldb: qw, c: dkHead, ldc: d)
                BLAS.gemmTN(m: t, n: d, k: t, a: p, lda: t, b: dout + head * d, ldb: qw, c: dvHead, ldc: d)
                head += workers
            }
        }
        for r in 0..<t {
            for g in 0..<keyValueHeads {
                let dkRow = dk + r * kvw + g * d, dvRow = dv + r * kvw + g * d
                dkRow.update(repeating: 0, count: d)
                dvRow.update(repeating: 0, count: d)
                for head in (g * group)..<((g + 1) * group) {
                    let dkHead = headScratch + head * t * d + r * d, dvHead = headScratch + (heads + head) * t * d + r * d
                    for j in 0..<d {
                        dkRow[j] += dkHead[j]
                        dvRow[j] += dvHead[j]
                    }
                }
            }
        }
    }

    /// `P [T × T]`: causal softmax of `q·kᵀ/√d`, zeros above the diagonal.
    private static func probabilities(q: UnsafePointer<Float>, k: UnsafePointer<Float>, ldq: Int, ldk: Int, rows t: Int, headSize d: Int,
                                      into p: UnsafeMutablePointer<Float>) {
        BLAS.gemmNT(m: t, n: t, k: d, alpha: 1 / Float(d).squareRoot(), a: q, lda: ldq, b: k, ldb: ldk, c: p, ldc: t)
        for i in 0..<t {
            VectorMath.softmax(p + i * t, count: i + 1)
            if i + 1 < t { (p + i * t + i + 1).update(repeating: 0, count: t - i - 1) }
        }
    }

    /// Plain-loop twin in Double, for tests.
    public enum Reference {
        public static func forward(q: [Double], k: [Double], v: [Double], rows t: Int, heads: Int, keyValueHeads: Int, headSize d: Int)
            -> [Double] {
            let qw = heads * d, kvw = keyValueHeads * d, group = heads / keyValueHeads
            var out = [Double](repeating: 0, count: t * qw)
            for h in 0..<heads {
                let g = h / group
                for i in 0..<t {
                    let p = probabilities(q: q, k: k, head: h, kvHead: g, row: i, qw: qw, kvw: kvw, headSize: d)
                    for j in 0...i { for c in 0..<d { out[i * qw + h * d + c] += p[j] * v[j * kvw + g * d + c] } }
                }
            }
            return out
        }

        /// (dq, dk, dv).
        public static func backward(_ dout: [Double], q: [Double], k: [Double], v: [Double], rows t: Int, heads: Int, keyValueHeads: Int,
                                    headSize d: Int) -> (q: [Double], k: [Double], v: [Double]) {
            let qw = heads * d, kvw = keyValueHeads * d, group = heads / keyValueHeads
            let scale = 1 / Double(d).squareRoot()
            var dq = [Double](repeating: 0, count: t * qw), dk = [Double](repeating: 0, count: t * kvw), dv = dk
            for h in 0..<heads {
                let g = h / group
                for i in 0..<t {
                    let p = probabilities(q: q, k: k, head: h, kvHead: g, row: i, qw: qw, kvw: kvw, headSize: d)
                    var dp = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        for c in 0..<d {
                            dp[j] += dout[i * qw + h * d + c] * v[j * kvw + g * d + c]
                            dv[j * kvw + g * d + c] += p[j] * dout[i * qw + h * d + c]
                        }
                    }
                    var dot = 0.0
                    for j in 0...i { dot += p[j] * dp[j] }
                    for j in 0...i {
                        let ds = p[j] * (dp[j] - dot) * scale
                        for c in 0..<d {
                            dq[i * qw + h * d + c] += ds * k[j * kvw + g * d + c]
                            dk[j * kvw + g * d + c] += ds * q[i * qw + h * d + c]
                        }
                    }
                }
            }
            return (dq, dk, dv)
        }

        private static func probabilities(q: [Double], k: [Double], head h: Int, kvHead g: Int, row i: Int, qw: Int, kvw: Int,
                                          headSize d: Int) -> [Double] {
            var s = [Double](repeating: 0, count: i + 1)
            for j in 0...i {
                for c in 0..<d { s[j] += q[i * qw + h * d + c] * k[j * kvw + g * d + c] }
                s[j] /= Double(d).squareRoot()
            }
            let m = s.max()!
            let e = s.map { Foundation_exp($0 - m) }
            let total = e.reduce(0, +)
            return e.map { $0 / total }
        }
    }
}
