import Gradients
import LinearAlgebra
import Llama

/// The whole model's mean next-token NLL in Double, composed from the ops' reference twins:
/// an independent forward for central finite differences (Double keeps their error near 1e-9).
struct ReferenceLlama {
    var configuration: LlamaConfiguration
    var weights: [ProjectionID: [Double]]
    var attentionNorms: [[Double]], mlpNorms: [[Double]], finalNorm: [Double]
    var embedding: [Double]  // [vocabulary × hidden], tied head

    init(configuration c: LlamaConfiguration, weights w: LlamaWeights) {
        configuration = c
        var projections: [ProjectionID: [Double]] = [:]
        for l in 0..<c.layerCount {
            for kind in ProjectionKind.allCases { projections[ProjectionID(layer: l, kind: kind)] = w.layers[l][kind].storage.map(Double.init) }
        }
        weights = projections
        attentionNorms = w.layers.map { $0.attentionNorm.map(Double.init) }
        mlpNorms = w.layers.map { $0.mlpNorm.map(Double.init) }
        finalNorm = w.finalNorm.map(Double.init)
        embedding = (w.outputHead ?? w.tokenEmbedding).storage.map(Double.init)
    }

    func loss(_ tokens: [Int]) -> Double {
        let c = configuration
        let t = tokens.count, h = c.hiddenSize, d = c.headDimension, theta = Double(c.ropeTheta)
        func linear(_ x: [Double], _ l: Int, _ kind: ProjectionKind) -> [Double] {
            let s = c.shape(of: kind)
            return LinearOp.Reference.forward(x, rows: t, weight: weights[ProjectionID(layer: l, kind: kind)]!, outputs: s.outputs, inputs: s.inputs)
        }
        var x = tokens.flatMap { embedding[($0 * h)..<(($0 + 1) * h)] }
        for l in 0..<c.layerCount {
            let n1 = RMSNormOp.Reference.forward(x, weight: attentionNorms[l], epsilon: Double(c.rmsNormEpsilon), rows: t, width: h)
            let q = RotaryOp.Reference.forward(linear(n1, l, .query), rows: t, heads: c.attentionHeads, headSize: d, theta: theta)
            let k = RotaryOp.Reference.forward(linear(n1, l, .key), rows: t, heads: c.keyValueHeads, headSize: d, theta: theta)
            let v = linear(n1, l, .value)
            let a = CausalAttentionOp.Reference.forward(q: q, k: k, v: v, rows: t, heads: c.attentionHeads, keyValueHeads: c.keyValueHeads, headSize: d)
            x = zip(x, linear(a, l, .output)).map(+)
            let n2 = RMSNormOp.Reference.forward(x, weight: mlpNorms[l], epsilon: Double(c.rmsNormEpsilon), rows: t, width: h)
            let act = SwiGLUOp.Reference.forward(gate: linear(n2, l, .gate), up: linear(n2, l, .up))
            x = zip(x, linear(act, l, .down)).map(+)
        }
        let n = RMSNormOp.Reference.forward(x, weight: finalNorm, epsilon: Double(c.rmsNormEpsilon), rows: t, width: h)
        let z = LinearOp.Reference.forward(n, rows: t, weight: embedding, outputs: c.vocabularySize, inputs: h)
        let targets: [Int?] = (0..<t).map { $0 + 1 < t ? tokens[$0 + 1] : nil }
        return CrossEntropyOp.Reference.lossAndGradient(z, rows: t, vocabulary: c.vocabularySize, targets: targets, scale: 1).0 / Double(t - 1)
    }
}
