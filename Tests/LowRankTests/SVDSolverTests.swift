import Foundation
import Testing
import LinearAlgebra
import LowRank
import TestSupport

/// The Gram route (`SVDSolver.gram`: eigen-decomposition of AᵀA or AAᵀ) gives the factorisation
/// `dgesdd` gives, tall and wide, with every scaling: the same singular values and the same
/// truncated product, to a tolerance set by its squared condition number.
@Suite("SVD solvers")
struct SVDSolverTests {
    /// A `[m × n]` with singular values spread over 1 … 1e-3 (a whitened weight is better behaved
    /// than that) and a random lower-triangular whitening.
    static func problem(_ m: Int, _ n: Int, seed: UInt64) -> (Matrix<Double>, Matrix<Double>) {
        var g = SeededGenerator(seed: seed)
        func gaussian(_ rows: Int, _ columns: Int) -> Matrix<Double> {
            Matrix(rows: rows, columns: columns, storage: (0..<rows * columns).map { _ in Double.random(in: -1...1, using: &g) })
        }
        let k = min(m, n)
        var left = gaussian(m, k)
        for i in 0..<m { for j in 0..<k { left[i, j] *= Foundation.pow(1e-3, Double(j) / Double(k - 1)) } }
        let a = Decompositions.multiply(left, gaussian(k, n))
        var s = gaussian(n, n)
        for i in 0..<n { for j in 0..<n { s[i, j] = j > i ? 0 : (j == i ? 1 + abs(s[i, j]) : 0.1 * s[i, j]) } }
        return (a, s)
    }

    @Test(arguments: [(60, 24), (24, 60), (40, 40)])
    func theGramRouteGivesTheFactorisationOfGESDD(m: Int, n: Int) throws {
        let (a, s) = Self.problem(m, n, seed: UInt64(m * 100 + n))
        let rank = min(m, n) * 2 / 3
        for scaling in [InputScaling.identity, .cholesky(s), .diagonal((0..<n).map { 0.5 + Double($0 % 5) })] {
            let reference = try ScaledSVD.factorize(a, rank: rank, scaling: scaling, solver: .gesdd)
            let gram = try ScaledSVD.factorize(a, rank: rank, scaling: scaling, solver: .gram)
            let largest = reference.singularValues[0]
            // The Gram route's error in σ_i is about ε·σ₁²/σ_i (eigenvalues carry ε·σ₁² absolute
            // error): up to about 1e-11·σ₁ here, where σ_min ≈ 1e-3·σ₁.
            for (x, y) in zip(gram.singularValues, reference.singularValues) { #expect(abs(x - y) <= 1e-10 * largest) }
            let p = gram.product.storage, q = reference.product.storage
            let difference = zip(p, q).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            let norm = q.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(difference <= 1e-9 * norm, "\(m)×\(n) \(scaling): relative difference \(difference / norm)")
        }
    }

    @Test func autoUsesTheGramRouteFromTheThresholdOn() {
        #expect(SVDSolver.auto.resolved(rows: 14336, columns: 4096) == .gram)
        #expect(SVDSolver.auto.resolved(rows: 1536, columns: 576) == .gesdd)
        #expect(SVDSolver.gesdd.resolved(rows: 14336, columns: 4096) == .gesdd)
        #expect(SVDSolver.gram.resolved(rows: 30, columns: 20) == .gram)
    }
}
