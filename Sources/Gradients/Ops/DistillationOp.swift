import LinearAlgebra

/// Knowledge distillation on logit rows, for healing a compressed model toward the dense model it
/// came from: row t's loss is `KL(p_t ‖ q_t) = Σ_i p_i (log p_i − log q_i)` with `p = softmax(teacher
/// row)` and `q = softmax(z_t)`, and its gradient `dz_t = scale·(q − p)` (scale = 1/N for a mean over
/// N rows). The teacher's distribution is the target, not the corpus's next token, so healing can
/// only pull the student back toward the dense model; it does not learn the corpus (a dense model
/// healed toward itself has zero loss and zero gradient).
public enum DistillationOp {
    /// Replaces the student logits `z [rows × vocabulary]` by their gradient and the teacher logits
    /// by the teacher's probabilities, in place; returns Σ of the rows' KL divergences (Double).
    public static func lossAndGradient(_ z: UnsafeMutablePointer<Float>, teacher: UnsafeMutablePointer<Float>, rows: Int, vocabulary: Int,
                                       scale: Float) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let q = z + r * vocabulary, p = teacher + r * vocabulary
            let studentLSE = VectorMath.logSumExp(q, count: vocabulary)
            let teacherLSE = VectorMath.logSumExp(p, count: vocabulary)
            // KL = Σ p (log p − log q), read before either row is overwritten; p is stored in place.
            var kl = 0.0
            for i in 0..<vocabulary {
                let logP = Double(p[i]) - teacherLSE
                let probability = Foundation_expf(Float(logP))
                kl += Double(probability) * (logP - (Double(q[i]) - studentLSE))
                p[i] = probability
            }
            total += kl
            _ = VectorMath.exponentiate(q, count: vocabulary, shift: Float(studentLSE))  // q = e^(z − lse)
            for i in 0..<vocabulary { q[i] = scale * (q[i] - p[i]) }
        }
        return total
    }

    /// Plain-loop twin in Double, for tests: (Σ KL, dz).
    public enum Reference {
        public static func lossAndGradient(_ z: [Double], teacher: [Double], rows: Int, vocabulary: Int, scale: Double) -> (Double, [Double]) {
            var dz = [Double](repeating: 0, count: z.count)
            var total = 0.0
            func logSoftmax(_ row: ArraySlice<Double>) -> [Double] {
                let m = row.max()!
                let lse = Foundation_log(row.reduce(0) { $0 + Foundation_exp($1 - m) }) + m
                return row.map { $0 - lse }
            }
            for r in 0..<rows {
                let range = (r * vocabulary)..<((r + 1) * vocabulary)
                let logQ = logSoftmax(z[range]), logP = logSoftmax(teacher[range])
                for i in 0..<vocabulary {
                    let p = Foundation_exp(logP[i])
                    total += p * (logP[i] - logQ[i])
                    dz[r * vocabulary + i] = scale * (Foundation_exp(logQ[i]) - p)
                }
            }
            return (total, dz)
        }
    }
}
