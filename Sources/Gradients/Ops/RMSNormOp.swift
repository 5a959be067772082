import LinearAlgebra

/// Llama RMSNorm, `y[T × C] = w ⊙ x_t · r_t` with `r_t = 1/√(mean(x_t²) + ε)`, and its backward
/// for the input (the norm weights are frozen: FLRC differentiates the projections only).
/// Backward, with g = w ⊙ dy: `dx_t = r_t·g − (r_t³/C)·(g·x_t)·x_t`.
public enum RMSNormOp {
    /// Writes `y [rows × width]` and the per-row `r [rows]` the backward reads. Computes r exactly
    /// as inference does (`VectorMath.rmsNorm`), so the two forwards agree bit for bit.
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, epsilon: Float, rows: Int, width: Int,
                               into y: UnsafeMutablePointer<Float>, inverseRMS r: UnsafeMutablePointer<Float>) {
        for t in 0..<rows {
            let row = x + t * width
            r[t] = 1 / (VectorMath.sumOfSquares(row, count: width) / Float(width) + epsilon).squareRoot()
            VectorMath.rmsNorm(row, weight: weight, epsilon: epsilon, count: width, into: y + t * width)
        }
    }

    /// `dx [rows × width] += ∂L/∂x` given `dy = ∂L/∂y`.
    public static func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                inverseRMS r: UnsafePointer<Float>, rows: Int, width: Int, accumulatingInto dx: UnsafeMutablePointer<Float>) {
        for t in 0..<rows {
            let g = dy + t * width, xt = x + t * width, out = dx + t * width
            var dot: Float = 0
            for j in 0..<width { dot += weight[j] * g[j] * xt[j] }
            let rt = r[t]
            let k = rt * rt * rt * dot / Float(width)
            for j in 0..<width { out[j] += rt * weight[j] * g[j] - k * xt[j] }
        }
    }

    /// Plain-loop twin in Double, for tests.
    public enum Reference {
        public static func forward(_ x: [Double], weight: [Double], epsilon: Double, rows: Int, width: Int) -> [Double] {
            var y = x
            for t in 0..<rows {
                var sum = 0.0
                for j in 0..<width { sum += x[t * width + j] * x[t * width + j] }
                let r = 1 / (sum / Double(width) + epsilon).squareRoot()
                for j in 0..<width { y[t * width + j] = weight[j] * x[t * width + j] * r }
            }
            return y
        }

        public static func backward(_ dy: [Double], x: [Double], weight: [Double], epsilon: Double, rows: Int, width: Int) -> [Double] {
            var dx = x
            for t in 0..<rows {
                var sum = 0.0, dot = 0.0
                for j in 0..<width {
                    sum += x[t * width + j] * x[t * width + j]
                    dot += weight[j] * dy[t * width + j] * x[t * width + j]
                }
                let r = 1 / (sum / Double(width) + epsilon).squareRoot()
                for j in 0..<width {
                    dx[t * width + j] = r * weight[j] * dy[t * width + j] - r * r * r * dot / Double(width) * x[t * width + j]
                }
            }
            return dx
        }
    }
}
