import LinearAlgebra

/// Members of a group that share one right factor: `z = A x` once, then `y_i = B_i z` per member
/// (SkipCat's "Cat": q/k/v or gate/up factorised together). All members run at one active rank.
public struct SharedRightGroup: Sendable, Equatable {
    public let right: RightFactor  // [rank × inputs]
    public let lefts: [WeightMatrix]  // member i: [outputs_i × rank]
    public private(set) var activeRank: Int

    public init(right: RightFactor, lefts: [WeightMatrix]) {
        precondition(!lefts.isEmpty && lefts.allSatisfy { $0.columns == right.rank }, "every left block must have \(right.rank) columns")
        self.right = right
        self.lefts = lefts
        activeRank = right.rank
    }

    public var rank: Int { right.rank }
    public var parameterCount: Int { right.parameterCount + lefts.reduce(0) { $0 + $1.count } }
    public var byteCount: Int {
        right.byteCount(activeRank: activeRank) + lefts.reduce(0) { $0 + $1.byteCount(rows: $1.rows, columns: activeRank) }
    }

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
/// factor. Decoding one row runs each group in at most two parallel regions (right factors and
/// dense members, then left factors), whatever the forms, so a compressed model pays no more
/// synchronisation per projection than the dense one.
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
        switch layout {
        case .separate(let members):
            // One row: every low-rank member's z and gathered input side by side; more rows: one
            // member at a time.
            let oneRow = members.reduce(0) { total, m in
                guard case .lowRank(let l) = m else { return total }
                return total + l.rank + l.right.gatherCount
            }
            return max(oneRow, members.map { $0.scratchCount(rows: t) }.max() ?? 0)
        case .sharedRight(let shared):
            let widen = shared.lefts.map { $0.scratchCount(rows: $0.rows) }.max() ?? 0
            return t * shared.rank + max(shared.right.scratchCount(rows: t), widen, shared.right.gatherCount)
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
        case .separate(let members):
            for (i, m) in members.enumerated() { m.apply(x, rows: t, ldx: ldx, into: outputs[i], ldy: ldy[i], scratch: scratch) }
        case .sharedRight(let shared):
            let r = shared.activeRank
            let z = scratch, rest = scratch + t * shared.rank
            shared.right.multiply(x, rows: t, ldx: ldx, into: z, ldz: r, activeRank: r, scratch: rest)
            for (i, left) in shared.lefts.enumerated() {
                left.multiply(z, rows: t, ldx: r, into: outputs[i], ldy: ldy[i], activeRows: left.rows, activeColumns: r, scratch: rest)
            }
        }
    }

    /// One input row through every member in at most two parallel regions: worker p computes part
    /// p of every dense output and of every right factor's z, then part p of every left product.
    public func applyOneRow(_ x: UnsafePointer<Float>, into outputs: [UnsafeMutablePointer<Float>], scratch: UnsafeMutablePointer<Float>) {
        switch layout {
        case .separate(let members):
            // Lay out each low-rank member's z and gathered input in the scratch.
            var zs: [UnsafeMutablePointer<Float>?] = []
            var gathers: [UnsafeMutablePointer<Float>] = []
            var offset = 0
            var largest = 0
            var anyLowRank = false
            for m in members {
                switch m {
                case .dense(let d):
                    zs.append(nil)
                    gathers.append(scratch)
                    largest = max(largest, d.outputs)
                case .lowRank(let l):
                    anyLowRank = true
                    zs.append(scratch + offset)
                    gathers.append(scratch + offset + l.rank)
                    l.right.prepareOneRow(x, gathered: scratch + offset + l.rank)
                    offset += l.rank + l.right.gatherCount
                    largest = max(largest, l.outputs)
                }
            }
            let parts = Parallel.partCount(largest, minimum: 128)
            let box = UncheckedSendableBox((members, x, outputs, zs, gathers))  // each part writes disjoint rows of each output and z
            Parallel.forEach(parts) { p in
                let (members, x, outputs, zs, gathers) = box.value
                for (i, m) in members.enumerated() {
                    switch m {
                    case .dense(let d):
                        d.weight.gemvRows(Parallel.part(p, of: parts, count: d.outputs), columns: d.inputs, x: x, y: outputs[i])
                    case .lowRank(let l):
                        l.right.applyOneRow(Parallel.part(p, of: parts, count: l.activeRank), x: x, gathered: gathers[i], into: zs[i]!)
                    }
                }
            }
            guard anyLowRank else { return }
            Parallel.forEach(parts) { p in
                let (members, _, outputs, zs, _) = box.value
                for (i, m) in members.enumerated() {
                    guard case .lowRank(let l) = m else { continue }
                    l.left.gemvRows(Parallel.part(p, of: parts, count: l.outputs), columns: l.activeRank, x: zs[i]!, y: outputs[i])
                }
            }
        case .sharedRight(let shared):
            let z = scratch, gathered = scratch + shared.rank
            shared.right.prepareOneRow(x, gathered: gathered)
            let r = shared.activeRank
            let largest = shared.lefts.map(\.rows).max() ?? 0
            let parts = Parallel.partCount(max(largest, r), minimum: 128)
            let box = UncheckedSendableBox((shared, x, outputs, z, gathered))  // disjoint rows of z, then of each output
            Parallel.forEach(parts) { p in
                let (shared, x, _, z, gathered) = box.value
                shared.right.applyOneRow(Parallel.part(p, of: parts, count: r), x: x, gathered: gathered, into: z)
            }
            Parallel.forEach(parts) { p in
                let (shared, _, outputs, z, _) = box.value
                for (i, left) in shared.lefts.enumerated() {
                    left.gemvRows(Parallel.part(p, of: parts, count: left.rows), columns: r, x: z, y: outputs[i])
                }
            }
        }
    }
}
