import LinearAlgebra

/// SVD-LLM's whitening matrix from a calibration Gram matrix.
public enum Whitening {
    public struct Result: Sendable {
        /// Lower-triangular S with S·Sᵀ = G + shift·I.
        public var s: Matrix<Double>
        /// The eigenvalue shift that made G positive definite (0 when none was needed). Reported,
        /// never silent: it goes into the compression report.
        public var shift: Double
    }

    /// S = cholesky(G). If G is not positive definite, G + (−λ_min + ε·trace(G)/n)·I is used, the
    /// reference's fix with a relative ε instead of its absolute 1e-6 (algorithms.md §1.4), and the
    /// shift is returned.
    ///
    /// From n = `exactShiftBelow` on, λ_min is not computed: its eigen-decomposition took most of
    /// a 16.5-minute layer on one core at n = 14336 (Llama-3-8B's down input, singular whenever the
    /// calibration has fewer tokens than that; docs/BENCHMARKS.md), against under a minute for a
    /// Cholesky. The shift is then the first of ε·trace(G)/n·4^k, k = 0, 1, …, that makes G
    /// positive definite: at most 4× the smallest shift of that form, and like the reference's, it
    /// is reported. Our choice for large n (the reference always computes λ_min); SmolLM2's
    /// matrices stay below the threshold, on the exact route.
    public static func cholesky(gram g: Matrix<Double>, relativeEpsilon: Double = 1e-6, exactShiftBelow: Int = 2048) throws -> Result {
        // (Written without a pattern-matching catch: Swift 6.3 crashes compiling one on a typed throw.)
        var failure: DecompositionError?
        do {
            return Result(s: try Decompositions.cholesky(g), shift: 0)
        } catch {
            failure = error
        }
        guard case .notPositiveDefinite? = failure else { throw failure! }
        do {
            let n = g.rows
            let mean = meanDiagonal(g)
            if n >= exactShiftBelow {
                var shift = relativeEpsilon * max(mean, 1e-300)
                for _ in 0..<40 {
                    // One working copy of G at a time (the last attempt's is freed), factorised in
                    // place: G and the copy, the unshifted route's peak. A second copy inside the
                    // factorisation added 1.5 GiB at n = 14336.
                    var shifted = g
                    for i in 0..<n { shifted[i, i] += shift }
                    if (try? Decompositions.choleskyInPlace(&shifted)) != nil { return Result(s: shifted, shift: shift) }
                    shift *= 4
                }
                throw DecompositionError.notPositiveDefinite(order: n)
            }
            let lowest = try Decompositions.symmetricEigen(g).values.first ?? 0
            let shift = max(0, -lowest) + relativeEpsilon * max(mean, 1e-300)
            var shifted = g
            for i in 0..<n { shifted[i, i] += shift }
            try Decompositions.choleskyInPlace(&shifted)
            return Result(s: shifted, shift: shift)
        }
    }
}

extension Whitening {
    /// trace(G)/n: the scale the relative shifts and ridges are measured in.
    static func meanDiagonal(_ g: Matrix<Double>) -> Double {
        (0..<g.rows).reduce(0.0) { $0 + g[$1, $1] } / Double(max(g.rows, 1))
    }

    /// G + α·trace(G)/n·I in place (α = 0 leaves G as it is): the ridge of compensated calibration.
    public static func addRidge(_ alpha: Double, to g: inout Matrix<Double>) {
        guard alpha > 0 else { return }
        let lift = alpha * meanDiagonal(g)
        for i in 0..<g.rows { g[i, i] += lift }
    }
}

extension Whitening {
    public struct EigenResult: Sendable {
        /// Eigenvectors U `[n × n]` (columns) of the Gram matrix.
        public var vectors: Matrix<Double>
        /// √max(λ_i, floor), in the order of `vectors`' columns.
        public var roots: [Double]
        /// How many eigenvalues were raised to the floor (reported, never silent).
        public var clamped: Int
        /// The floor: `relativeFloor · λ_max`.
        public var floor: Double
    }

    /// SVD-LLM V2's eigen whitening: G = U·diag(λ)·Uᵀ, S = U·diag(√λ). The paper clamps tiny
    /// eigenvalues without saying how (algorithms.md §2.2, UNCONFIRMED); our choice is a relative
    /// floor, λ_i ← max(λ_i, 1e-10·λ_max), which leaves a well-conditioned Gram untouched and keeps
    /// 1/√λ finite for a singular one (fewer calibration tokens than channels). The number raised is
    /// reported per projection.
    public static func eigen(gram g: Matrix<Double>, relativeFloor: Double = 1e-10) throws -> EigenResult {
        let (values, vectors) = try Decompositions.symmetricEigen(g)
        let largest = max(values.last ?? 0, 0)
        let floor = max(relativeFloor * largest, Double.leastNormalMagnitude)
        var clamped = 0
        let roots = values.map { value -> Double in
            if value < floor { clamped += 1 }
            return max(value, floor).squareRoot()
        }
        return EigenResult(vectors: vectors, roots: roots, clamped: clamped, floor: floor)
    }
}
