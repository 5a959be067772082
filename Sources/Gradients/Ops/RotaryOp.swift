import Llama

/// Rotate-half RoPE on `[T × heads·d]` (Hugging Face layout): within each head, the pair
/// (x_i, x_{i+d/2}) at position p is rotated by the angle p·θ_i. A rotation's backward is the
/// rotation by −θ (its transpose), applied to the gradient in place.
public enum RotaryOp {
    public static func forward(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headSize d: Int, firstPosition: Int,
                               table: RotaryTable) {
        precondition(table.half == d / 2, "the rotary table is for head size \(2 * table.half), not \(d)")
        table.rotate(x, rows: rows, heads: heads, firstPosition: firstPosition)  // exactly inference's rotation
    }

    /// `dx = Rᵀ · dy`, in place on the gradient.
    public static func backward(_ dy: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headSize d: Int, firstPosition: Int,
                                table: RotaryTable) {
        precondition(table.half == d / 2, "the rotary table is for head size \(2 * table.half), not \(d)")
        table.rotate(dy, rows: rows, heads: heads, firstPosition: firstPosition, inverse: true)
    }

    /// Plain-loop twin in Double (angles from θ directly), for tests.
    public enum Reference {
        public static func forward(_ x: [Double], rows: Int, heads: Int, headSize d: Int, theta: Double, sign: Double = 1) -> [Double] {
            var y = x
            let half = d / 2
            for r in 0..<rows {
                for head in 0..<heads {
                    for i in 0..<half {
                        let angle = Double(r) / Foundation_pow(theta, Double(2 * i) / Double(d))
                        let c = Foundation_cos(angle), s = sign * Foundation_sin(angle)
                        let at = r * heads * d + head * d + i
                        y[at] = x[at] * c - x[at + half] * s
                        y[at + half] = x[at + half] * c + x[at] * s
                    }
                }
            }
            return y
        }

        public static func backward(_ dy: [Double], rows: Int, heads: Int, headSize d: Int, theta: Double) -> [Double] {
            forward(dy, rows: rows, heads: heads, headSize: d, theta: theta, sign: -1)
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
@inline(__always) func Foundation_cos(_ a: Double) -> Double { Glibc.cos(a) }
@inline(__always) func Foundation_sin(_ a: Double) -> Double { Glibc.sin(a) }
@inline(__always) func Foundation_exp(_ a: Double) -> Double { Glibc.exp(a) }
@inline(__always) func Foundation_log(_ a: Double) -> Double { Glibc.log(a) }
@inline(__always) func Foundation_expf(_ a: Float) -> Float { Glibc.expf(a) }
#endif
