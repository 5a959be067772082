import LinearAlgebra

/// Members of a group that share one right factor: `z = A x` once, then `y_i = B_i z` per member
/// (SkipCat's "Cat": q/k/v or gate/up factorised together). All members run at one active rank.
public struct SharedRightGroup: Sendable, Equatable {
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

    public func converted(to precision: WeightPrecision) -> SharedRightGroup {
        var out = SharedRightGroup(right: right.converted(to: precision), lefts: lefts.map { $0.converted(to: precision) })
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
public struct ProjectionGroup: Sendable, Equatable {
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

    public func converted(to precision: WeightPrecision) -> ProjectionGroup {
        switch layout {
        case .separate(let members): ProjectionGroup(site: site, layout: .separate(members.map { $0.converted(to: precision) }))
        case .sharedRight(let shared): ProjectionGroup(site: site, layout: .sharedRight(shared.converted(to: precision)))
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
        switch layout {
        case .separate(let members):
            // One row: every low-rank member's z, gathered input and the other workers' partial
            // outputs side by side; more rows: one member at a time.
            let oneRow = members.reduce(0) { total, m in
                guard case .lowRank(let l) = m else { return total }
                return total + l.rank + l.right.gatherCount + partials * l.outputs
            }
            return max(oneRow, members.map { $0.scratchCount(rows: t) }.max() ?? 0)
        case .sharedRight(let shared):
            let widen = shared.lefts.map { $0.scratchCount() }.max() ?? 0
            let oneRow = shared.rank + shared.right.gatherCount + partials * shared.lefts.reduce(0) { $0 + $1.outputs }
            return max(t * shared.rank + max(shared.right.scratchCount(rows: t), widen), oneRow)
        }
    }

    /// `outputs[i][rows × outputs_i] = x[rows × inputs] · W_iᵀ` for every member i (row strides
    /// `ldx` and `ldy[i]`).
    public func apply(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into outputs: [UnsafeMutablePointer<Float>], ldy: [Int],
                      scratch: UnsafeMutablePointer<Float>) {
        if t == 1 {
            applyOneRow(x, into: outputs, scratch: scratch)
            return
        }
        switch layout {
        case .separate(let members) where t <= WeightMatrix.smallBatch && members.count > 1 && members.allSatisfy({ $0.lowRank == nil }):
            // A few rows of dense members (batched decoding): one region for the whole group, as
            // `applyOneRow`; each worker streams its rows of every weight in L2-sized blocks, once for all t rows.
            let largest = members.map(\.outputs).max() ?? 0
            let parts = Parallel.partCount(largest, minimum: 128)
            let box = UncheckedSendableBox((members, x, outputs))  // disjoint output rows per part
            Parallel.forEach(parts) { p in
                let (members, x, outputs) = box.value
                for (i, member) in members.enumerated() {
                    guard case .dense(let d) = member else { continue }
                    let part = Parallel.part(p, of: parts, count: d.outputs)
                    let block = max(8, WeightMatrix.blockBytes / max(1, d.inputs * d.precision.bytesPerValue))
                    var start = part.lowerBound
                    while start < part.upperBound {
                        let rows = start..<min(part.upperBound, start + block)
                        for r in 0..<t { d.weight.gemvRows(rows, columns: d.inputs, x: x + r * ldx, y: outputs[i] + r * ldy[i]) }
                        start = rows.upperBound
                    }
                }
            }
        case .separate(let members):
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

    /// One input row through every member in one parallel region. Worker p computes part p of
    /// the rows of every dense member, and for a low-rank member its share p of the active rank:
    /// z_p = A_p x (those rows of the right factor), then B_p z_p (those columns of the left
    /// factor) into its own partial output; the partials are summed after the region. So the
    /// right and left products need no synchronisation between them, and a compressed group costs
    /// one region, as a dense one does.
    public func applyOneRow(_ x: UnsafePointer<Float>, into outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        let workers = Parallel.workers
        switch layout {
        case .separate(let members):
            // Scratch per low-rank member: z [rank], gathered x_rest, then (workers − 1) partial outputs.
            var zs: [UnsafeMutablePointer<Float>] = [], gathers: [UnsafeMutablePointer<Float>] = [], partials: [UnsafeMutablePointer<Float>] = []
            var offset = 0, largest = 0
            for m in members {
                switch m {
                case .dense(let d):
                    zs.append(scratch); gathers.append(scratch); partials.append(scratch)
                    largest = max(largest, d.outputs)
                case .lowRank(let l):
                    zs.append(scratch + offset)
                    gathers.append(scratch + offset + l.rank)
                    partials.append(scratch + offset + l.rank + l.right.gatherCount)
                    l.right.prepareOneRow(x, gathered: scratch + offset + l.rank)
                    offset += l.rank + l.right.gatherCount + (workers - 1) * l.outputs
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
                        d.weight.gemvRows(Parallel.part(p, of: parts, count: d.outputs), columns: d.inputs, x: x, y: outputs[i])
                    case .lowRank(let l):
                        let slice = Parallel.part(p, of: parts, count: l.activeRank)
                        l.right.applyOneRow(slice, x: x, gathered: gathers[i], into: zs[i])
                        let target = p == 0 ? outputs[i] : partials[i] + (p - 1) * l.outputs
                        l.left.applyOneRow(ranks: slice, z: zs[i], into: target)
                    }
                }
            }
            for (i, m) in members.enumerated() {
                guard case .lowRank(let l) = m else { continue }
                for p in 1..<max(1, parts) { VectorMath.add(partials[i] + (p - 1) * l.outputs, into: outputs[i], count: l.outputs) }
            }
        case .sharedRight(let shared):
            let z = scratch, gathered = scratch + shared.rank, partialBase = gathered + shared.right.gatherCount
            shared.right.prepareOneRow(x, gathered: gathered)
            let total = shared.lefts.reduce(0) { $0 + $1.outputs }
            let r = shared.activeRank
            let parts = Parallel.partCount(max(total, r), minimum: 128)
            let box = UncheckedSendableBox((shared, x, outputs, z, gathered, partialBase))  // disjoint rank slices and partials per part
            Parallel.forEach(parts) { p in
                let (shared, x, outputs, z, gathered, partialBase) = box.value
                let slice = Parallel.part(p, of: parts, count: r)
                shared.right.applyOneRow(slice, x: x, gathered: gathered, into: z)
                var row = 0
                for (i, left) in shared.lefts.enumerated() {
                    let target = p == 0 ? outputs[i] : partialBase + (p - 1) * total + row
                    left.applyOneRow(ranks: slice, z: z, into: target)
                    row += left.outputs
                }
            }
            var row = 0
            for (i, left) in shared.lefts.enumerated() {
                for p in 1..<max(1, parts) { VectorMath.add(partialBase + (p - 1) * total + row, into: outputs[i], count: left.outputs) }
                row += left.outputs
            }
        }
    }
}
