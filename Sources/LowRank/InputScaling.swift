import LinearAlgebra

/// How a weight's inputs are scaled before the SVD and unscaled after (DESIGN §3.3): the only
/// difference between plain SVD, ASVD and SVD-LLM.
public enum InputScaling: Sendable {
    /// Plain truncated SVD of W.
    case identity
    /// ASVD: W·diag(s), s_j = (mean_t |x_j|)^α (algorithms.md §3.1).
    case diagonal([Double])
    /// SVD-LLM: W·S with S lower-triangular, S·Sᵀ = XᵀX (algorithms.md §1.4).
    case cholesky(Matrix<Double>)
    /// SVD-LLM V2's symmetric route: W·U·diag(√λ) with XᵀX = U·diag(λ)·Uᵀ, undone by
    /// diag(1/√λ)·Uᵀ (algorithms.md §2.2). `vectors` U `[n × n]` (columns), `roots` √λ (clamped).
    case eigen(vectors: Matrix<Double>, roots: [Double])

    public var name: String {
        switch self {
        case .identity: "identity"
        case .diagonal: "diagonal"
        case .cholesky: "cholesky"
        case .eigen: "eigen"
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
