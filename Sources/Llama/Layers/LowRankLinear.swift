import LinearAlgebra

/// Which projections share one basis across consecutive layers (Basis Sharing): the right factor
/// `[rank × inputs]` of `kind` for `layers` (input side, as Basis Sharing's code: the basis maps
/// d_in → k, each layer keeps its own coefficients k → d_out).
public struct SharedBasisID: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var kind: ProjectionKind
    public var layers: Range<Int>

    public init(kind: ProjectionKind, layers: Range<Int>) {
        self.kind = kind
        self.layers = layers
    }

    public var description: String { "\(kind.shortName) of layers \(layers.lowerBound)–\(layers.upperBound - 1)" }

    public static func < (a: SharedBasisID, b: SharedBasisID) -> Bool {
        (a.kind, a.layers.lowerBound) < (b.kind, b.layers.lowerBound)
    }
}

/// A rank-r projection `y = left · (right · x)`, `left` `[outputs × rank]`, `right` `[rank × inputs]`.
/// It runs at an `activeRank` r′ ≤ r: the first r′ rows of the right factor and of Bᵀ (the left
/// factor as kept in memory), read in place (no copy), so r′ can change between tokens.
public struct LowRankLinear: Sendable, Equatable, WeightMapping {
    public let left: LeftFactor  // B [outputs × rank], kept as Bᵀ
    public let right: RightFactor  // [rank × inputs]
    /// Set when `right` is a basis shared with the same projection of other layers (its storage is
    /// shared too; the checkpoint stores it once).
    public let basis: SharedBasisID?
    public private(set) var activeRank: Int

    public init(left: LeftFactor, right: RightFactor, basis: SharedBasisID? = nil) {
        precondition(left.rank == right.rank, "left [\(left.outputs) × \(left.rank)] and right [\(right.rank) × \(right.inputs)] do not chain")
        self.left = left
        self.right = right
        self.basis = basis
        activeRank = right.rank
    }

    /// Plain Float32 factors (the form compression produces).
    public init(left: Matrix<Float>, right: Matrix<Float>, precision: WeightPrecision = .float32) {
        self.init(left: LeftFactor(left, precision: precision), right: .plain(WeightMatrix(right, precision: precision)))
    }

    public var outputs: Int { left.outputs }
    public var inputs: Int { right.inputs }
    /// The stored rank.
    public var rank: Int { right.rank }
    public var precision: WeightPrecision { left.precision }
    /// Stored parameters: `rank·(outputs + inputs)`, less the skipped identity block when skipped.
    public var parameterCount: Int { left.count + right.parameterCount }
    /// Bytes of weights read per use at the active rank.
    public var byteCount: Int { right.byteCount(activeRank: activeRank) + left.byteCount(activeRank: activeRank) }
    /// Parameters a product at the active rank uses (both factors share one precision).
    public var activeParameterCount: Int { byteCount / precision.bytesPerValue }

    /// Runs the first `rank` rows/columns (1 ≤ rank ≤ the stored rank).
    public mutating func setActiveRank(_ rank: Int) {
        precondition(rank >= 1 && rank <= self.rank, "active rank \(rank) is outside 1...\(self.rank)")
        activeRank = rank
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> LowRankLinear {
        var out = LowRankLinear(left: try left.mapWeights(transform), right: try right.mapWeights(transform), basis: basis)
        out.activeRank = activeRank
        return out
    }

    /// The product `left[:, 0..<r′] · right[0..<r′, :]` as a dense `[outputs × inputs]` matrix.
    public var reconstruction: Matrix<Float> {
        let r = activeRank
        let b = left.prefix(rank: r), a = right.matrix(activeRank: r)
        var out = [Float](repeating: 0, count: outputs * inputs)
        for i in 0..<outputs { for k in 0..<r { let v = b[i, k]; for j in 0..<inputs { out[i * inputs + j] += v * a[k, j] } } }
        return Matrix(rows: outputs, columns: inputs, storage: out)
    }

    /// `y[rows × outputs] = (x · rightᵀ) · leftᵀ` at the active rank, through `scratch`
    /// (`scratchCount(rows:)` floats: the `[rows × r]` intermediate, then the right factor's needs).
    func apply(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
               scratch: UnsafeMutablePointer<Float>) {
        let r = activeRank
        let z = scratch, rest = scratch + t * rank
        right.multiply(x, rows: t, ldx: ldx, into: z, ldz: r, activeRank: r, scratch: rest)
        left.multiply(z, rows: t, ldz: r, into: y, ldy: ldy, activeRank: r, scratch: rest)
    }

    func scratchCount(rows t: Int) -> Int {
        t * rank + max(right.scratchCount(rows: t), left.scratchCount())
    }
}
