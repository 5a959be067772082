import LinearAlgebra

/// The right factor of a low-rank projection: it maps an input `x [inputs]` to `z [rank]`.
public enum RightFactor: Sendable, Equatable, WeightMapping {
    /// `z = A x`, `A` `[rank × inputs]`.
    case plain(WeightMatrix)
    /// SkipCat's block skipping: `z = x_sel + A′ x_rest` (see `SkippedRightFactor`).
    case skipped(SkippedRightFactor)

    public var rank: Int {
        switch self {
        case .plain(let a): a.rows
        case .skipped(let s): s.rank
        }
    }

    public var inputs: Int {
        switch self {
        case .plain(let a): a.columns
        case .skipped(let s): s.inputs
        }
    }

    /// Stored values: `rank · inputs`, or `rank · (inputs − rank)` when skipped (the identity block is
    /// not stored; the channel permutation is bookkeeping, not parameters).
    public var parameterCount: Int {
        switch self {
        case .plain(let a): a.count
        case .skipped(let s): s.remainder.count
        }
    }

    public var precision: WeightPrecision {
        switch self {
        case .plain(let a): a.precision
        case .skipped(let s): s.remainder.precision
        }
    }

    /// Bytes of weights a product at `activeRank` reads.
    public func byteCount(activeRank r: Int) -> Int {
        switch self {
        case .plain(let a): a.byteCount(rows: r, columns: a.columns)
        case .skipped(let s): s.remainder.byteCount(rows: r, columns: s.remainder.columns)
        }
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> RightFactor {
        switch self {
        case .plain(let a): .plain(try transform(a))
        case .skipped(let s): .skipped(try s.mapWeights(transform))
        }
    }

    /// The equivalent dense `[r × inputs]` matrix of the first `r` rows, in the original channel order.
    public func matrix(activeRank r: Int) -> Matrix<Float> {
        switch self {
        case .plain(let a): return a.prefix(rows: r, columns: a.columns)
        case .skipped(let s):
            let rem = s.remainder.matrix
            var out = [Float](repeating: 0, count: r * s.inputs)
            for j in 0..<r {
                out[j * s.inputs + s.selected[j]] = 1
                for (k, channel) in s.rest.enumerated() { out[j * s.inputs + channel] = rem[j, k] }
            }
            return Matrix(rows: r, columns: s.inputs, storage: out)
        }
    }

    /// Floats of gather buffer a skipped factor needs per input row (`inputs − rank`; 0 when plain).
    var gatherCount: Int {
        switch self {
        case .plain: 0
        case .skipped(let s): s.rest.count
        }
    }

    /// Scratch for a batched product of `rows` rows: the gathered inputs and the widened weight.
    func scratchCount(rows t: Int) -> Int {
        switch self {
        case .plain(let a): a.scratchCount(rows: a.rows)
        case .skipped(let s): t * s.rest.count + s.remainder.scratchCount(rows: s.remainder.rows)
        }
    }

    /// The factor as the decode kernels read it (valid while this factor is alive).
    var operand: RightOperand {
        switch self {
        case .plain(let a): RightOperand(weights: a.operand, inputs: a.columns, selected: nil)
        case .skipped(let s):
            RightOperand(weights: s.remainder.operand, inputs: s.remainder.columns, selected: s.selected.withUnsafeBufferPointer { $0.baseAddress })
        }
    }

    /// A few input rows, before a decode region: a skipped factor gathers each row's `x_rest` into
    /// `gathered` `[t × (inputs − rank)]`.
    @inline(__always)
    func prepareRows(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, gathered: UnsafeMutablePointer<Float>) {
        if case .skipped(let s) = self { s.gather(x, rows: t, ldx: ldx, into: gathered) }
    }

    /// `z[t × r] = x[t × inputs] · (first r rows)ᵀ` for any number of rows.
    func multiply(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into z: UnsafeMutablePointer<Float>, ldz: Int,
                  activeRank r: Int, scratch: UnsafeMutablePointer<Float>) {
        switch self {
        case .plain(let a):
            a.multiply(x, rows: t, ldx: ldx, into: z, ldy: ldz, activeRows: r, activeColumns: a.columns, scratch: scratch)
        case .skipped(let s):
            let gathered = scratch, widened = scratch + t * s.rest.count
            s.gather(x, rows: t, ldx: ldx, into: gathered)
            s.remainder.multiply(gathered, rows: t, ldx: s.rest.count, into: z, ldy: ldz, activeRows: r,
                                 activeColumns: s.rest.count, scratch: widened)
            s.selected.withUnsafeBufferPointer { sel in
                for row in 0..<t { for j in 0..<r { z[row * ldz + j] += x[row * ldx + sel[j]] } }
            }
        }
    }
}

/// A right factor as the workers of a decode region read it: a trivial value (see `WeightOperand`),
/// valid while the factor it came from is alive.
struct RightOperand {
    /// `A`, or `A′` when skipped.
    let weights: WeightOperand
    /// The values each row of `weights` multiplies: the inputs, or when skipped the gathered `x_rest`.
    let inputs: Int
    /// When skipped, the channels that pass through, `[rank]` (`z_j = x[selected[j]] + A′_j · x_rest`).
    let selected: UnsafePointer<Int>?

    /// `z[s · ldz + j]` for j in `part` and s < t (row strides `ldx`, `ldz`): one worker's share of
    /// a fused decode region. A skipped factor reads `x_rest` from `gathered` (`prepareRows`).
    @inline(__always)
    func applyRows(_ part: Range<Int>, x: UnsafePointer<Float>, ldx: Int, rows t: Int, gathered: UnsafePointer<Float>,
                   into z: UnsafeMutablePointer<Float>, ldz: Int) {
        guard let selected else {
            weights.gemvRows(part, columns: inputs, x: x, ldx: ldx, rows: t, y: z, ldy: ldz)
            return
        }
        weights.gemvRows(part, columns: inputs, x: gathered, ldx: inputs, rows: t, y: z, ldy: ldz)
        for row in 0..<t { for j in part { z[row * ldz + j] += x[row * ldx + selected[j]] } }
    }
}

/// A right factor `A [r × n]` rewritten so its identity block is never stored or multiplied
/// (SkipCat, `../shared/research/algorithms.md` §7): with `A₁` the r columns `selected` (chosen by
/// pivoted QR) and `A₂` the others, `B·A·x = B′(x_sel + A′ x_rest)` where `B′ = B·A₁` and
/// `A′ = A₁⁻¹A₂`. This type holds `selected`, `rest` and `A′`; `B′` is the left factor.
public struct SkippedRightFactor: Sendable, Equatable, WeightMapping {
    public let inputs: Int
    /// The input channels that pass through unchanged, `[rank]`: `z_j = x[selected[j]] + A′_j · x_rest`.
    public let selected: [Int]
    /// The other channels in ascending order, `[inputs − rank]`.
    public let rest: [Int]
    /// `A′` `[rank × (inputs − rank)]`.
    public let remainder: WeightMatrix

    /// - Precondition: `selected` and `rest` together are a permutation of `0..<inputs`, and
    ///   `remainder` is `[selected.count × rest.count]`.
    public init(inputs: Int, selected: [Int], remainder: WeightMatrix) {
        let chosen = Set(selected)
        precondition(chosen.count == selected.count && selected.allSatisfy { $0 >= 0 && $0 < inputs },
                     "selected channels must be distinct and within 0..<\(inputs)")
        self.inputs = inputs
        self.selected = selected
        rest = (0..<inputs).filter { !chosen.contains($0) }
        precondition(remainder.rows == selected.count && remainder.columns == rest.count,
                     "A′ is [\(remainder.rows) × \(remainder.columns)], expected [\(selected.count) × \(rest.count)]")
        self.remainder = remainder
    }

    public var rank: Int { selected.count }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> SkippedRightFactor {
        SkippedRightFactor(inputs: inputs, selected: selected, remainder: try transform(remainder))
    }

    /// `out[t × (inputs − rank)]` = the `rest` channels of each row of `x`.
    func gather(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into out: UnsafeMutablePointer<Float>) {
        let n = rest.count
        rest.withUnsafeBufferPointer { rest in
            for row in 0..<t {
                let source = x + row * ldx, target = out + row * n
                for k in 0..<n { target[k] = source[rest[k]] }
            }
        }
    }
}
