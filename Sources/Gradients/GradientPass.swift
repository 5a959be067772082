import LinearAlgebra
import Llama

/// The backward pass of a dense Llama model for the mean next-token cross-entropy of one window,
/// written by hand from the op functions in `Ops/` (llm.c's structure): a forward that keeps its
/// activations (`ActivationTape`), then the layers in reverse. Only the projection weights get
/// gradients (norms, embeddings and the head are frozen, as in FLRC and the reference fixture).
///
/// One window at a time: memory is the tape of one window plus one projection's gradient, which
/// is handed to the caller as soon as it exists and overwritten by the next.
public final class GradientPass {
    public let configuration: LlamaConfiguration
    private var weights: LlamaWeights
    private let rotary: RotaryTable
    private var tape: ActivationTape?

    /// `weights` must be dense (gradients are of the original projections).
    public init(configuration: LlamaConfiguration, weights: LlamaWeights) {
        precondition(weights.isDense, "the backward pass differentiates dense projections; this model is compressed")
        precondition(weights.halfPrecision.isEmpty, "the backward pass needs Float32 weights; load the model without LoadOptions.halfPrecision")
        self.configuration = configuration
        self.weights = weights
        rotary = RotaryTable(configuration: configuration, positions: configuration.contextLength)
    }

    /// Mean next-token NLL of `tokens` (predicting tokens[1...] from their prefixes), forward only;
    /// with `teacherHidden`, the mean KL divergence from the teacher's distributions instead.
    public func loss(_ tokens: [Int], distillingFrom teacherHidden: [Float]? = nil) -> Double {
        run(tokens, teacherHidden: teacherHidden, gradients: nil)
    }

    /// The final normed hidden states `[tokens × hidden]` of `tokens` (forward only): what a teacher
    /// hands to `lossAndGradients(_:distillingFrom:gradient:)`, so the student's head makes the
    /// teacher's logits a block at a time (the `[tokens × vocabulary]` logits are never all held).
    public func finalHidden(_ tokens: [Int]) -> [Float] {
        precondition(!tokens.isEmpty && tokens.count <= rotary.positions, "\(tokens.count) tokens: need 1 ... \(rotary.positions)")
        if tape == nil || tape!.rows != tokens.count { tape = ActivationTape(configuration: configuration, rows: tokens.count, workers: Parallel.workers) }
        forward(tokens, tape: tape!)
        return Array(UnsafeBufferPointer(start: tape!.finalNormed, count: tokens.count * configuration.hiddenSize))
    }

    /// Replaces the weight of one projection (`[outputs × inputs]`, its shape): a training step's update.
    public func replaceWeight(_ id: ProjectionID, with weight: Matrix<Float>) {
        let s = configuration.shape(of: id.kind)
        precondition(weight.rows == s.outputs && weight.columns == s.inputs,
                     "\(id) is [\(s.outputs) × \(s.inputs)], not [\(weight.rows) × \(weight.columns)]")
        weights[id] = weight
    }

    /// Mean next-token NLL of `tokens`, and ∂loss/∂W of every projection, handed to `gradient` layer
    /// by layer from the last (`[outputs × inputs]` row-major, as the weight; valid only during the call).
    @discardableResult
    public func lossAndGradients(_ tokens: [Int], gradient: (ProjectionID, UnsafeBufferPointer<Float>) -> Void) -> Double {
        withoutActuallyEscaping(gradient) { run(tokens, teacherHidden: nil, gradients: $0) }
    }

    /// Mean KL divergence of `tokens`' next-token distributions from a teacher's (`DistillationOp`,
    /// every position), and ∂loss/∂W of every projection as `lossAndGradients(_:gradient:)` gives
    /// them. `teacherHidden` is the teacher's `finalHidden(tokens)`; the output head (frozen, and
    /// untouched by compression) turns it into the teacher's logits.
    @discardableResult
    public func lossAndGradients(_ tokens: [Int], distillingFrom teacherHidden: [Float],
                                 gradient: (ProjectionID, UnsafeBufferPointer<Float>) -> Void) -> Double {
        withoutActuallyEscaping(gradient) { run(tokens, teacherHidden: teacherHidden, gradients: $0) }
    }

    private func run(_ tokens: [Int], teacherHidden: [Float]?, gradients: ((ProjectionID, UnsafeBufferPointer<Float>) -> Void)?) -> Double {
        let c = configuration
        let t = tokens.count
        precondition(t >= 2, "a window needs at least 2 tokens (one prediction)")
        precondition(t <= rotary.positions, "\(t) tokens exceed the context length \(rotary.positions)")
        if tape == nil || tape!.rows != t { tape = ActivationTape(configuration: c, rows: t, workers: Parallel.workers) }
        let tape = tape!
        forward(tokens, tape: tape)
        // Output head and loss, a block of rows at a time; ∂L/∂(final normed) into tape.dNormed.
        let h = c.hiddenSize, vocabulary = c.vocabularySize
        let targets: [Int?] = (0..<t).map { $0 + 1 < t ? tokens[$0 + 1] : nil }
        if let teacherHidden { precondition(teacherHidden.count == t * h, "the teacher's hidden states are [\(t) × \(h)]") }
        // Next-token: t − 1 predictions; distillation: every position's distribution.
        let predictions = teacherHidden == nil ? t - 1 : t
        let scale = 1 / Float(predictions)
        var total = 0.0
        tape.dNormed.update(repeating: 0, count: t * h)
        (weights.outputHead ?? weights.tokenEmbedding).storage.withUnsafeBufferPointer { head in
            var first = 0
            while first < t {
                let n = min(ActivationTape.headRows, t - first)
                LinearOp.forward(tape.finalNormed + first * h, rows: n, weight: head.baseAddress!, outputs: vocabulary, inputs: h, into: tape.logits)
                if let teacherHidden {
                    teacherHidden.withUnsafeBufferPointer {
                        LinearOp.forward($0.baseAddress! + first * h, rows: n, weight: head.baseAddress!, outputs: vocabulary, inputs: h,
                                         into: tape.teacherLogits)
                    }
                    total += DistillationOp.lossAndGradient(tape.logits, teacher: tape.teacherLogits, rows: n, vocabulary: vocabulary, scale: scale)
                } else {
                    total += CrossEntropyOp.lossAndGradient(tape.logits, rows: n, vocabulary: vocabulary, targets: targets[first..<(first + n)],
                                                            scale: scale)
                }
                if gradients != nil {
                    LinearOp.backward(tape.logits, x: tape.finalNormed + first * h, rows: n, weight: head.baseAddress!, outputs: vocabulary,
                                      inputs: h, accumulatingInto: tape.dNormed + first * h, weightGradient: nil)
                }
                first += n
            }
        }
        let loss = total / Double(predictions)
        guard let gradients else { return loss }
        tape.dStream.update(repeating: 0, count: t * h)
        weights.finalNorm.withUnsafeBufferPointer { w in
            RMSNormOp.backward(tape.dNormed, x: tape.stream[c.layerCount], weight: w.baseAddress!, inverseRMS: tape.finalRMS, rows: t, width: h,
                               accumulatingInto: tape.dStream)
        }
        for l in (0..<c.layerCount).reversed() { backwardLayer(l, tape: tape, gradients: gradients) }
        return loss
    }

    private func forward(_ tokens: [Int], tape: ActivationTape) {
        let c = configuration
        let t = tokens.count
        let h = c.hiddenSize, inter = c.intermediateSize, d = c.headDimension
        weights.tokenEmbedding.storage.withUnsafeBufferPointer { e in
            for (r, token) in tokens.enumerated() {
                precondition(token >= 0 && token < c.vocabularySize, "token id \(token) is outside the vocabulary")
                (tape.stream[0] + r * h).update(from: e.baseAddress! + token * h, count: h)
            }
        }
        for l in 0..<c.layerCount {
            let w = weights.layers[l]
            w.attentionNorm.withUnsafeBufferPointer {
                RMSNormOp.forward(tape.stream[l], weight: $0.baseAddress!, epsilon: c.rmsNormEpsilon, rows: t, width: h,
                                  into: tape.attentionNormed[l], inverseRMS: tape.attentionRMS[l])
            }
            linear(w, .query, tape.attentionNormed[l], rows: t, into: tape.query[l])
            linear(w, .key, tape.attentionNormed[l], rows: t, into: tape.key[l])
            linear(w, .value, tape.attentionNormed[l], rows: t, into: tape.value[l])
            RotaryOp.forward(tape.query[l], rows: t, heads: c.attentionHeads, headSize: d, firstPosition: 0, table: rotary)
            RotaryOp.forward(tape.key[l], rows: t, heads: c.keyValueHeads, headSize: d, firstPosition: 0, table: rotary)
            CausalAttentionOp.forward(q: tape.query[l], k: tape.key[l], v: tape.value[l], rows: t, heads: c.attentionHeads,
                                      keyValueHeads: c.keyValueHeads, headSize: d, into: tape.attention[l], scratch: tape.attentionScratch)
            linear(w, .output, tape.attention[l], rows: t, into: tape.blockOutput)
            tape.middle[l].update(from: tape.stream[l], count: t * h)
            VectorMath.add(tape.blockOutput, into: tape.middle[l], count: t * h)
            w.mlpNorm.withUnsafeBufferPointer {
                RMSNormOp.forward(tape.middle[l], weight: $0.baseAddress!, epsilon: c.rmsNormEpsilon, rows: t, width: h,
                                  into: tape.mlpNormed[l], inverseRMS: tape.mlpRMS[l])
            }
            linear(w, .gate, tape.mlpNormed[l], rows: t, into: tape.gate[l])
            linear(w, .up, tape.mlpNormed[l], rows: t, into: tape.up[l])
            SwiGLUOp.forward(gate: tape.gate[l], up: tape.up[l], count: t * inter, into: tape.activation[l])
            linear(w, .down, tape.activation[l], rows: t, into: tape.blockOutput)
            tape.stream[l + 1].update(from: tape.middle[l], count: t * h)
            VectorMath.add(tape.blockOutput, into: tape.stream[l + 1], count: t * h)
        }
        weights.finalNorm.withUnsafeBufferPointer {
            RMSNormOp.forward(tape.stream[c.layerCount], weight: $0.baseAddress!, epsilon: c.rmsNormEpsilon, rows: t, width: h,
                              into: tape.finalNormed, inverseRMS: tape.finalRMS)
        }
    }

    /// On entry `tape.dStream` holds ∂L/∂(layer l's output stream); on exit ∂L/∂(its input stream).
    private func backwardLayer(_ l: Int, tape: ActivationTape, gradients: (ProjectionID, UnsafeBufferPointer<Float>) -> Void) {
        let c = configuration
        let t = tape.rows
        let h = c.hiddenSize, qw = c.queryWidth, inter = c.intermediateSize, d = c.headDimension
        let w = weights.layers[l]
        // MLP block: stream[l+1] = middle + down(silu(gate) ⊙ up).
        tape.dActivation.update(repeating: 0, count: t * inter)
        linearBackward(w, .down, layer: l, dy: tape.dStream, x: tape.activation[l], rows: t, dx: tape.dActivation, gradients)
        SwiGLUOp.backward(tape.dActivation, gate: tape.gate[l], up: tape.up[l], count: t * inter, dgate: tape.dGate, dup: tape.dUp)
        tape.dNormed.update(repeating: 0, count: t * h)
        linearBackward(w, .gate, layer: l, dy: tape.dGate, x: tape.mlpNormed[l], rows: t, dx: tape.dNormed, gradients)
        linearBackward(w, .up, layer: l, dy: tape.dUp, x: tape.mlpNormed[l], rows: t, dx: tape.dNormed, gradients)
        w.mlpNorm.withUnsafeBufferPointer {
            RMSNormOp.backward(tape.dNormed, x: tape.middle[l], weight: $0.baseAddress!, inverseRMS: tape.mlpRMS[l], rows: t, width: h,
                               accumulatingInto: tape.dStream)
        }
        // Attention block: middle = stream[l] + o(attention(rope(q), rope(k), v)).
        tape.dAttention.update(repeating: 0, count: t * qw)
        linearBackward(w, .output, layer: l, dy: tape.dStream, x: tape.attention[l], rows: t, dx: tape.dAttention, gradients)
        CausalAttentionOp.backward(tape.dAttention, q: tape.query[l], k: tape.key[l], v: tape.value[l], rows: t, heads: c.attentionHeads,
                                   keyValueHeads: c.keyValueHeads, headSize: d, dq: tape.dQuery, dk: tape.dKey, dv: tape.dValue,
                                   scratch: tape.attentionScratch, headScratch: tape.headScratch)
        RotaryOp.backward(tape.dQuery, rows: t, heads: c.attentionHeads, headSize: d, firstPosition: 0, table: rotary)
        RotaryOp.backward(tape.dKey, rows: t, heads: c.keyValueHeads, headSize: d, firstPosition: 0, table: rotary)
        tape.dNormed.update(repeating: 0, count: t * h)
        linearBackward(w, .query, layer: l, dy: tape.dQuery, x: tape.attentionNormed[l], rows: t, dx: tape.dNormed, gradients)
        linearBackward(w, .key, layer: l, dy: tape.dKey, x: tape.attentionNormed[l], rows: t, dx: tape.dNormed, gradients)
        linearBackward(w, .value, layer: l, dy: tape.dValue, x: tape.attentionNormed[l], rows: t, dx: tape.dNormed, gradients)
        w.attentionNorm.withUnsafeBufferPointer {
            RMSNormOp.backward(tape.dNormed, x: tape.stream[l], weight: $0.baseAddress!, inverseRMS: tape.attentionRMS[l], rows: t, width: h,
                               accumulatingInto: tape.dStream)
        }
    }

    private func linear(_ w: LlamaLayerWeights, _ kind: ProjectionKind, _ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let s = configuration.shape(of: kind)
        w[kind].storage.withUnsafeBufferPointer {
            LinearOp.forward(x, rows: rows, weight: $0.baseAddress!, outputs: s.outputs, inputs: s.inputs, into: y)
        }
    }

    /// `dx += dy·W`, then the weight gradient `dyᵀ·x` handed to the caller.
    private func linearBackward(_ w: LlamaLayerWeights, _ kind: ProjectionKind, layer: Int, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                rows: Int, dx: UnsafeMutablePointer<Float>, _ gradients: (ProjectionID, UnsafeBufferPointer<Float>) -> Void) {
        let s = configuration.shape(of: kind)
        let gradient = tape!.weightGradient
        w[kind].storage.withUnsafeBufferPointer {
            LinearOp.backward(dy, x: x, rows: rows, weight: $0.baseAddress!, outputs: s.outputs, inputs: s.inputs, accumulatingInto: dx,
                              weightGradient: gradient)
        }
        gradients(ProjectionID(layer: layer, kind: kind), UnsafeBufferPointer(start: gradient, count: s.outputs * s.inputs))
    }
}
