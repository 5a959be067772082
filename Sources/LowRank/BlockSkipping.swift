import LinearAlgebra
import Llama

/// SkipCat's block skipping (`../shared/research/algorithms.md` §7): an exact rewrite of a
/// factorisation `B·A` (`B` `[m × r]`, `A` `[r × n]`, r < n) that drops an r × r identity block.
/// With `A₁` the r columns of `A` chosen by QR with column pivoting and `A₂` the rest,
/// `B·A·x = B·A₁·(x_sel + A₁⁻¹A₂·x_rest) = B′(x_sel + A′·x_rest)`, `B′ = B·A₁`, `A′ = A₁⁻¹A₂`
/// (a solve, never an explicit inverse). Parameters r·(m + n − r) instead of r·(m + n).
public enum BlockSkipping {
    /// Which r input channels pass through.
    public enum Selection: String, Sendable, Codable, CaseIterable {
        /// The first r columns of QR with column pivoting (the best-conditioned A₁, greedily).
        case pivoted
        /// Columns 0..<r (the reported baseline: A′ can blow up, the known fp16 failure).
        case leading
    }

    public struct Result: Sendable {
        public var left: Matrix<Float>  // B′ [m × r]
        public var right: SkippedRightFactor
        /// max |A′|: above 65504 the remainder overflows F16 storage.
        public var maxAbsRemainder: Double
    }

    /// max |A₁⁻¹A₂| for `right` `[r × n]` with `selection`, without rewriting anything (what the
    /// report compares the selections by).
    public static func maxAbsRemainder(right: Matrix<Float>, selection: Selection) throws -> Double {
        let r = right.rows, n = right.columns
        let a = Matrix(rows: r, columns: n, storage: right.storage.map(Double.init))
        let order: [Int] = switch selection {
        case .pivoted: try Decompositions.pivotedQRColumnOrder(a)
        case .leading: Array(0..<n)
        }
        var a1 = Matrix<Double>.zeros(rows: r, columns: r), a2 = Matrix<Double>.zeros(rows: r, columns: n - r)
        for i in 0..<r {
            for j in 0..<r { a1[i, j] = a[i, order[j]] }
            for j in r..<n { a2[i, j - r] = a[i, order[j]] }
        }
        return try Decompositions.solve(a1, a2).storage.reduce(0) { max($0, abs($1)) }
    }

    /// Rewrites `left · right` (Float64 arithmetic, Float32 results).
    public static func skip(left: Matrix<Float>, right: Matrix<Float>, selection: Selection = .pivoted) throws -> Result {
        let r = right.rows, n = right.columns, m = left.rows
        precondition(left.columns == r && r < n, "skipping needs left [m × r], right [r × n] with r < n")
        let a = Matrix(rows: r, columns: n, storage: right.storage.map(Double.init))
        let order: [Int] = switch selection {
        case .pivoted: try Decompositions.pivotedQRColumnOrder(a)
        case .leading: Array(0..<n)
        }
        let selected = Array(order.prefix(r))
        let chosen = Set(selected)
        let rest = (0..<n).filter { !chosen.contains($0) }
        var a1 = Matrix<Double>.zeros(rows: r, columns: r), a2 = Matrix<Double>.zeros(rows: r, columns: n - r)
        for i in 0..<r {
            for (j, c) in selected.enumerated() { a1[i, j] = a[i, c] }
            for (j, c) in rest.enumerated() { a2[i, j] = a[i, c] }
        }
        let remainder = try Decompositions.solve(a1, a2)  // A′ = A₁⁻¹A₂ [r × (n − r)]
        let b = Matrix(rows: m, columns: r, storage: left.storage.map(Double.init))
        let newLeft = Decompositions.multiply(b, a1)  // B′ = B·A₁ [m × r]
        let maxAbs = remainder.storage.reduce(0) { max($0, abs($1)) }
        return Result(left: Matrix(rows: m, columns: r, storage: newLeft.storage.map(Float.init)),
                      right: SkippedRightFactor(inputs: n, selected: selected,
                                                remainder: WeightMatrix(Matrix(rows: r, columns: n - r, storage: remainder.storage.map(Float.init)))),
                      maxAbsRemainder: maxAbs)
    }
}
