import LinearAlgebra

/// A rank-r projection `y = left · (right · x)`, `left` `[outputs × rank]`, `right` `[rank × inputs]`
/// (Float32). Cheaper than the dense layer when rank·(outputs + inputs) < outputs·inputs.
public struct LowRankLinear: Sendable, Equatable {
    public let left: Matrix<Float>  // [outputs × rank]
    public let right: Matrix<Float>  // [rank × inputs]

    public init(left: Matrix<Float>, right: Matrix<Float>) {
        precondition(left.columns == right.rows, "left [\(left.rows) × \(left.columns)] and right [\(right.rows) × \(right.columns)] do not chain")
        self.left = left
        self.right = right
    }

    public var outputs: Int { left.rows }
    public var inputs: Int { right.columns }
    public var rank: Int { right.rows }
    public var parameterCount: Int { rank * (outputs + inputs) }

    /// `y[rows × outputs] = (x · rightᵀ) · leftᵀ`, through `scratch` `[rows × rank]`.
    func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
               scratch: UnsafeMutablePointer<Float>) {
        right.storage.withUnsafeBufferPointer { r in
            DenseLinear.multiply(r.baseAddress!, outputs: rank, inputs: inputs, x, rows: rows, ldx: ldx, scratch, ldy: rank)
        }
        left.storage.withUnsafeBufferPointer { l in
            DenseLinear.multiply(l.baseAddress!, outputs: outputs, inputs: rank, scratch, rows: rows, ldx: rank, y, ldy: ldy)
        }
    }
}
