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
    public static func factorize(_ w: Matrix<Double>, rank: Int, scaling: InputScaling, solver: SVDSolver = .gesdd) throws -> Factorization {
        precondition(rank >= 1 && rank <= min(w.rows, w.columns), "rank \(rank) is outside 1...\(min(w.rows, w.columns))")
        let (left, right, sigma) = try truncatedSVD(scaled(w, by: scaling), rank: rank, solver: solver)
        return Factorization(left: left, right: unscaled(right, by: scaling), singularValues: sigma)
    }

    /// The truncated SVD of `a` by the chosen route.
    static func truncatedSVD(_ a: Matrix<Double>, rank: Int, solver: SVDSolver) throws -> (Matrix<Double>, Matrix<Double>, [Double]) {
        solver.resolved(rows: a.rows, columns: a.columns) == .gram ? try viaGram(a, rank: rank) : try viaGESDD(a, rank: rank)
    }

    /// W·S, the weight the SVD truncates.
    static func scaled(_ w: Matrix<Double>, by scaling: InputScaling) -> Matrix<Double> {
        let n = w.columns
        switch scaling {
        case .identity:
            return w
        case .diagonal(let s):
            precondition(s.count == n)
            var m = w
            for i in 0..<w.rows { for j in 0..<n { m[i, j] *= s[j] } }
            return m
        case .cholesky(let s):
            precondition(s.rows == n && s.columns == n)
            return Decompositions.multiply(w, s)
        case .eigen(let u, let roots):
            precondition(u.rows == n && u.columns == n && roots.count == n)
            var m = Decompositions.multiply(w, u)
            for i in 0..<w.rows { for j in 0..<n { m[i, j] *= roots[j] } }
            return m
        case .compensated(_, let map):
            precondition(map.rows == n && map.columns == n)
            return Decompositions.multiply(w, map)
        }
    }

    /// right·S⁻¹ `[r × n]`: the scaling undone on a right factor.
    static func unscaled(_ right: Matrix<Double>, by scaling: InputScaling) -> Matrix<Double> {
        var right = right
        let n = right.columns
        switch scaling {
        case .identity:
            break
        case .diagonal(let s):
            for k in 0..<right.rows { for j in 0..<n { right[k, j] /= s[j] } }
        case .cholesky(let s):
            right = Decompositions.solveRightLowerTriangular(right, s)
        case .eigen(let u, let roots):
            for k in 0..<right.rows { for j in 0..<n { right[k, j] /= roots[j] } }
            right = Decompositions.multiply(right, u, transposeB: true)
        case .compensated(let whitening, _):
            right = unscaled(right, by: whitening)
        }
        return right
    }

    /// U_r·Σ_r^½ `[m × r]`, Σ_r^½·V_rᵀ `[r × n]` and every singular value of A, by `dgesdd`.
    static func viaGESDD(_ a: Matrix<Double>, rank: Int) throws -> (Matrix<Double>, Matrix<Double>, [Double]) {
        let (u, sigma, vt) = try Decompositions.svd(a)
        var left = Matrix<Double>.zeros(rows: a.rows, columns: rank)
        var right = Matrix<Double>.zeros(rows: rank, columns: a.columns)
        for k in 0..<rank {
            let root = sigma[k].squareRoot()
            for i in 0..<a.rows { left[i, k] = u[i, k] * root }
            for j in 0..<a.columns { right[k, j] = vt[k, j] * root }
        }
        return (left, right, sigma)
    }

    /// The same by the Gram route: for m ≥ n, AᵀA = V·Σ²·Vᵀ (`dsyevd`), right = Σ_r^½·V_rᵀ and
    /// left = A·V_r·Σ_r^-½ (= U_r·Σ_r^½); for m < n the mirror image from AAᵀ = U·Σ²·Uᵀ. A singular
    /// value whose square is below 1e-15·σ₁² carries no digits here: its columns are left zero.
    static func viaGram(_ a: Matrix<Double>, rank: Int) throws -> (Matrix<Double>, Matrix<Double>, [Double]) {
        let m = a.rows, n = a.columns, k = min(m, n)
        let tall = m >= n
        let (values, vectors) = try Decompositions.symmetricEigen(Decompositions.gram(a, ofColumns: tall))  // [k × k], ascending
        let sigma = (0..<k).map { max(0, values[k - 1 - $0]).squareRoot() }
        let floor = (sigma.first ?? 0) * (sigma.first ?? 0) * 1e-15
        // The eigenvectors of the r largest eigenvalues, as rows: Q_r `[r × k]`.
        var q = Matrix<Double>.zeros(rows: rank, columns: k)
        for r in 0..<rank { for i in 0..<k { q[r, i] = vectors[i, k - 1 - r] } }
        let root = sigma.prefix(rank).map { $0.squareRoot() }
        let inverse = sigma.prefix(rank).map { $0 * $0 > floor ? 1 / $0.squareRoot() : 0 }
        if tall {
            var right = q  // V_rᵀ
            var left = Decompositions.multiply(a, q, transposeB: true)  // A·V_r [m × r]
            for r in 0..<rank { for j in 0..<n { right[r, j] *= root[r] } }
            for i in 0..<m { for r in 0..<rank { left[i, r] *= inverse[r] } }
            return (left, right, sigma)
        }
        var left = Matrix<Double>.zeros(rows: m, columns: rank)  // U_r·Σ_r^½
        for i in 0..<m { for r in 0..<rank { left[i, r] = q[r, i] * root[r] } }
        var right = Decompositions.multiply(q, a)  // U_rᵀ·A [r × n]
        for r in 0..<rank { for j in 0..<n { right[r, j] *= inverse[r] } }
        return (left, right, sigma)
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
