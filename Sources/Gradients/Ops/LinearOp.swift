import LinearAlgebra

/// A bias-free linear layer `y[T × out] = x[T × in] · W[out × in]ᵀ` and its backward:
/// `dx[T × in] = dy · W` and `dW[out × in] = dyᵀ · x`. Each product is split over the workers by
/// disjoint output blocks (BLAS runs single-threaded, see `BLASRuntime`).
public enum LinearOp {
    public static func forward(_ x: UnsafePointer<Float>, rows t: Int, weight w: UnsafePointer<Float>, outputs: Int, inputs: Int,
                               into y: UnsafeMutablePointer<Float>) {
        let parts = Parallel.partCount(outputs, minimum: 64)
        let box = UncheckedSendableBox((x, w, y))  // disjoint column blocks of y
        Parallel.forEach(parts) { p in
            let (x, w, y) = box.value
            let block = Parallel.part(p, of: parts, count: outputs)
            BLAS.gemmNT(m: t, n: block.count, k: inputs, a: x, lda: inputs, b: w + block.lowerBound * inputs, ldb: inputs,
                        c: y + block.lowerBound, ldc: outputs)
        }
    }

    /// `dx [T × in] += dy · W` (when `dx` is given) and `dW [out × in] = dyᵀ · x` (when given).
    public static func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows t: Int, weight w: UnsafePointer<Float>,
                                outputs: Int, inputs: Int, accumulatingInto dx: UnsafeMutablePointer<Float>?,
                                weightGradient dw: UnsafeMutablePointer<Float>?) {
        if let dx {
            let parts = Parallel.partCount(inputs, minimum: 64)
            let box = UncheckedSendableBox((dy, w, dx))  // disjoint column blocks of dx
            Parallel.forEach(parts) { p in
                let (dy, w, dx) = box.value
                let block = Parallel.part(p, of: parts, count: inputs)
                BLAS.gemmNN(m: t, n: block.count, k: outputs, a: dy, lda: outputs, b: w + block.lowerBound, ldb: inputs,
                            beta: 1, c: dx + block.lowerBound, ldc: inputs)
            }
        }
        if let dw {
            let parts = Parallel.partCount(outputs, minimum: 64)
            let box = UncheckedSendableBox((dy, x, dw))  // disjoint row blocks of dW
            Parallel.forEach(parts) { p in
                let (dy, x, dw) = box.value
                let block = Parallel.part(p, of: parts, count: outputs)
                BLAS.gemmTN(m: block.count, n: inputs, k: t, a: dy + block.lowerBound, lda: outputs, b: x, ldb: inputs,
                            c: dw + block.lowerBound * inputs, ldc: inputs)
            }
        }
    }

    /// Plain-loop twin in Double, for tests.
    public enum Reference {
        public static func forward(_ x: [Double], rows t: Int, weight w: [Double], outputs: Int, inputs: Int) -> [Double] {
            var y = [Double](repeating: 0, count: t * outputs)
            for r in 0..<t { for o in 0..<outputs { for i in 0..<inputs { y[r * outputs + o] += x[r * inputs + i] * w[o * inputs + i] } } }
            return y
        }

        /// (dx, dW).
        public static func backward(_ dy: [Double], x: [Double], rows t: Int, weight w: [Double], outputs: Int, inputs: Int)
            -> (input: [Double], weight: [Double]) {
            var dx = [Double](repeating: 0, count: t * inputs)
            var dw = [Double](repeating: 0, count: outputs * inputs)
            for r in 0..<t {
                for o in 0..<outputs {
                    let g = dy[r * outputs + o]
                    for i in 0..<inputs {
                        dx[r * inputs + i] += g * w[o * inputs + i]
                        dw[o * inputs + i] += g * x[r * inputs + i]
                    }
                }
            }
            return (dx, dw)
        }
    }
}
