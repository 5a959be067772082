import LinearAlgebra

/// How a dense weight is kept in memory. Computation is always Float32; half-precision storage
/// halves the bytes read per decoded token (decode is memory-bound).
public enum WeightPrecision: String, Sendable, Codable, CaseIterable {
    case float32 = "f32"
    case float16 = "f16"
    case bfloat16 = "bf16"
}

/// A full-rank projection `y = W x`, `W` `[outputs × inputs]`.
public struct DenseLinear: Sendable, Equatable {
    public let outputs: Int
    public let inputs: Int
    public let precision: WeightPrecision
    /// Row-major `[outputs × inputs]`; exactly one of the two is non-empty.
    let float32: [Float]
    let half: [UInt16]

    public init(_ weight: Matrix<Float>, precision: WeightPrecision = .float32) {
        outputs = weight.rows
        inputs = weight.columns
        self.precision = precision
        switch precision {
        case .float32:
            float32 = weight.storage
            half = []
        case .float16:
            float32 = []
            half = weight.storage.map { Float16($0).bitPattern }
        case .bfloat16:
            float32 = []
            half = weight.storage.map(HalfPrecision.bfloat16Bits)
        }
    }

    /// The weight as Float32 (exactly what the kernels multiply by).
    public var matrix: Matrix<Float> {
        switch precision {
        case .float32: return Matrix(rows: outputs, columns: inputs, storage: float32)
        case .float16, .bfloat16:
            var out = [Float](repeating: 0, count: outputs * inputs)
            out.withUnsafeMutableBufferPointer { o in
                half.withUnsafeBufferPointer { h in DecodeKernels.widen(h.baseAddress!, format: precision.halfFormat!, count: h.count, into: o.baseAddress!) }
            }
            return Matrix(rows: outputs, columns: inputs, storage: out)
        }
    }

    public var parameterCount: Int { outputs * inputs }
    public var byteCount: Int { precision == .float32 ? 4 * parameterCount : 2 * parameterCount }

    /// `y[rows × outputs] = x[rows × inputs] · Wᵀ`. `scratch` must hold `outputs · inputs` floats
    /// when the weight is half precision and `rows > 1` (the weight is widened once, then sgemm).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      scratch: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32:
            float32.withUnsafeBufferPointer { w in
                Self.multiply(w.baseAddress!, outputs: outputs, inputs: inputs, x, rows: rows, ldx: ldx, y, ldy: ldy)
            }
        case .float16, .bfloat16:
            half.withUnsafeBufferPointer { h in
                let format = precision.halfFormat!
                if rows == 1 {
                    let parts = Parallel.partCount(outputs, minimum: 256)
                    let box = UncheckedSendableBox((h.baseAddress!, x, y))  // disjoint rows of y per part
                    Parallel.forEach(parts) { p in
                        let (w, x, y) = box.value
                        DecodeKernels.gemv(w, format: format, inputs: inputs, rows: Parallel.part(p, of: parts, count: outputs), x: x, y: y)
                    }
                } else {
                    DecodeKernels.widen(h.baseAddress!, format: format, count: outputs * inputs, into: scratch)
                    Self.multiply(scratch, outputs: outputs, inputs: inputs, x, rows: rows, ldx: ldx, y, ldy: ldy)
                }
            }
        }
    }

    /// Rows `part` of `y = W x` for one input row (part of a fused decode region).
    @inline(__always)
    func applyOneRow(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows part: Range<Int>) {
        switch precision {
        case .float32:
            float32.withUnsafeBufferPointer { DecodeKernels.gemv($0.baseAddress!, inputs: inputs, rows: part, x: x, y: y) }
        case .float16, .bfloat16:
            half.withUnsafeBufferPointer {
                DecodeKernels.gemv($0.baseAddress!, format: precision.halfFormat!, inputs: inputs, rows: part, x: x, y: y)
            }
        }
    }

    /// Float32 product, split by output columns across the workers when there is enough work.
    static func multiply(_ w: UnsafePointer<Float>, outputs: Int, inputs: Int,
                         _ x: UnsafePointer<Float>, rows: Int, ldx: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int) {
        if rows == 1 {
            // Memory-bound: both cores stream parts of W, handed out dynamically.
            let parts = Parallel.partCount(outputs, minimum: 256)
            let box = UncheckedSendableBox((w, x, y))  // each part writes a disjoint slice of y
            Parallel.forEach(parts) { p in
                let (w, x, y) = box.value
                DecodeKernels.gemv(w, inputs: inputs, rows: Parallel.part(p, of: parts, count: outputs), x: x, y: y)
            }
            return
        }
        let parts = Parallel.partCount(outputs, minimum: 128)
        let box = UncheckedSendableBox((w, x, y))  // disjoint column blocks of y
        Parallel.forEach(parts) { p in
            let (w, x, y) = box.value
            let r = Parallel.part(p, of: parts, count: outputs)
            BLAS.gemmNT(m: rows, n: r.count, k: inputs, a: x, lda: ldx, b: w + r.lowerBound * inputs, ldb: inputs,
                        c: y + r.lowerBound, ldc: ldy)
        }
    }
}

/// The layer kinds a projection can take. Compression adds low-rank forms here; the model code
/// only calls `apply`.
public enum Linear: Sendable, Equatable {
    case dense(DenseLinear)
    case lowRank(LowRankLinear)

    public var outputs: Int {
        switch self {
        case .dense(let d): d.outputs
        case .lowRank(let l): l.outputs
        }
    }

    public var inputs: Int {
        switch self {
        case .dense(let d): d.inputs
        case .lowRank(let l): l.inputs
        }
    }

    public var parameterCount: Int {
        switch self {
        case .dense(let d): d.parameterCount
        case .lowRank(let l): l.parameterCount
        }
    }

    /// Bytes of weights read per use.
    public var byteCount: Int {
        switch self {
        case .dense(let d): d.byteCount
        case .lowRank(let l): 4 * l.parameterCount
        }
    }

    /// Floats of scratch `apply` may need for `rows` input rows.
    public func scratchCount(rows: Int) -> Int {
        switch self {
        case .dense(let d): d.precision == .float32 ? 0 : d.parameterCount
        case .lowRank(let l): rows * l.rank
        }
    }

    /// One input row through up to three projections that read it (q/k/v, gate/up) in a single
    /// parallel region: worker p computes part p of every output, so decoding pays one
    /// synchronisation per group instead of one per projection.
    public static func applyOneRow(_ x: UnsafePointer<Float>,
                                   _ a: Linear, into ya: UnsafeMutablePointer<Float>,
                                   _ b: Linear, into yb: UnsafeMutablePointer<Float>,
                                   _ c: Linear? = nil, into yc: UnsafeMutablePointer<Float>? = nil,
                                   scratch: UnsafeMutablePointer<Float>) {
        let dc: DenseLinear? = if case .dense(let d)? = c { d } else { nil }
        guard case .dense(let da) = a, case .dense(let db) = b, c == nil || dc != nil else {
            // Not all dense: one region per layer.
            a.apply(x, rows: 1, ldx: a.inputs, into: ya, ldy: a.outputs, scratch: scratch)
            b.apply(x, rows: 1, ldx: b.inputs, into: yb, ldy: b.outputs, scratch: scratch)
            if let c, let yc { c.apply(x, rows: 1, ldx: c.inputs, into: yc, ldy: c.outputs, scratch: scratch) }
            return
        }
        let parts = Parallel.partCount(da.outputs, minimum: 128)
        let box = UncheckedSendableBox((x, ya, yb, yc))  // each part writes disjoint rows of each output
        Parallel.forEach(parts) { p in
            let (x, ya, yb, yc) = box.value
            da.applyOneRow(x, into: ya, rows: Parallel.part(p, of: parts, count: da.outputs))
            db.applyOneRow(x, into: yb, rows: Parallel.part(p, of: parts, count: db.outputs))
            if let dc, let yc { dc.applyOneRow(x, into: yc, rows: Parallel.part(p, of: parts, count: dc.outputs)) }
        }
    }

    /// `y[rows × outputs] = x[rows × inputs] · Wᵀ` (row strides `ldx`, `ldy`).
    @inline(__always)
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      scratch: UnsafeMutablePointer<Float>) {
        switch self {
        case .dense(let d): d.apply(x, rows: rows, ldx: ldx, into: y, ldy: ldy, scratch: scratch)
        case .lowRank(let l): l.apply(x, rows: rows, ldx: ldx, into: y, ldy: ldy, scratch: scratch)
        }
    }
}
