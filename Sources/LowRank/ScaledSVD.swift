import LinearAlgebra

/// A rank-r factorisation W ≈ left · right, `left` `[m × r]`, `right` `[r × n]`.
public struct Factorization: Sendable {
    /// U_r·Σ_r^½ `[m × r]`.
    public var left: Matrix<Double>
    /// Σ_r^½·V_rᵀ·(scaling)⁻¹ `[r × n]`.
    public var right: Matrix<Double>
    /// Every singular value of the scaled weight, descending.
    public var singularValues: [Double]
    public var rank: Int { left.columns }

    /// ‖tail‖/‖all‖ of the scaled weight's singular values: the relative Frobenius error of the
    /// truncated scaled weight (for SVD-LLM, of the layer's output on the calibration data).
    public var relativeTruncationError: Double { Self.relativeTruncationError(singularValues, rank: rank) }

    /// ‖σ_{rank...}‖/‖σ‖ for descending singular values `sigma`.
    public static func relativeTruncationError(_ sigma: [Double], rank: Int) -> Double {
        let total = sigma.reduce(0) { $0 + $1 * $1 }
        let tail = sigma.dropFirst(rank).reduce(0) { $0 + $1 * $1 }
        return total > 0 ? (tail / total).squareRoot() : 0
    }

    /// Float64 product left·right `[m × n]`.
    public var product: Matrix<Double> { Decompositions.multiply(left, right) }
}

/// One factoriser for plain SVD, ASVD and SVD-LLM: SVD of the scaled weight W·S, truncation to
/// rank r, √Σ folded into both factors (so every rank prefix is itself a valid approximation),
/// then the scaling undone on the right factor.
public enum ScaledSVD {
    public static func factorize(_ w: Matrix<Double>, rank: Int, scaling: InputScaling) throws -> Factorization {
        precondition(rank >= 1 && rank <= min(w.rows, w.columns), "rank \(rank) is outside 1...\(min(w.rows, w.columns))")
        let n = w.columns
        let scaled: Matrix<Double>
        switch scaling {
        case .identity:
            scaled = w
        case .diagonal(let s):
            precondition(s.count == n)
            var m = w
            for i in 0..<w.rows { for j in 0..<n { m[i, j] *= s[j] } }
            scaled = m
        case .cholesky(let s):
            precondition(s.rows == n && s.columns == n)
            scaled = Decompositions.multiply(w, s)
        case .eigen(let u, let roots):
            precondition(u.rows == n && u.columns == n && roots.count == n)
            var m = Decompositions.multiply(w, u)
            for i in 0..<w.rows { for j in 0..<n { m[i, j] *= roots[j] } }
            scaled = m
        }
        let (u, sigma, vt) = try Decompositions.svd(scaled)
        var left = Matrix<Double>.zeros(rows: w.rows, columns: rank)
        var right = Matrix<Double>.zeros(rows: rank, columns: n)
        for k in 0..<rank {
            let root = sigma[k].squareRoot()
            for i in 0..<w.rows { left[i, k] = u[i, k] * root }
            for j in 0..<n { right[k, j] = vt[k, j] * root }
        }
        switch scaling {
        case .identity:
            break
        case .diagonal(let s):
            for k in 0..<rank { for j in 0..<n { right[k, j] /= s[j] } }
        case .cholesky(let s):
            right = Decompositions.solveRightLowerTriangular(right, s)
        case .eigen(let u, let roots):
            for k in 0..<rank { for j in 0..<n { right[k, j] /= roots[j] } }
            right = Decompositions.multiply(right, u, transposeB: true)
        }
        return Factorization(left: left, right: right, singularValues: sigma)
    }
}

/// Effective rank, two forms (fixture README): Roy–Vetterli, exp of the entropy of σ_i / Σσ; and
/// D-Rank's energy form, exp of the entropy of σ_i² / Σσ².
public enum EffectiveRank {
    public static func royVetterli(_ sigma: [Double]) -> Double { entropyExp(sigma) }
    public static func energy(_ sigma: [Double]) -> Double { entropyExp(sigma.map { $0 * $0 }) }

    static func entropyExp(_ weights: [Double]) -> Double {
        let total = weights.reduce(0, +)
        guard total > 0 else { return 0 }
        let entropy = weights.reduce(0.0) { acc, w in
            let p = w / total
            return p > 0 ? acc - p * Foundation_log(p) : acc
        }
        return Foundation_exp(entropy)
    }
}

/// SVD-LLM's uniform rank: r = ⌊keep·m·n/(m+n)⌋ for the kept fraction (`--remove ρ` → keep = 1 − ρ).
public func uniformRank(outputs m: Int, inputs n: Int, keptFraction keep: Double) -> Int {
    Int((keep * Double(m) * Double(n) / Double(m + n)).rounded(.down))
}
