import Foundation
import LinearAlgebra
import Llama

/// Plain, obviously-correct twins of the fast kernels and of the whole forward pass, in Double
/// where it helps. Slow by design; tests compare the fast versions against these.
public enum Reference {
    public static func exp(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }

    /// `a[m × k] · b[n × k]ᵀ`.
    public static func matmulNT(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[j * k + p]) }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    public static func softmax(_ x: [Float]) -> [Float] {
        let m = x.max()!
        let e = x.map { Foundation.exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    public static func logSumExp(_ x: [Float]) -> Double {
        let m = Double(x.max()!)
        return m + Foundation.log(x.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
    }

    public static func rmsNorm(_ x: [Float], weight: [Float], epsilon: Float) -> [Float] {
        let meanSquare = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)
        let scale = 1 / (meanSquare + Double(epsilon)).squareRoot()
        return zip(x, weight).map { Float(Double($1) * Double($0) * scale) }
    }

    public static func silu(_ x: Float) -> Float { Float(Double(x) / (1 + Foundation.exp(-Double(x)))) }

    /// Full-sequence forward of a Llama model straight from its weights, no cache: returns logits
    /// `[tokens × vocabulary]` and the final-normed hidden states.
    public static func forward(_ c: LlamaConfiguration, _ w: LlamaWeights, tokens: [Int]) -> (logits: [[Float]], hidden: [[Float]]) {
        let t = tokens.count, d = c.headDimension, half = d / 2
        var x = tokens.map { w.tokenEmbedding.row($0) }
        func linear(_ m: Matrix<Float>, _ rows: [[Float]]) -> [[Float]] {
            let out = matmulNT(rows.flatMap { $0 }, m.storage, m: rows.count, n: m.rows, k: m.columns)
            return (0..<rows.count).map { Array(out[($0 * m.rows)..<(($0 + 1) * m.rows)]) }
        }
        func rope(_ v: inout [Float], heads: Int, position: Int) {
            for head in 0..<heads {
                for i in 0..<half {
                    let inv = 1 / Foundation.pow(Double(c.ropeTheta), Double(2 * i) / Double(d))
                    let angle = Double(position) * inv
                    let a = Double(v[head * d + i]), b = Double(v[head * d + i + half])
                    v[head * d + i] = Float(a * Foundation.cos(angle) - b * Foundation.sin(angle))
                    v[head * d + i + half] = Float(b * Foundation.cos(angle) + a * Foundation.sin(angle))
                }
            }
        }
        for layer in w.layers {
            let h = x.map { rmsNorm($0, weight: layer.attentionNorm, epsilon: c.rmsNormEpsilon) }
            var q = linear(layer.query, h), k = linear(layer.key, h)
            let v = linear(layer.value, h)
            for p in 0..<t {
                rope(&q[p], heads: c.attentionHeads, position: p)
                rope(&k[p], heads: c.keyValueHeads, position: p)
            }
            var attention = [[Float]](repeating: [Float](repeating: 0, count: c.queryWidth), count: t)
            let group = c.attentionHeads / c.keyValueHeads
            for head in 0..<c.attentionHeads {
                let kv = head / group
                for p in 0..<t {
                    var scores: [Float] = []
                    for s in 0...p {
                        var dot = 0.0
                        for i in 0..<d { dot += Double(q[p][head * d + i]) * Double(k[s][kv * d + i]) }
                        scores.append(Float(dot / Double(d).squareRoot()))
                    }
                    let probabilities = softmax(scores)
                    for i in 0..<d {
                        var sum = 0.0
                        for s in 0...p { sum += Double(probabilities[s]) * Double(v[s][kv * d + i]) }
                        attention[p][head * d + i] = Float(sum)
                    }
                }
            }
            let o = linear(layer.output, attention)
            for p in 0..<t { for i in 0..<c.hiddenSize { x[p][i] += o[p][i] } }
            let h2 = x.map { rmsNorm($0, weight: layer.mlpNorm, epsilon: c.rmsNormEpsilon) }
            let g = linear(layer.gate, h2), u = linear(layer.up, h2)
            let a = zip(g, u).map { zip($0, $1).map { silu($0) * $1 } }
            let down = linear(layer.down, a)
            for p in 0..<t { for i in 0..<c.hiddenSize { x[p][i] += down[p][i] } }
        }
        let normed = x.map { rmsNorm($0, weight: w.finalNorm, epsilon: c.rmsNormEpsilon) }
        return (linear(w.outputHead ?? w.tokenEmbedding, normed), normed)
    }
}
