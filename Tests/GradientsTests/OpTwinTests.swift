import Testing
import Gradients
import Llama
import TestSupport

/// Each fast op (Float32, BLAS, in-place buffers) against its plain-loop Double twin, forward and
/// backward, on seeded random inputs. Tolerance: Float32 rounding over sums of at most a few hundred
/// terms of size ~1, so 1e-4 absolute.
@Suite("Backward ops match their reference twins")
struct OpTwinTests {
    static let tolerance = 1e-4

    @Test func rmsNormForwardAndBackwardMatchTheTwin() {
        var rng = SeededGenerator(seed: 11)
        let rows = 5, width = 40
        let x = rng.doubles(rows * width, scale: 2), w = rng.doubles(width, scale: 1), dy = rng.doubles(rows * width, scale: 1)
        var y = [Float](repeating: 0, count: rows * width), r = [Float](repeating: 0, count: rows)
        let xf = x.floats, wf = w.floats
        RMSNormOp.forward(xf, weight: wf, epsilon: 1e-5, rows: rows, width: width, into: &y, inverseRMS: &r)
        expectClose(y, RMSNormOp.Reference.forward(x, weight: w, epsilon: 1e-5, rows: rows, width: width))
        var dx = [Float](repeating: 0.5, count: rows * width)  // accumulates onto what is there
        RMSNormOp.backward(dy.floats, x: xf, weight: wf, inverseRMS: r, rows: rows, width: width, accumulatingInto: &dx)
        expectClose(dx, RMSNormOp.Reference.backward(dy, x: x, weight: w, epsilon: 1e-5, rows: rows, width: width).map { $0 + 0.5 })
    }

    @Test func linearForwardAndBackwardMatchTheTwin() {
        var rng = SeededGenerator(seed: 12)
        let t = 7, outputs = 150, inputs = 33  // outputs split over workers
        let x = rng.doubles(t * inputs, scale: 1), w = rng.doubles(outputs * inputs, scale: 0.3), dy = rng.doubles(t * outputs, scale: 1)
        var y = [Float](repeating: 0, count: t * outputs)
        LinearOp.forward(x.floats, rows: t, weight: w.floats, outputs: outputs, inputs: inputs, into: &y)
        expectClose(y, LinearOp.Reference.forward(x, rows: t, weight: w, outputs: outputs, inputs: inputs))
        var dx = [Float](repeating: 1, count: t * inputs), dw = [Float](repeating: 9, count: outputs * inputs)
        LinearOp.backward(dy.floats, x: x.floats, rows: t, weight: w.floats, outputs: outputs, inputs: inputs,
                          accumulatingInto: &dx, weightGradient: &dw)
        let reference = LinearOp.Reference.backward(dy, x: x, rows: t, weight: w, outputs: outputs, inputs: inputs)
        expectClose(dx, reference.input.map { $0 + 1 })
        expectClose(dw, reference.weight)  // overwritten, not accumulated
    }

    @Test func rotaryForwardAndBackwardMatchTheTwin() {
        var rng = SeededGenerator(seed: 13)
        let c = LlamaConfiguration(hiddenSize: 48, intermediateSize: 8, layerCount: 1, attentionHeads: 3, keyValueHeads: 1,
                                   vocabularySize: 8, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, contextLength: 32, tiedEmbeddings: true)
        let table = RotaryTable(configuration: c, positions: 32)
        let rows = 9, heads = 3, d = 16
        let x = rng.doubles(rows * heads * d, scale: 1)
        var y = x.floats
        RotaryOp.forward(&y, rows: rows, heads: heads, headSize: d, firstPosition: 0, table: table)
        expectClose(y, RotaryOp.Reference.forward(x, rows: rows, heads: heads, headSize: d, theta: 10_000))
        var dx = x.floats
        RotaryOp.backward(&dx, rows: rows, heads: heads, headSize: d, firstPosition: 0, table: table)
        expectClose(dx, RotaryOp.Reference.backward(x, rows: rows, heads: heads, headSize: d, theta: 10_000))
    }

    @Test func groupedCausalAttentionForwardAndBackwardMatchTheTwin() {
        var rng = SeededGenerator(seed: 14)
        let t = 11, heads = 6, kvHeads = 2, d = 8  // 3 query heads per key/value head
        let q = rng.doubles(t * heads * d, scale: 1), k = rng.doubles(t * kvHeads * d, scale: 1), v = rng.doubles(t * kvHeads * d, scale: 1)
        let dout = rng.doubles(t * heads * d, scale: 1)
        let scratch = (0..<2).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: CausalAttentionOp.scratchCount(rows: t)) }
        let headScratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * heads * t * d)
        defer { scratch.forEach { $0.deallocate() }; headScratch.deallocate() }
        var out = [Float](repeating: 0, count: t * heads * d)
        CausalAttentionOp.forward(q: q.floats, k: k.floats, v: v.floats, rows: t, heads: heads, keyValueHeads: kvHeads, headSize: d,
                                  into: &out, scratch: scratch)
        expectClose(out, CausalAttentionOp.Reference.forward(q: q, k: k, v: v, rows: t, heads: heads, keyValueHeads: kvHeads, headSize: d))
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        CausalAttentionOp.backward(dout.floats, q: q.floats, k: k.floats, v: v.floats, rows: t, heads: heads, keyValueHeads: kvHeads,
                                   headSize: d, dq: &dq, dk: &dk, dv: &dv, scratch: scratch, headScratch: headScratch)
        let reference = CausalAttentionOp.Reference.backward(dout, q: q, k: k, v: v, rows: t, heads: heads, keyValueHeads: kvHeads, headSize: d)
        expectClose(dq, reference.q)
        expectClose(dk, reference.k)
        expectClose(dv, reference.v)
    }

    @Test func swiGLUForwardAndBackwardMatchTheTwin() {
        var rng = SeededGenerator(seed: 15)
        let n = 37
        let g = rng.doubles(n, scale: 4), u = rng.doubles(n, scale: 2), da = rng.doubles(n, scale: 1)
        var a = [Float](repeating: 0, count: n)
        SwiGLUOp.forward(gate: g.floats, up: u.floats, count: n, into: &a)
        expectClose(a, SwiGLUOp.Reference.forward(gate: g, up: u))
        var dg = [Float](repeating: 0, count: n), du = dg
        SwiGLUOp.backward(da.floats, gate: g.floats, up: u.floats, count: n, dgate: &dg, dup: &du)
        let reference = SwiGLUOp.Reference.backward(da, gate: g, up: u)
        expectClose(dg, reference.gate)
        expectClose(du, reference.up)
    }

    @Test func crossEntropyLossAndGradientMatchTheTwin() {
        var rng = SeededGenerator(seed: 16)
        let rows = 4, vocabulary = 50
        let z = rng.doubles(rows * vocabulary, scale: 6)
        let targets: [Int?] = [3, 49, nil, 0]
        var dz = z.floats
        let loss = CrossEntropyOp.lossAndGradient(&dz, rows: rows, vocabulary: vocabulary, targets: targets[...], scale: 1 / 3)
        let reference = CrossEntropyOp.Reference.lossAndGradient(z, rows: rows, vocabulary: vocabulary, targets: targets, scale: 1 / 3)
        #expect(abs(loss - reference.0) < Self.tolerance)
        expectClose(dz, reference.1)
    }

    /// The distillation loss against its twin, and a student equal to its teacher: zero loss, zero gradient.
    @Test func distillationLossAndGradientMatchTheTwin() {
        var rng = SeededGenerator(seed: 17)
        let rows = 3, vocabulary = 50
        let z = rng.doubles(rows * vocabulary, scale: 6), teacher = rng.doubles(rows * vocabulary, scale: 6)
        var dz = z.floats, probabilities = teacher.floats
        let loss = DistillationOp.lossAndGradient(&dz, teacher: &probabilities, rows: rows, vocabulary: vocabulary, scale: 1 / 3)
        let reference = DistillationOp.Reference.lossAndGradient(z, teacher: teacher, rows: rows, vocabulary: vocabulary, scale: 1 / 3)
        #expect(loss > 0.1 && abs(loss - reference.0) < Self.tolerance)
        expectClose(dz, reference.1)
        var same = teacher.floats, target = teacher.floats
        let zero = DistillationOp.lossAndGradient(&same, teacher: &target, rows: rows, vocabulary: vocabulary, scale: 1)
        #expect(abs(zero) < 1e-6 && same.allSatisfy { abs($0) < 1e-6 })
    }

    private func expectClose(_ fast: [Float], _ reference: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(fast.count == reference.count, sourceLocation: sourceLocation)
        let worst = zip(fast, reference).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst < Self.tolerance, "largest difference \(worst)", sourceLocation: sourceLocation)
    }
}

extension SeededGenerator {
    /// Uniform in [-scale, scale), as Double (exactly representable in Float32, so a fast op and its
    /// twin see the same inputs).
    mutating func doubles(_ count: Int, scale: Float) -> [Double] { floats(count, scale: scale).map(Double.init) }
}

extension Array where Element == Double {
    var floats: [Float] { map(Float.init) }
}
