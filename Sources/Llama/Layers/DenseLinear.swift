import LinearAlgebra

/// A full-rank projection `y = W x`, `W` `[outputs × inputs]`.
public struct DenseLinear: Sendable, Equatable, WeightMapping {
    public let weight: WeightMatrix  // [outputs × inputs]

    public init(_ weight: Matrix<Float>, precision: WeightPrecision = .float32) {
        self.weight = WeightMatrix(weight, precision: precision)
    }

    public init(_ weight: WeightMatrix) { self.weight = weight }

    public var outputs: Int { weight.rows }
    public var inputs: Int { weight.columns }
    public var precision: WeightPrecision { weight.precision }
    /// The weight as Float32 (exactly what the kernels multiply by).
    public var matrix: Matrix<Float> { weight.matrix }
    public var parameterCount: Int { weight.count }
    public var byteCount: Int { weight.byteCount(rows: outputs, columns: inputs) }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> DenseLinear { DenseLinear(try transform(weight)) }

    /// `y[rows × outputs] = x[rows × inputs] · Wᵀ`; `scratch` holds `weight.scratchCount(rows: outputs)`
    /// floats when the weight is half precision and `rows > 1`.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                      scratch: UnsafeMutablePointer<Float>) {
        weight.multiply(x, rows: rows, ldx: ldx, into: y, ldy: ldy, activeRows: outputs, activeColumns: inputs, scratch: scratch)
    }
}
