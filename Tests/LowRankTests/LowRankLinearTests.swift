import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

@Suite("Low-rank layers in the engine")
struct LowRankLinearTests {
    static let tiny = TinyLlama(seed: 31)
    static let tokens = [4, 90, 17, 200, 33, 61, 8, 150]

    /// Factors of a projection at `rank`, as Float32 matrices.
    static func factors(_ w: Matrix<Float>, rank: Int) throws -> (LowRankLinear, Matrix<Float>) {
        let f = try ScaledSVD.factorize(Matrix(rows: w.rows, columns: w.columns, storage: w.storage.map(Double.init)), rank: rank, scaling: .identity)
        let left = Matrix(rows: f.left.rows, columns: f.left.columns, storage: f.left.storage.map(Float.init))
        let right = Matrix(rows: f.right.rows, columns: f.right.columns, storage: f.right.storage.map(Float.init))
        let product = Matrix(rows: w.rows, columns: w.columns, storage: Reference.matmulNT(
            left.storage, Matrix(rows: right.columns, columns: right.rows, storage: (0..<right.count).map { right[$0 % right.rows, $0 / right.rows] }).storage,
            m: left.rows, n: right.columns, k: left.columns))
        return (LowRankLinear(left: left, right: right), product)
    }

    @Test func aModelWithLowRankLayersMatchesTheDenseModelOfTheSameProducts() throws {
        let c = Self.tiny.configuration
        var compressed = LlamaModel(configuration: c, weights: Self.tiny.weights)
        var equivalent = Self.tiny.weights
        for (id, rank) in [(ProjectionID(layer: 0, kind: .query), 8), (ProjectionID(layer: 1, kind: .down), 20), (ProjectionID(layer: 1, kind: .key), 5)] {
            let (low, product) = try Self.factors(Self.tiny.weights[id], rank: rank)
            compressed[id] = .lowRank(low)
            equivalent[id] = product
        }
        let dense = LlamaModel(configuration: c, weights: equivalent)
        let a = compressed.score(Self.tokens, keepLogitsAt: Set(Self.tokens.indices))
        let b = dense.score(Self.tokens, keepLogitsAt: Set(Self.tokens.indices))
        for p in Self.tokens.indices { for (x, y) in zip(a.logits[p]!, b.logits[p]!) { #expect(abs(x - y) < 1e-4) } }
        // Decoding one token at a time takes the gemv path (and the non-fused fallback for q/k/v).
        let generator = Generator(model: compressed, capacity: 32, prefillRows: 3)
        let greedy = generator.generate(prompt: Self.tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
        let reference = Generator(model: dense, capacity: 32, prefillRows: 3).generate(prompt: Self.tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
        #expect(greedy.tokens == reference.tokens)
    }

    @Test func fullRankFactorsReproduceTheDenseLayer() throws {
        let w = Self.tiny.weights.layers[0].gate  // [96 × 64]
        let (low, _) = try Self.factors(w, rank: 64)
        var model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let before = model.score(Self.tokens, keepLogitsAt: [7])
        model[ProjectionID(layer: 0, kind: .gate)] = .lowRank(low)
        let after = model.score(Self.tokens, keepLogitsAt: [7])
        for (x, y) in zip(before.logits[7]!, after.logits[7]!) { #expect(abs(x - y) < 1e-4) }
        #expect(Linear.lowRank(low).parameterCount == 64 * (96 + 64))
    }
}
