import LinearAlgebra

/// Every activation buffer a forward pass needs, allocated once for up to `rows` tokens per call
/// and a cache of `contextCapacity` positions, then reused (no allocation per token).
public final class Workspace: @unchecked Sendable {
    public let rows: Int
    public let contextCapacity: Int
    /// `Parallel.workers` when the buffers were sized: per-worker scratch (partial outputs of the
    /// groups, attention states) would overflow if the worker count were raised later.
    public let workers: Int
    /// Query rows per attention block: bounds the score buffers to `[block × context]` per worker.
    /// A block scores every key its last row sees, so its earlier rows compute masked scores:
    /// 64-row blocks waste far less of a 512-token prefill's attention than 256-row ones did, and
    /// give the workers more, smaller units to balance (docs/BENCHMARKS.md, "Prefill: one region
    /// per dense group").
    public static let attentionBlock = 64

    let hidden: UnsafeMutablePointer<Float>  // [rows × hidden] residual stream
    let normed: UnsafeMutablePointer<Float>  // [rows × hidden]
    let query: UnsafeMutablePointer<Float>  // [rows × heads·d]
    let attention: UnsafeMutablePointer<Float>  // [rows × heads·d]
    let gate: UnsafeMutablePointer<Float>  // [rows × intermediate]
    let up: UnsafeMutablePointer<Float>  // [rows × intermediate]
    /// Keys and values of a pass's rows (or of a batched step's sequences) `[rows × kvHeads·d]`, as
    /// the projections write them, before `KVCache.write` stores them head-major.
    let newKeys: UnsafeMutablePointer<Float>
    let newValues: UnsafeMutablePointer<Float>
    let scores: [UnsafeMutablePointer<Float>]  // per worker [block × context]
    let scratch: UnsafeMutablePointer<Float>
    let scratchCount: Int
    let rotary: RotaryTable
    private var owned: [UnsafeMutablePointer<Float>] = []

    /// The residual stream `[rows × hidden]`: `embed` writes it, `forwardLayer` updates it in place
    /// (layer-by-layer calibration saves and restores it between layers).
    public var residualStream: UnsafeMutablePointer<Float> { hidden }

    public init(model: LlamaModel, rows: Int, contextCapacity: Int) {
        let c = model.configuration
        self.rows = rows
        self.contextCapacity = contextCapacity
        self.workers = Parallel.workers
        func buffer(_ n: Int) -> UnsafeMutablePointer<Float> { AlignedAllocation.floats(n) }
        hidden = buffer(rows * c.hiddenSize)
        normed = buffer(rows * c.hiddenSize)
        query = buffer(rows * c.queryWidth)
        attention = buffer(rows * c.queryWidth)
        gate = buffer(rows * c.intermediateSize)
        up = buffer(rows * c.intermediateSize)
        newKeys = buffer(rows * c.keyValueWidth)
        newValues = buffer(rows * c.keyValueWidth)
        let workers = max(1, min(Parallel.workers, c.attentionHeads))
        // Per worker: a block of scores; or, decoding, the state of its share of the positions
        // (`LlamaModel.attendOne`: scaled queries, weighted values, maxima, sums, a group's scores).
        let group = c.attentionHeads / c.keyValueHeads
        let decoding = 2 * c.attentionHeads * (c.headDimension + 1) + group * contextCapacity
        scores = (0..<workers).map { _ in buffer(max(min(rows, Self.attentionBlock) * contextCapacity, decoding)) }
        scratchCount = model.scratchCount(rows: rows)
        scratch = buffer(scratchCount)
        owned = [hidden, normed, query, attention, gate, up, newKeys, newValues, scratch] + scores
        rotary = RotaryTable(configuration: c, positions: contextCapacity)
    }

    deinit { for p in owned { AlignedAllocation.deallocate(p) } }

    /// Moves final-normed rows `rows` (ascending, after a forward pass) to rows `0..<rows.count`, so
    /// the output head runs on just those (`LlamaModel.logits(workspace:rows: 0..<rows.count)`).
    public func gatherFinalRows(_ rows: [Int], width: Int) {
        for (k, r) in rows.enumerated() {
            precondition(r >= k && r < self.rows && (k == 0 || r > rows[k - 1]), "rows to gather must be ascending and distinct")
            if r != k { (normed + k * width).update(from: normed + r * width, count: width) }
        }
    }

    /// The final-normed hidden state of row `r` (after `forward`), `[hidden]`.
    public func finalHidden(row r: Int, width: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: normed + r * width, count: width)
    }
}

/// cos/sin of RoPE angles for positions `0..<positions`, `[positions × d/2]` each, computed as
/// Hugging Face does in Float32: inv_freq_i = 1 / θ^(2i/d), angle = position · inv_freq_i.
/// Public so the backward pass (`Gradients`) rotates by exactly the angles inference uses.
public final class RotaryTable: @unchecked Sendable {
    public let half: Int
    public let positions: Int
    public let cos: [Float]
    public let sin: [Float]

    public init(configuration c: LlamaConfiguration, positions: Int) {
        half = c.headDimension / 2
        self.positions = positions
        let inverse: [Float] = (0..<half).map { i in
            1 / Float_pow(c.ropeTheta, Float(2 * i) / Float(c.headDimension))
        }
        var cosines = [Float](repeating: 0, count: positions * half)
        var sines = cosines
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Float(p) * inverse[i]
                cosines[p * half + i] = Float_cos(angle)
                sines[p * half + i] = Float_sin(angle)
            }
        }
        cos = cosines
        sin = sines
    }

    /// Rotate-half RoPE in place on `[rows × heads·d]` at positions `firstPosition…`: within each
    /// head, (x_i, x_{i+d/2}) is rotated by position · inv_freq_i; `inverse` rotates by the opposite
    /// angle (the transpose: RoPE's backward).
    @inline(__always)
    public func rotate(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, firstPosition: Int, inverse: Bool = false) {
        let d = 2 * half
        let width = heads * d
        let sign: Float = inverse ? -1 : 1
        precondition(firstPosition + rows <= positions, "positions up to \(firstPosition + rows) exceed the rotary table (\(positions))")
        cos.withUnsafeBufferPointer { cosines in
            sin.withUnsafeBufferPointer { sines in
                for r in 0..<rows {
                    let cs = cosines.baseAddress! + (firstPosition + r) * half
                    let sn = sines.baseAddress! + (firstPosition + r) * half
                    for head in 0..<heads {
                        let v = x + r * width + head * d
                        for i in 0..<half {
                            let a = v[i], b = v[i + half], s = sign * sn[i]
                            v[i] = a * cs[i] - b * s
                            v[i + half] = b * cs[i] + a * s
                        }
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Float_pow(_ a: Float, _ b: Float) -> Float { powf(a, b) }
@inline(__always) func Float_cos(_ a: Float) -> Float { cosf(a) }
@inline(__always) func Float_sin(_ a: Float) -> Float { sinf(a) }
#endif
