import Llama

/// What the backward pass needs from the forward, kept per layer for one window of `rows` tokens
/// (llm.c's activations), plus the gradient buffers of the backward; allocated once and reused for
/// every window. For SmolLM2 at 512 tokens the kept activations take about 0.5 GB; attention
/// probabilities are recomputed, not kept (`CausalAttentionOp`).
final class ActivationTape {
    let rows: Int
    /// `[rows × hidden]` ×(layers + 1): the residual stream entering each layer; the last one enters the final norm.
    let stream: [UnsafeMutablePointer<Float>]
    /// `[rows × hidden]` per layer: the stream after the attention block's residual add.
    let middle: [UnsafeMutablePointer<Float>]
    let attentionRMS: [UnsafeMutablePointer<Float>]  // [rows] per layer: 1/rms of the attention norm
    let mlpRMS: [UnsafeMutablePointer<Float>]  // [rows] per layer
    let attentionNormed: [UnsafeMutablePointer<Float>]  // [rows × hidden] per layer: the q/k/v input
    let mlpNormed: [UnsafeMutablePointer<Float>]  // [rows × hidden] per layer: the gate/up input
    let query: [UnsafeMutablePointer<Float>]  // [rows × heads·d] per layer, after RoPE
    let key: [UnsafeMutablePointer<Float>]  // [rows × kvHeads·d] per layer, after RoPE
    let value: [UnsafeMutablePointer<Float>]  // [rows × kvHeads·d] per layer
    let attention: [UnsafeMutablePointer<Float>]  // [rows × heads·d] per layer: the o input
    let gate: [UnsafeMutablePointer<Float>]  // [rows × intermediate] per layer, before the activation
    let up: [UnsafeMutablePointer<Float>]  // [rows × intermediate] per layer
    let activation: [UnsafeMutablePointer<Float>]  // [rows × intermediate] per layer: the down input
    let finalRMS: UnsafeMutablePointer<Float>  // [rows]
    let finalNormed: UnsafeMutablePointer<Float>  // [rows × hidden]

    // Backward buffers.
    let dStream: UnsafeMutablePointer<Float>  // [rows × hidden]: ∂L/∂(residual stream) at the current point
    let dNormed: UnsafeMutablePointer<Float>  // [rows × hidden]
    let dQuery: UnsafeMutablePointer<Float>  // [rows × heads·d]
    let dKey: UnsafeMutablePointer<Float>  // [rows × kvHeads·d]
    let dValue: UnsafeMutablePointer<Float>  // [rows × kvHeads·d]
    let dAttention: UnsafeMutablePointer<Float>  // [rows × heads·d]
    let dActivation: UnsafeMutablePointer<Float>  // [rows × intermediate]
    let dGate: UnsafeMutablePointer<Float>  // [rows × intermediate]
    let dUp: UnsafeMutablePointer<Float>  // [rows × intermediate]
    let blockOutput: UnsafeMutablePointer<Float>  // [rows × hidden]: o and down outputs before the residual add
    let logits: UnsafeMutablePointer<Float>  // [headRows × vocabulary]
    let teacherLogits: UnsafeMutablePointer<Float>  // [headRows × vocabulary]: distillation's targets
    let weightGradient: UnsafeMutablePointer<Float>  // [largest projection], handed to the consumer
    let attentionScratch: [UnsafeMutablePointer<Float>]  // per worker, `CausalAttentionOp.scratchCount`
    let headScratch: UnsafeMutablePointer<Float>  // [2 · heads · rows · d]
    /// Logit rows per output-head product (bounds the `[rows × vocabulary]` logits).
    static let headRows = 64
    private var owned: [UnsafeMutablePointer<Float>] = []

    init(configuration c: LlamaConfiguration, rows t: Int, workers: Int) {
        rows = t
        var owned: [UnsafeMutablePointer<Float>] = []
        func buffer(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            owned.append(p)
            return p
        }
        func perLayer(_ n: Int) -> [UnsafeMutablePointer<Float>] { (0..<c.layerCount).map { _ in buffer(n) } }
        let h = c.hiddenSize, qw = c.queryWidth, kvw = c.keyValueWidth, inter = c.intermediateSize
        stream = (0...c.layerCount).map { _ in buffer(t * h) }
        middle = perLayer(t * h)
        attentionRMS = perLayer(t)
        mlpRMS = perLayer(t)
        attentionNormed = perLayer(t * h)
        mlpNormed = perLayer(t * h)
        query = perLayer(t * qw)
        key = perLayer(t * kvw)
        value = perLayer(t * kvw)
        attention = perLayer(t * qw)
        gate = perLayer(t * inter)
        up = perLayer(t * inter)
        activation = perLayer(t * inter)
        finalRMS = buffer(t)
        finalNormed = buffer(t * h)
        dStream = buffer(t * h)
        dNormed = buffer(t * h)
        dQuery = buffer(t * qw)
        dKey = buffer(t * kvw)
        dValue = buffer(t * kvw)
        dAttention = buffer(t * qw)
        dActivation = buffer(t * inter)
        dGate = buffer(t * inter)
        dUp = buffer(t * inter)
        blockOutput = buffer(t * h)
        logits = buffer(Self.headRows * c.vocabularySize)
        teacherLogits = buffer(Self.headRows * c.vocabularySize)
        weightGradient = buffer(ProjectionKind.allCases.map { let s = c.shape(of: $0); return s.outputs * s.inputs }.max()!)
        attentionScratch = (0..<max(1, min(workers, c.attentionHeads))).map { _ in buffer(CausalAttentionOp.scratchCount(rows: t)) }
        headScratch = buffer(2 * c.attentionHeads * t * c.headDimension)
        self.owned = owned
    }

    deinit { for p in owned { p.deallocate() } }
}
