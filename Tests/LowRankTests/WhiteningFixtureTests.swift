import Foundation
import Testing
import LinearAlgebra
import LowRank
import TestSupport

/// `whitening_svd_fixture.json` (numpy, float64): W [48 × 80], X [256 × 80], rank 16. Errors,
/// singular values and effective ranks must match within 1e-6 relative.
@Suite("Factorisations reproduce the whitening/SVD fixture")
struct WhiteningFixtureTests {
    struct Fixture {
        var w: Matrix<Double>
        var x: Matrix<Double>
        var json: [String: Any]
    }

    static func load() throws -> Fixture {
        let json = try Fixtures.sharedJSON("whitening_svd_fixture.json")
        func matrix(_ key: String) -> Matrix<Double> {
            let rows = json[key] as! [[Double]]
            return Matrix(rows: rows.count, columns: rows[0].count, storage: rows.flatMap { $0 })
        }
        return Fixture(w: matrix("W"), x: matrix("X"), json: json)
    }

    /// ‖(W − W′)·Xᵀ‖_F and ‖W − W′‖_F.
    static func errors(_ f: Fixture, _ approximation: Matrix<Double>) -> (activation: Double, weight: Double) {
        var difference = f.w
        for i in 0..<difference.count { difference.storage[i] -= approximation.storage[i] }
        let xt = Matrix(rows: f.x.columns, columns: f.x.rows, storage: (0..<(f.x.columns * f.x.rows)).map { f.x[$0 % f.x.rows, $0 / f.x.rows] })
        let activation = Decompositions.multiply(difference, xt).storage.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return (activation, difference.storage.reduce(0) { $0 + $1 * $1 }.squareRoot())
    }

    static func gram(_ x: Matrix<Double>) -> Matrix<Double> {
        var g = Matrix<Double>.zeros(rows: x.columns, columns: x.columns)
        for i in 0..<x.columns { for j in 0..<x.columns { g[i, j] = (0..<x.rows).reduce(0) { $0 + x[$1, i] * x[$1, j] } } }
        return g
    }

    func expectClose(_ a: Double, _ b: Double, _ what: String, tolerance: Double = 1e-6) {
        #expect(abs(a - b) <= tolerance * abs(b), "\(what): \(a) vs \(b)")
    }

    @Test func svdLLMWhiteningMatchesTheReference() throws {
        let f = try Self.load()
        let reference = f.json["svdllm_whitening"] as! [String: Any]
        let whitening = try Whitening.cholesky(gram: Self.gram(f.x))
        #expect(whitening.shift == 0)
        for (ours, theirs) in zip((0..<80).map { whitening.s[$0, $0] }, reference["S_diag"] as! [Double]) { expectClose(ours, theirs, "diag(S)") }
        let factors = try ScaledSVD.factorize(f.w, rank: 16, scaling: .cholesky(whitening.s))
        for (ours, theirs) in zip(factors.singularValues, reference["sigma_WS"] as! [Double]) { expectClose(ours, theirs, "σ(WS)", tolerance: 1e-6) }
        let (activation, weight) = Self.errors(f, factors.product)
        expectClose(activation, reference["act_err_fro"] as! Double, "activation error")
        expectClose(weight, reference["weight_err_fro"] as! Double, "weight error")
        // The truncation error equals the dropped singular values of W·S (SVD-LLM's theorem).
        let tail = factors.singularValues.dropFirst(16).reduce(0) { $0 + $1 * $1 }.squareRoot()
        expectClose(tail, reference["act_err_theory_sqrt_sum_tail_sigma2"] as! Double, "theory")
        let fro = { (m: Matrix<Double>) in m.storage.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        expectClose(fro(factors.left), reference["Wu_fro"] as! Double, "‖W_u‖")
        expectClose(fro(factors.right), reference["Wv_fro"] as! Double, "‖W_v‖")
    }

    @Test func plainSVDMatchesTheReference() throws {
        let f = try Self.load()
        let reference = f.json["plain_svd"] as! [String: Any]
        let factors = try ScaledSVD.factorize(f.w, rank: 16, scaling: .identity)
        for (ours, theirs) in zip(factors.singularValues, reference["sigma_W"] as! [Double]) { expectClose(ours, theirs, "σ(W)") }
        let (activation, weight) = Self.errors(f, factors.product)
        expectClose(activation, reference["act_err_fro"] as! Double, "activation error")
        expectClose(weight, reference["weight_err_fro"] as! Double, "weight error")
    }

    @Test func asvdWithAlphaOneHalfMatchesTheReference() throws {
        let f = try Self.load()
        let reference = f.json["asvd_alpha0.5"] as! [String: Any]
        let meanAbsolute = (0..<80).map { j in (0..<256).reduce(0.0) { $0 + abs(f.x[$1, j]) } / 256 }
        let scale = activationScale(meanAbsolute: meanAbsolute, alpha: 0.5)
        for (ours, theirs) in zip(scale, reference["scale_diag"] as! [Double]) { expectClose(ours, theirs, "scale") }
        let factors = try ScaledSVD.factorize(f.w, rank: 16, scaling: .diagonal(scale))
        for (ours, theirs) in zip(factors.singularValues, reference["sigma_WS"] as! [Double]) { expectClose(ours, theirs, "σ(W·diag(s))") }
        let (activation, weight) = Self.errors(f, factors.product)
        expectClose(activation, reference["act_err_fro"] as! Double, "activation error")
        expectClose(weight, reference["weight_err_fro"] as! Double, "weight error")
    }

    @Test func effectiveRanksMatchTheReference() throws {
        let f = try Self.load()
        let sigmaW = try Decompositions.svd(f.w).s
        expectClose(EffectiveRank.royVetterli(sigmaW), f.json["effective_rank_W"] as! Double, "effective rank (σ)")
        expectClose(EffectiveRank.energy(sigmaW), f.json["effective_rank_energy_W"] as! Double, "effective rank (σ²)")
        let whitening = try Whitening.cholesky(gram: Self.gram(f.x))
        let sigmaWS = try Decompositions.svd(Decompositions.multiply(f.w, whitening.s)).s
        expectClose(EffectiveRank.energy(sigmaWS), f.json["effective_rank_energy_whitened_WS"] as! Double, "effective rank of W·S")
    }

    @Test func uniformRanksMatchTheReferenceTable() throws {
        let f = try Self.load()
        let table = f.json["rank_examples"] as! [String: [String: Int]]
        let shapes = ["q_proj/o_proj 576x576": (576, 576), "k_proj/v_proj 192x576": (192, 576), "gate_proj/up_proj 1536x576": (1536, 576),
                      "down_proj 576x1536": (576, 1536), "fixture W 48x80": (48, 80)]
        for (name, (m, n)) in shapes {
            #expect(uniformRank(outputs: m, inputs: n, keptFraction: 0.8) == table[name]!["0.8"], "\(name)")
            #expect(uniformRank(outputs: m, inputs: n, keptFraction: 0.6) == table[name]!["0.6"], "\(name)")
        }
    }
}

@Suite("Factorisation properties")
struct FactorisationPropertyTests {
    @Test func fullRankFactorisationReproducesTheWeight() throws {
        var rng = SeededGenerator(seed: 5)
        let w = Matrix(rows: 6, columns: 9, storage: rng.floats(54, scale: 1).map(Double.init))
        for scaling in [InputScaling.identity, .diagonal((0..<9).map { 0.5 + Double($0) / 4 })] {
            let f = try ScaledSVD.factorize(w, rank: 6, scaling: scaling)
            for (a, b) in zip(f.product.storage, w.storage) { #expect(abs(a - b) < 1e-12, "\(scaling.name)") }
            #expect(f.relativeTruncationError < 1e-12)
        }
    }

    @Test func whiteningWithAnIdentityGramEqualsPlainSVD() throws {
        var rng = SeededGenerator(seed: 6)
        let w = Matrix(rows: 5, columns: 7, storage: rng.floats(35, scale: 1).map(Double.init))
        var identity = Matrix<Double>.zeros(rows: 7, columns: 7)
        for i in 0..<7 { identity[i, i] = 1 }
        let whitened = try ScaledSVD.factorize(w, rank: 3, scaling: .cholesky(try Whitening.cholesky(gram: identity).s))
        let plain = try ScaledSVD.factorize(w, rank: 3, scaling: .identity)
        for (a, b) in zip(whitened.product.storage, plain.product.storage) { #expect(abs(a - b) < 1e-12) }
    }

    @Test func aSingularGramIsShiftedAndTheShiftIsReported() throws {
        // Rank-one Gram of [1, 2, 3]: not positive definite.
        var g = Matrix<Double>.zeros(rows: 3, columns: 3)
        let v = [1.0, 2, 3]
        for i in 0..<3 { for j in 0..<3 { g[i, j] = v[i] * v[j] } }
        let result = try Whitening.cholesky(gram: g)
        #expect(result.shift > 0)
        #expect(result.shift < 1e-4)
        let product = Decompositions.multiply(result.s, Matrix(rows: 3, columns: 3, storage: (0..<9).map { result.s[$0 % 3, $0 / 3] }))
        for i in 0..<3 { for j in 0..<3 { #expect(abs(product[i, j] - g[i, j] - (i == j ? result.shift : 0)) < 1e-9) } }
    }

    /// Large Grams skip the eigen-decomposition: the shift is the first ε·trace/n·4^k that works,
    /// so it lies between the exact route's λ_min-based shift's floor ε·trace/n and 4× what suffices.
    @Test func aLargeSingularGramIsShiftedWithoutAnEigenDecomposition() throws {
        var generator = SeededGenerator(seed: 8)
        let n = 40, tokens = 12  // fewer tokens than channels: rank 12, singular
        let x = (0..<tokens * n).map { _ in Float.random(in: -1...1, using: &generator) }
        var g = Decompositions.gramReference(x, rows: tokens, columns: n)
        Decompositions.symmetrize(&g)
        // Made indefinite (λ_min = −c), so the shift must be at least c: the doubling route's lies in [c, 4·exact).
        let c = 1e-3 * (0..<n).reduce(0.0) { $0 + g[$1, $1] } / Double(n)
        for i in 0..<n { g[i, i] -= c }
        let exact = try Whitening.cholesky(gram: g)
        let doubling = try Whitening.cholesky(gram: g, exactShiftBelow: n)
        #expect(exact.shift > c && doubling.shift >= c && doubling.shift <= 4 * exact.shift, "\(exact.shift) \(doubling.shift)")
        let s = doubling.s
        let product = Decompositions.multiply(s, s, transposeB: true)
        for i in 0..<n { for j in 0..<n { #expect(abs(product[i, j] - g[i, j] - (i == j ? doubling.shift : 0)) < 1e-9 * max(1, abs(g[i, i]))) } }
    }
}
