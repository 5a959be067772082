import LinearAlgebra

/// How a weight's inputs are scaled before the SVD and unscaled after (DESIGN §3.3): the only
/// difference between plain SVD, ASVD and SVD-LLM.
public indirect enum InputScaling: Sendable {
    /// Plain truncated SVD of W.
    case identity
    /// ASVD: W·diag(s), s_j = (mean_t |x_j|)^α (algorithms.md §3.1).
    case diagonal([Double])
    /// SVD-LLM: W·S with S lower-triangular, S·Sᵀ = XᵀX (algorithms.md §1.4).
    case cholesky(Matrix<Double>)
    /// SVD-LLM V2's symmetric route: W·U·diag(√λ) with XᵀX = U·diag(λ)·Uᵀ, undone by
    /// diag(1/√λ)·Uᵀ (algorithms.md §2.2). `vectors` U `[n × n]` (columns), `roots` √λ (clamped).
    case eigen(vectors: Matrix<Double>, roots: [Double])
    /// Error compensation (`--calibrate-on compensated`): `whitening` (Cholesky or eigen) of the
    /// compressed prefix's inputs X̂, and `map` = Cᵀ·Ĝ⁻¹·S `[n × n]` with Ĝ = X̂ᵀX̂ = S·Sᵀ and
    /// C = X̂ᵀX the cross-product with the dense model's inputs X of the same tokens. W·map is then
    /// the whitened W* = W·Cᵀ·Ĝ⁻¹, the least-squares fit of the dense outputs X·Wᵀ from X̂, and
    /// ‖X·Wᵀ − X̂·W′ᵀ‖² = ‖X·Wᵀ − X̂·W*ᵀ‖² + ‖(W* − W′)·S‖²: truncating W·map is optimal for that
    /// objective, and `whitening` is undone on the right factor as usual. Build with `compensating`.
    case compensated(whitening: InputScaling, map: Matrix<Double>)

    public var name: String {
        switch self {
        case .identity: "identity"
        case .diagonal: "diagonal"
        case .cholesky: "cholesky"
        case .eigen: "eigen"
        case .compensated(let whitening, _): "compensated \(whitening.name)"
        }
    }
}

extension InputScaling {
    /// Bytes the scaling holds (Float64).
    public var byteCount: Int {
        switch self {
        case .identity: 0
        case .diagonal(let s): s.count * 8
        case .cholesky(let s): s.storage.count * 8
        case .eigen(let vectors, let roots): (vectors.storage.count + roots.count) * 8
        case .compensated(let whitening, let map): whitening.byteCount + map.storage.count * 8
        }
    }

    /// `whitening` (of X̂: `.cholesky` or `.eigen`) compensating toward the dense inputs X, given
    /// `cross` C = X̂ᵀX `[n × n]`: the map Cᵀ·Ĝ⁻¹·S, which is Cᵀ·S⁻ᵀ for Cholesky's S (a
    /// triangular solve) and Cᵀ·U·diag(1/√λ) for the eigen route's S = U·diag(√λ).
    public static func compensating(_ whitening: InputScaling, cross c: Matrix<Double>) -> InputScaling {
        let ct = c.transposed()
        switch whitening {
        case .cholesky(let s):
            precondition(s.rows == c.rows && c.rows == c.columns)
            return .compensated(whitening: whitening, map: Decompositions.solveRightLowerTriangular(ct, s, transposed: true))
        case .eigen(let u, let roots):
            precondition(u.rows == c.rows && roots.count == c.rows)
            var map = Decompositions.multiply(ct, u)
            for i in 0..<map.rows { for j in 0..<map.columns { map[i, j] /= roots[j] } }
            return .compensated(whitening: whitening, map: map)
        case .identity, .diagonal, .compensated:
            preconditionFailure("compensation needs a whitening of the Gram matrix (cholesky or eigen), not \(whitening.name)")
        }
    }
}

/// ASVD's per-channel scale from the mean absolute activation: s_j = mean|x_j|^α, with a floor of
/// 1e-6 before the power (as the reference adds it) so an unused channel cannot divide by zero.
public func activationScale(meanAbsolute: [Double], alpha: Double = 0.5) -> [Double] {
    meanAbsolute.map { Foundation_pow(max($0, 1e-6), alpha) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_pow(_ a: Double, _ b: Double) -> Double { Glibc.pow(a, b) }
@inline(__always) func Foundation_exp(_ a: Double) -> Double { Glibc.exp(a) }
@inline(__always) func Foundation_log(_ a: Double) -> Double { Glibc.log(a) }
#endif
