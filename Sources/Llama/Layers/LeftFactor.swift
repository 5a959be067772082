import LinearAlgebra

/// The left factor `B` `[outputs × rank]` of a low-rank projection, kept in memory transposed as
/// `Bᵀ` `[rank × outputs]`: the first r′ ranks (an active rank) and one worker's share of them
/// are then contiguous blocks of rows, streamed in order, instead of a strided prefix of every
/// row (which reads whole cache lines of the columns it skips).
public struct LeftFactor: Sendable, Equatable, WeightMapping {
    /// `Bᵀ` `[rank × outputs]`.
    public let transposed: WeightMatrix

    /// - Parameter b: `B` `[outputs × rank]`.
    public init(_ b: Matrix<Float>, precision: WeightPrecision = .float32) {
        var t = [Float](repeating: 0, count: b.rows * b.columns)
        for i in 0..<b.rows { for k in 0..<b.columns { t[k * b.rows + i] = b.storage[i * b.columns + k] } }
        transposed = WeightMatrix(Matrix(rows: b.columns, columns: b.rows, storage: t), precision: precision)
    }

    public init(transposed: WeightMatrix) { self.transposed = transposed }

    public var outputs: Int { transposed.columns }
    public var rank: Int { transposed.rows }
    public var count: Int { transposed.count }
    public var precision: WeightPrecision { transposed.precision }

    /// `B` `[outputs × rank]` as Float32 (what the kernels multiply by).
    public var matrix: Matrix<Float> { prefix(rank: rank) }

    /// The first `r` columns of `B`, `[outputs × r]`.
    public func prefix(rank r: Int) -> Matrix<Float> {
        let t = transposed.matrix
        var out = [Float](repeating: 0, count: outputs * r)
        for i in 0..<outputs { for k in 0..<r { out[i * r + k] = t.storage[k * outputs + i] } }
        return Matrix(rows: outputs, columns: r, storage: out)
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> LeftFactor {
        LeftFactor(transposed: try transform(transposed))
    }

    /// Bytes a product at active rank `r` reads.
    public func byteCount(activeRank r: Int) -> Int { transposed.byteCount(rows: r, columns: outputs) }

    func scratchCount() -> Int { transposed.transposedScratchCount(rows: rank) }

    /// `Bᵀ` as the decode kernels read it (valid while this factor is alive): a worker's share of the
    /// rank is `operand.gemvTransposedRows(rows: ranks, columns: 0..<outputs, …)`, overwriting y.
    var operand: WeightOperand { transposed.operand }

    /// `y[t × outputs] = z[t × r] · B[:, 0..<r]ᵀ`: one row runs the decode kernel over the first r
    /// ranks split by rank blocks (partials summed), more rows run sgemm.
    func multiply(_ z: UnsafePointer<Float>, rows t: Int, ldz: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                  activeRank r: Int, scratch: UnsafeMutablePointer<Float>) {
        if t == 1 {
            transposed.gemvTransposed(rows: 0..<r, x: z, y: y)
            return
        }
        transposed.multiplyTransposed(z, rows: t, ldx: ldz, into: y, ldy: ldy, activeRows: r, scratch: scratch)
    }
}
