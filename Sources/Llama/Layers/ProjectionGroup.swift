import LinearAlgebra

/// Members of a group that share one right factor: `z = A x` once, then `y_i = B_i z` per member
/// (SkipCat's "Cat": q/k/v or gate/up factorised together). All members run at one active rank.
public struct SharedRightGroup: Sendable, Equatable, WeightMapping {
    public let right: RightFactor  // [rank × inputs]
    public let lefts: [LeftFactor]  // member i: [outputs_i × rank]
    public private(set) var activeRank: Int

    public init(right: RightFactor, lefts: [LeftFactor]) {
        precondition(!lefts.isEmpty && lefts.allSatisfy { $0.rank == right.rank }, "every left block must have \(right.rank) columns")
        self.right = right
        self.lefts = lefts
        activeRank = right.rank
    }

    public var rank: Int { right.rank }
    public var parameterCount: Int { right.parameterCount + lefts.reduce(0) { $0 + $1.count } }
    public var byteCount: Int {
        right.byteCount(activeRank: activeRank) + lefts.reduce(0) { $0 + $1.byteCount(activeRank: activeRank) }
    }

    public var activeParameterCount: Int { byteCount / right.precision.bytesPerValue }

    public mutating func setActiveRank(_ rank: Int) {
        precondition(rank >= 1 && rank <= self.rank, "active rank \(rank) is outside 1...\(self.rank)")
        activeRank = rank
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> SharedRightGroup {
        var out = SharedRightGroup(right: try right.mapWeights(transform), lefts: try lefts.map { try $0.mapWeights(transform) })
        out.activeRank = activeRank
        return out
    }

    /// Member i alone, as a low-rank projection (the same storage: nothing is copied).
    public func member(_ i: Int) -> LowRankLinear {
        var l = LowRankLinear(left: lefts[i], right: right)
        l.setActiveRank(activeRank)
        return l
    }
}

/// The projections that read one input site, applied together: q/k/v (attention input), o,
/// gate/up (MLP input), down. Members are separate (each dense or low-rank) or share one right
/// factor. Decoding one row runs each group in one parallel region (`applyOneRow`), whatever the
/// forms, so a compressed model pays no more synchronisation per token than the dense one.
public struct ProjectionGroup: Sendable, Equatable, WeightMapping {
    public enum Layout: Sendable, Equatable {
        case separate([Linear])
        case sharedRight(SharedRightGroup)
    }

    public let site: InputSite
    public private(set) var layout: Layout

    public init(site: InputSite, layout: Layout) {
        let kinds = site.projections
        switch layout {
        case .separate(let members): precondition(members.count == kinds.count, "\(site) has \(kinds.count) projections")
        case .sharedRight(let shared): precondition(shared.lefts.count == kinds.count, "\(site) has \(kinds.count) projections")
        }
        self.site = site
        self.layout = layout
    }

    /// The projections of the site in order (views of shared storage for a shared group).
    public var members: [Linear] {
        switch layout {
        case .separate(let members): members
        case .sharedRight(let shared): shared.lefts.indices.map { .lowRank(shared.member($0)) }
        }
    }

    /// A member by kind. Setting one member of a shared group splits the group into separate
    /// members (the others keep the shared factors as views).
    public subscript(kind: ProjectionKind) -> Linear {
        get {
            guard let i = site.projections.firstIndex(of: kind) else { preconditionFailure("\(kind) does not read \(site)") }
            return members[i]
        }
        set {
            guard let i = site.projections.firstIndex(of: kind) else { preconditionFailure("\(kind) does not read \(site)") }
            var all = members
            all[i] = newValue
            layout = .separate(all)
        }
    }

    public var parameterCount: Int {
        switch layout {
        case .separate(let members): members.reduce(0) { $0 + $1.parameterCount }
        case .sharedRight(let shared): shared.parameterCount
        }
    }

    /// Bytes of weights read per use (at the active ranks).
    public var byteCount: Int {
        switch layout {
        case .separate(let members): members.reduce(0) { $0 + $1.byteCount }
        case .sharedRight(let shared): shared.byteCount
        }
    }

    /// Parameters one row uses at the active ranks (a basis shared across layers counts in each).
    public var activeParameterCount: Int {
        switch layout {
        case .separate(let members): members.reduce(0) { $0 + $1.activeParameterCount }
        case .sharedRight(let shared): shared.activeParameterCount
        }
    }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> ProjectionGroup {
        switch layout {
        case .separate(let members): ProjectionGroup(site: site, layout: .separate(try members.map { try $0.mapWeights(transform) }))
        case .sharedRight(let shared): ProjectionGroup(site: site, layout: .sharedRight(try shared.mapWeights(transform)))
        }
    }

    /// Runs every low-rank part at `fraction` of its stored rank, rounded up (1 restores it).
    public mutating func setActiveRank(fraction: Double) {
        precondition(fraction > 0 && fraction <= 1, "the active-rank fraction must be in (0, 1]")
        func scaled(_ r: Int) -> Int { max(1, min(r, Int((fraction * Double(r)).rounded(.up)))) }
        switch layout {
        case .separate(let members):
            layout = .separate(members.map { m in
                guard case .lowRank(var l) = m else { return m }
                l.setActiveRank(scaled(l.rank))
                return .lowRank(l)
            })
        case .sharedRight(var shared):
            shared.setActiveRank(scaled(shared.rank))
            layout = .sharedRight(shared)
        }
    }

    /// Floats of scratch `apply` and `applyOneRow` need for `rows` input rows.
    public func scratchCount(rows t: Int) -> Int {
        let partials = max(0, Parallel.workers - 1)
        let fused = min(t, WeightMatrix.smallBatch)  // rows of a fused decode region
        switch layout {
        case .separate(let members):
            // Up to `smallBatch` rows: every low-rank member's z, gathered inputs and the other
            // workers' partial outputs side by side; more rows: one member at a time.
            let few = members.reduce(0) { total, m in
                guard case .lowRank(let l) = m else { return total }
                return total + fused * (l.rank + l.right.gatherCount + partials * l.outputs)
            }
            return max(few, members.map { $0.scratchCount(rows: t) }.max() ?? 0)
        case .sharedRight(let shared):
            let widen = shared.lefts.map { $0.scratchCount() }.max() ?? 0
            let few = fused * (shared.rank + shared.right.gatherCount + partials * shared.lefts.reduce(0) { $0 + $1.outputs })
            return max(t * shared.rank + max(shared.right.scratchCount(rows: t), widen), few)
        }
    }

    /// `outputs[i][rows × outputs_i] = x[rows × inputs] · W_iᵀ` for every member i (row strides
    /// `ldx` and `ldy[i]`). Up to `WeightMatrix.smallBatch` rows (decoding, batched or not) run in one
    /// fused region (`applyRows`); more rows (prefill) run each product over the workers.
    public func apply(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into outputs: [UnsafeMutablePointer<Float>], ldy: [Int],
                      scratch: UnsafeMutablePointer<Float>) {
        if t <= WeightMatrix.smallBatch {
            applyRows(x, rows: t, ldx: ldx, into: outputs, ldy: ldy, scratch: scratch)
            return
        }
        switch layout {
        case .separate(let members):
            let dense = members.compactMap { m -> DenseLinear? in if case .dense(let d) = m { d } else { nil } }
            if dense.count == members.count, members.count > 1 {
                applyDense(dense, x, rows: t, ldx: ldx, into: outputs, ldy: ldy, scratch: scratch)
                return
            }
            for (i, m) in members.enumerated() { m.apply(x, rows: t, ldx: ldx, into: outputs[i], ldy: ldy[i], scratch: scratch) }
        case .sharedRight(let shared):
            let r = shared.activeRank
            let z = scratch, rest = scratch + t * shared.rank
            shared.right.multiply(x, rows: t, ldx: ldx, into: z, ldz: r, activeRank: r, scratch: rest)
            for (i, left) in shared.lefts.enumerated() {
                left.multiply(z, rows: t, ldz: r, into: outputs[i], ldy: ldy[i], activeRank: r, scratch: rest)
            }
        }
    }

    /// Many rows through dense members that read the same input, in one parallel region: the
    /// members' output columns laid end to end (q, k, v: 576 + 192 + 192) are cut into one equal
    /// part per worker, and each worker runs sgemm on the member columns its part covers. Member
    /// by member, k and v (192 columns, below the 2 × 128 a split of one product needs) each ran on one
    /// worker while the others waited, in three regions instead of one. The columns are the same
    /// sums either way: each output is one sgemm dot product over the whole input.
    private func applyDense(_ members: [DenseLinear], _ x: UnsafePointer<Float>, rows t: Int, ldx: Int,
                            into outputs: [UnsafeMutablePointer<Float>], ldy: [Int], scratch: UnsafeMutablePointer<Float>) {
        let total = members.reduce(0) { $0 + $1.outputs }
        let parts = Parallel.partCount(total, minimum: 128)
        let widen = members.map { $0.weight.blockScratchCount(rows: $0.outputs) }.max() ?? 0  // each worker's scratch
        let box = UncheckedSendableBox((members, x, outputs, scratch))  // disjoint output columns and scratch per part
        Parallel.forEach(parts) { p in
            let (members, x, outputs, scratch) = box.value
            let mine = Parallel.part(p, of: parts, count: total)
            var first = 0
            for (i, m) in members.enumerated() {
                let lower = max(mine.lowerBound, first), upper = min(mine.upperBound, first + m.outputs)
                if lower < upper {
                    m.weight.multiplyBlock(x, rows: t, ldx: ldx, into: outputs[i], ldy: ldy[i], block: (lower - first)..<(upper - first),
                                           activeColumns: m.inputs, scratch: scratch + p * widen)
                }
                first += m.outputs
            }
        }
    }

    /// One input row through every member in one parallel region (`applyRows` with one row).
    public func applyOneRow(_ x: UnsafePointer<Float>, into outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        applyRows(x, rows: 1, ldx: 0, into: outputs, ldy: outputs.map { _ in 0 }, scratch: scratch)
    }

    /// A few input rows (t ≤ `WeightMatrix.smallBatch`) through every member in one parallel
    /// region. Worker p computes part p of the rows of every dense member, and for a low-rank member
    /// its share p of the active rank: z_p = A_p x (those rows of the right factor), then B_p z_p
    /// (those columns of the left factor) into its own partial output; the partials are summed
    /// after the region. So the right and left products need no synchronisation between them, and a
    /// compressed group costs one region, as a dense one does. One row runs the one-row decode
    /// kernels; more rows the few-row kernels, which read each weight once for up to four rows.
    func applyRows(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into outputs: [UnsafeMutablePointer<Float>], ldy: [Int],
                   scratch: UnsafeMutablePointer<Float>) {
        let workers = Parallel.workers
        switch layout {
        case .separate(let members):
            // Scratch per low-rank member: z [t × rank], gathered x_rest [t × gather], then
            // (workers − 1) partial outputs [t × outputs].
            var zs: [UnsafeMutablePointer<Float>] = [], gathers: [UnsafeMutablePointer<Float>] = [], partials: [UnsafeMutablePointer<Float>] = []
            var offset = 0, largest = 0
            for m in members {
                switch m {
                case .dense(let d):
                    zs.append(scratch); gathers.append(scratch); partials.append(scratch)
                    largest = max(largest, d.outputs)
                case .lowRank(let l):
                    let z = scratch + offset, gathered = z + t * l.rank
                    zs.append(z)
                    gathers.append(gathered)
                    partials.append(gathered + t * l.right.gatherCount)
                    l.right.prepareRows(x, rows: t, ldx: ldx, gathered: gathered)
                    offset += t * (l.rank + l.right.gatherCount + (workers - 1) * l.outputs)
                    largest = max(largest, l.outputs)
                }
            }
            let parts = Parallel.partCount(largest, minimum: 128)
            let box = UncheckedSendableBox((members, x, outputs, zs, gathers, partials))  // disjoint rows, rank slices and partials per part
            Parallel.forEach(parts) { p in
                let (members, x, outputs, zs, gathers, partials) = box.value
                for (i, m) in members.enumerated() {
                    switch m {
                    case .dense(let d):
                        d.weight.gemvRows(Parallel.part(p, of: parts, count: d.outputs), columns: d.inputs, x: x, ldx: ldx, rows: t,
                                          y: outputs[i], ldy: ldy[i])
                    case .lowRank(let l):
                        let slice = Parallel.part(p, of: parts, count: l.activeRank)
                        l.right.applyRows(slice, x: x, ldx: ldx, rows: t, gathered: gathers[i], into: zs[i], ldz: l.rank)
                        let target = p == 0 ? outputs[i] : partials[i] + (p - 1) * t * l.outputs
                        l.left.applyRows(ranks: slice, z: zs[i], ldz: l.rank, rows: t, into: target, ldy: p == 0 ? ldy[i] : l.outputs)
                    }
                }
            }
            for (i, m) in members.enumerated() {
                guard case .lowRank(let l) = m else { continue }
                for p in 1..<max(1, parts) {
                    for s in 0..<t {
                        VectorMath.add(partials[i] + (p - 1) * t * l.outputs + s * l.outputs, into: outputs[i] + s * ldy[i], count: l.outputs)
                    }
                }
            }
        case .sharedRight(let shared):
            // Scratch: z [t × rank], gathered x_rest [t × gather], then (workers − 1) partial
            // outputs [t × Σ outputs_i] (member i at column offset Σ_{j<i} outputs_j).
            let z = scratch, gathered = scratch + t * shared.rank, partialBase = gathered + t * shared.right.gatherCount
            shared.right.prepareRows(x, rows: t, ldx: ldx, gathered: gathered)
            let total = shared.lefts.reduce(0) { $0 + $1.outputs }
            let r = shared.activeRank, rank = shared.rank
            let parts = Parallel.partCount(max(total, r), minimum: 128)
            let box = UncheckedSendableBox((shared, x, outputs, z, gathered, partialBase))  // disjoint rank slices and partials per part
            Parallel.forEach(parts) { p in
                let (shared, x, outputs, z, gathered, partialBase) = box.value
                let slice = Parallel.part(p, of: parts, count: r)
                shared.right.applyRows(slice, x: x, ldx: ldx, rows: t, gathered: gathered, into: z, ldz: rank)
                var column = 0
                for (i, left) in shared.lefts.enumerated() {
                    if p == 0 {
                        left.applyRows(ranks: slice, z: z, ldz: rank, rows: t, into: outputs[i], ldy: ldy[i])
                    } else {
                        left.applyRows(ranks: slice, z: z, ldz: rank, rows: t, into: partialBase + (p - 1) * t * total + column, ldy: total)
                    }
                    column += left.outputs
                }
            }
            var column = 0
            for (i, left) in shared.lefts.enumerated() {
                for p in 1..<max(1, parts) {
                    for s in 0..<t {
                        VectorMath.add(partialBase + (p - 1) * t * total + s * total + column, into: outputs[i] + s * ldy[i], count: left.outputs)
                    }
                }
                column += left.outputs
            }
        }
    }
}
