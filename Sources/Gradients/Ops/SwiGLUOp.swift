import LinearAlgebra

/// The gated MLP activation `a = silu(g) ⊙ u`, silu(g) = g·σ(g), into its own buffer (the
/// backward needs g and u). Backward: `du = da ⊙ silu(g)`, `dg = da ⊙ u ⊙ σ(g)·(1 + g·(1 − σ(g)))`.
public enum SwiGLUOp {
    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int, into a: UnsafeMutablePointer<Float>) {
        a.update(from: gate, count: count)
        VectorMath.siluMultiply(a, up, count: count)  // exactly inference's activation
    }

    /// Writes (does not accumulate) `dgate` and `dup`.
    public static func backward(_ da: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>) {
        for i in 0..<count {
            let g = gate[i]
            let sigma = 1 / (1 + Foundation_expf(-g))
            dup[i] = da[i] * g * sigma
            dgate[i] = da[i] * up[i] * sigma * (1 + g * (1 - sigma))
        }
    }

    /// Plain-loop twin in Double, for tests.
    public enum Reference {
        public static func forward(gate: [Double], up: [Double]) -> [Double] {
            zip(gate, up).map { g, u in g / (1 + Foundation_exp(-g)) * u }
        }

        /// (dgate, dup).
        public static func backward(_ da: [Double], gate: [Double], up: [Double]) -> (gate: [Double], up: [Double]) {
            var dg = da, du = da
            for i in da.indices {
                let s = 1 / (1 + Foundation_exp(-gate[i]))
                du[i] = da[i] * gate[i] * s
                dg[i] = da[i] * up[i] * s * (1 + gate[i] * (1 - s))
            }
            return (dg, du)
        }
    }
}
