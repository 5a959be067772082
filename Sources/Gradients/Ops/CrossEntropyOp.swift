import LinearAlgebra

/// Next-token cross-entropy on logit rows: row t's loss is `logsumexp(z_t) − z_t[target_t]`, and
/// its gradient `dz_t = scale·(softmax(z_t) − onehot(target_t))` (scale = 1/N for a mean over N
/// predicted tokens). Rows with no target (the last position of a window) get zero gradient.
public enum CrossEntropyOp {
    /// Replaces the logits `z [rows × vocabulary]` by their gradient in place; returns Σ of the
    /// rows' losses (Double: 511 terms of a few nats).
    public static func lossAndGradient(_ z: UnsafeMutablePointer<Float>, rows: Int, vocabulary: Int, targets: ArraySlice<Int?>,
                                       scale: Float) -> Double {
        precondition(targets.count == rows, "one target (or nil) per logit row")
        var total = 0.0
        for (r, target) in targets.enumerated() {
            let row = z + r * vocabulary
            guard let target else {
                row.update(repeating: 0, count: vocabulary)
                continue
            }
            precondition(target >= 0 && target < vocabulary, "target \(target) is outside the vocabulary")
            let lse = VectorMath.logSumExp(row, count: vocabulary)
            total += lse - Double(row[target])
            _ = VectorMath.exponentiate(row, count: vocabulary, shift: Float(lse))  // softmax: e^(z − lse)
            for i in 0..<vocabulary { row[i] *= scale }
            row[target] -= scale
        }
        return total
    }

    /// Plain-loop twin in Double, for tests: (Σ loss, dz).
    public enum Reference {
        public static func lossAndGradient(_ z: [Double], rows: Int, vocabulary: Int, targets: [Int?], scale: Double) -> (Double, [Double]) {
            var dz = [Double](repeating: 0, count: z.count)
            var total = 0.0
            for r in 0..<rows {
                guard let target = targets[r] else { continue }
                let row = Array(z[(r * vocabulary)..<((r + 1) * vocabulary)])
                let m = row.max()!
                let lse = Foundation_log(row.reduce(0) { $0 + Foundation_exp($1 - m) }) + m
                total += lse - row[target]
                for i in 0..<vocabulary { dz[r * vocabulary + i] = scale * Foundation_exp(row[i] - lse) }
                dz[r * vocabulary + target] -= scale
            }
            return (total, dz)
        }
    }
}
