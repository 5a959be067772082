import LinearAlgebra

/// The forms one projection can take. The model code applies projections through their
/// `ProjectionGroup`; this type is one member of a group.
public enum Linear: Sendable, Equatable, WeightMapping {
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

    /// Stored parameters.
    public var parameterCount: Int {
        switch self {
        case .dense(let d): d.parameterCount
        case .lowRank(let l): l.parameterCount
        }
    }

    /// Parameters one product uses: all of a dense weight, a low-rank one's at its active rank.
    public var activeParameterCount: Int {
        switch self {
        case .dense(let d): d.parameterCount
        case .lowRank(let l): l.activeParameterCount
        }
    }

    /// Bytes of weights read per use (at the active rank).
    public var byteCount: Int {
        switch self {
        case .dense(let d): d.byteCount
        case .lowRank(let l): l.byteCount
        }
    }

    public var lowRank: LowRankLinear? {
        if case .lowRank(let l) = self { l } else { nil }
    }

    /// The equivalent dense `[outputs × inputs]` weight (at the active rank).
    public var reconstruction: Matrix<Float> {
        switch self {
        case .dense(let d): d.matrix
        case .lowRank(let l): l.reconstruction
        }
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> Linear {
        switch self {
        case .dense(let d): .dense(try d.mapWeights(transform))
        case .lowRank(let l): .lowRank(try l.mapWeights(transform))
        }
    }

    /// Floats of scratch `apply` may need for `rows` input rows.
    public func scratchCount(rows: Int) -> Int {
        switch self {
        case .dense(let d): d.weight.scratchCount(rows: d.outputs)
        case .lowRank(let l): l.scratchCount(rows: rows)
        }
    }

    /// `y[rows × outputs] = x[rows × inputs] · Wᵀ` (row strides `ldx`, `ldy`), on its own.
    @inline(__always)
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      scratch: UnsafeMutablePointer<Float>) {
        switch self {
        case .dense(let d): d.apply(x, rows: rows, ldx: ldx, into: y, ldy: ldy, scratch: scratch)
        case .lowRank(let l): l.apply(x, rows: rows, ldx: ldx, into: y, ldy: ldy, scratch: scratch)
        }
    }
}
