import Testing
import Gradients
import LinearAlgebra
import Llama
import TestSupport

/// Backward passes against central finite differences, h = 1e-5 in Double. For a function f with
/// a random cotangent R, the directional derivative of ⟨R, f(x)⟩ along a random D must equal
/// ⟨backward(R), D⟩; the difference quotient's error is O(h²) plus rounding, near 1e-9 here.
@Suite("Backward passes match central finite differences")
struct FiniteDifferenceTests {
    static let h = 1e-5

    /// Relative difference of the analytic and numerical directional derivatives.
    static func check(_ x: [Double], cotangent r: [Double], direction dir: [Double], gradient: [Double], f: ([Double]) -> [Double]) -> Double {
        func objective(_ step: Double) -> Double {
            zip(r, f(zip(x, dir).map { $0 + step * $1 })).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let numerical = (objective(h) - objective(-h)) / (2 * h)
        let analytic = zip(gradient, dir).reduce(0) { $0 + $1.0 * $1.1 }
        return abs(numerical - analytic) / max(abs(numerical), 1e-12)
    }

    @Test func eachOpsReferenceBackwardIsTheDerivativeOfItsForward() {
        var rng = SeededGenerator(seed: 21)
        func random(_ n: Int, _ s: Float = 1) -> [Double] { rng.doubles(n, scale: s) }
        let tolerance = 1e-6

        let rows = 4, width = 12
        let x = random(rows * width, 2), w = random(width), dy = random(rows * width)
        #expect(Self.check(x, cotangent: dy, direction: random(x.count),
                           gradient: RMSNormOp.Reference.backward(dy, x: x, weight: w, epsilon: 1e-5, rows: rows, width: width)) {
            RMSNormOp.Reference.forward($0, weight: w, epsilon: 1e-5, rows: rows, width: width)
        } < tolerance)

        let (o, i) = (6, 5)
        let lx = random(rows * i), lw = random(o * i), ly = random(rows * o)
        let lg = LinearOp.Reference.backward(ly, x: lx, rows: rows, weight: lw, outputs: o, inputs: i)
        #expect(Self.check(lx, cotangent: ly, direction: random(lx.count), gradient: lg.input) {
            LinearOp.Reference.forward($0, rows: rows, weight: lw, outputs: o, inputs: i)
        } < tolerance)
        #expect(Self.check(lw, cotangent: ly, direction: random(lw.count), gradient: lg.weight) {
            LinearOp.Reference.forward(lx, rows: rows, weight: $0, outputs: o, inputs: i)
        } < tolerance)

        let rx = random(5 * 2 * 8), ry = random(rx.count)
        #expect(Self.check(rx, cotangent: ry, direction: random(rx.count),
                           gradient: RotaryOp.Reference.backward(ry, rows: 5, heads: 2, headSize: 8, theta: 100)) {
            RotaryOp.Reference.forward($0, rows: 5, heads: 2, headSize: 8, theta: 100)
        } < tolerance)

        let (t, heads, kv, d) = (6, 4, 2, 4)
        let q = random(t * heads * d), k = random(t * kv * d), v = random(t * kv * d), dout = random(t * heads * d)
        let ag = CausalAttentionOp.Reference.backward(dout, q: q, k: k, v: v, rows: t, heads: heads, keyValueHeads: kv, headSize: d)
        #expect(Self.check(q, cotangent: dout, direction: random(q.count), gradient: ag.q) {
            CausalAttentionOp.Reference.forward(q: $0, k: k, v: v, rows: t, heads: heads, keyValueHeads: kv, headSize: d)
        } < tolerance)
        #expect(Self.check(k, cotangent: dout, direction: random(k.count), gradient: ag.k) {
            CausalAttentionOp.Reference.forward(q: q, k: $0, v: v, rows: t, heads: heads, keyValueHeads: kv, headSize: d)
        } < tolerance)
        #expect(Self.check(v, cotangent: dout, direction: random(v.count), gradient: ag.v) {
            CausalAttentionOp.Reference.forward(q: q, k: k, v: $0, rows: t, heads: heads, keyValueHeads: kv, headSize: d)
        } < tolerance)

        let g = random(20, 4), u = random(20, 2), da = random(20)
        let sg = SwiGLUOp.Reference.backward(da, gate: g, up: u)
        #expect(Self.check(g, cotangent: da, direction: random(20), gradient: sg.gate) { SwiGLUOp.Reference.forward(gate: $0, up: u) } < tolerance)
        #expect(Self.check(u, cotangent: da, direction: random(20), gradient: sg.up) { SwiGLUOp.Reference.forward(gate: g, up: $0) } < tolerance)

        let z = random(3 * 10, 5)
        let targets: [Int?] = [2, nil, 9]
        let (_, dz) = CrossEntropyOp.Reference.lossAndGradient(z, rows: 3, vocabulary: 10, targets: targets, scale: 0.5)
        #expect(Self.check(z, cotangent: [1], direction: random(z.count), gradient: dz) {
            [CrossEntropyOp.Reference.lossAndGradient($0, rows: 3, vocabulary: 10, targets: targets, scale: 0.5).0 * 0.5]
        } < tolerance)

        let teacher = random(3 * 10, 5)
        let (_, dd) = DistillationOp.Reference.lossAndGradient(z, teacher: teacher, rows: 3, vocabulary: 10, scale: 0.5)
        #expect(Self.check(z, cotangent: [1], direction: random(z.count), gradient: dd) {
            [DistillationOp.Reference.lossAndGradient($0, teacher: teacher, rows: 3, vocabulary: 10, scale: 0.5).0 * 0.5]
        } < tolerance)
    }

    /// The whole model: the fast backward (Float32) against central differences of the Double
    /// reference model, along a random direction in each of the 14 projections of the tiny GQA
    /// model. Float32 gradients carry ~1e-6 relative rounding; 1e-3 leaves room and still fails on
    /// any wrong term (dropping the query's RoPE backward is off by 10–15%; the op tests check finer).
    @Test func theModelGradientOfEveryProjectionMatchesFiniteDifferences() {
        let tiny = TinyLlama(seed: 5)
        let c = tiny.configuration
        var rng = SeededGenerator(seed: 22)
        let tokens = (0..<14).map { _ in Int.random(in: 0..<c.vocabularySize, using: &rng) }
        let pass = GradientPass(configuration: c, weights: tiny.weights)
        var gradients: [ProjectionID: [Double]] = [:]
        let loss = pass.lossAndGradients(tokens) { id, g in gradients[id] = g.map(Double.init) }
        var reference = ReferenceLlama(configuration: c, weights: tiny.weights)
        #expect(abs(loss - reference.loss(tokens)) < 1e-5, "fast loss \(loss), reference \(reference.loss(tokens))")
        #expect(gradients.count == 2 * 7)
        for (id, gradient) in gradients.sorted(by: { $0.key < $1.key }) {
            let weight = reference.weights[id]!
            let direction = rng.doubles(weight.count, scale: 1)
            func loss(_ step: Double) -> Double {
                reference.weights[id] = zip(weight, direction).map { $0 + step * $1 }
                defer { reference.weights[id] = weight }
                return reference.loss(tokens)
            }
            let numerical = (loss(Self.h) - loss(-Self.h)) / (2 * Self.h)
            let analytic = zip(gradient, direction).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(numerical - analytic) < 1e-3 * abs(numerical), "\(id): finite difference \(numerical), backward \(analytic)")
        }
    }

    /// The backward pass's own forward is the inference forward: same loss as `LlamaModel.score`.
    @Test func theGradientPassLossEqualsTheInferenceMeanNLL() {
        let tiny = TinyLlama(seed: 6)
        var rng = SeededGenerator(seed: 23)
        let tokens = (0..<40).map { _ in Int.random(in: 0..<tiny.configuration.vocabularySize, using: &rng) }
        let pass = GradientPass(configuration: tiny.configuration, weights: tiny.weights)
        let inference = LlamaModel(configuration: tiny.configuration, weights: tiny.weights).score(tokens).meanNLL
        #expect(abs(pass.loss(tokens) - inference) < 1e-6)
    }
}
