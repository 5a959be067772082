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
    /// Groups are equal when their site and layout are (the decode plan follows from the layout).
    public static func == (a: ProjectionGroup, b: ProjectionGroup) -> Bool { a.site == b.site && a.layout == b.layout }

    public enum Layout: Sendable, Equatable {
        case separate([Linear])
        case sharedRight(SharedRightGroup)
    }

    public let site: InputSite
    public private(set) var layout: Layout {
        didSet { plan = DecodePlan(layout) }
    }
    /// How a decode region cuts the members' work, made whenever the layout or its active ranks
    /// change rather than on every call (see `DecodePlan`).
    private var plan: DecodePlan

    public init(site: InputSite, layout: Layout) {
        let kinds = site.projections
        switch layout {
        case .separate(let members): precondition(members.count == kinds.count, "\(site) has \(kinds.count) projections")
        case .sharedRight(let shared): precondition(shared.lefts.count == kinds.count, "\(site) has \(kinds.count) projections")
        }
        self.site = site
        self.layout = layout
        plan = DecodePlan(layout)
    }

    /// A separate layout's decode work, as `applyRows` runs it: the chunks the workers claim
    /// (`GroupChunks`), the widest member's outputs and each member's weight operands. Made on
    /// every call, such a plan cost the calling thread a few µs per group while the helper waited:
    /// arrays, each member copied with its reference counts, and the members' metadata read from
    /// memory (a token streams far more weight bytes than the caches hold, so a layer's metadata is
    /// cold when its next token comes; timing points showed the cost moving to wherever a member
    /// was first touched). The calling thread's time outside regions per decoded token, medians of
    /// 9 runs (AMD EPYC, docs/BENCHMARKS.md): 691 → 583 µs for the SVD-LLM 40% checkpoint at half
    /// rank, 804 → 708 µs dense (with the head's stealing split, which does not run outside regions).
    private struct DecodePlan: @unchecked Sendable {  // the operands point into the layout's immutable weights
        let chunks: GroupChunks
        let widest: Int
        let weights: [MemberWeights]

        init(_ layout: Layout) {
            let members: [Linear]
            switch layout {
            case .sharedRight(let shared):
                // A shared group's work is its active rank: a rank reads a row of A and one of every Bᵀ_i.
                let unitBytes = shared.right.byteCount(activeRank: 1) + shared.lefts.reduce(0) { $0 + $1.byteCount(activeRank: 1) }
                chunks = GroupChunks(members: [GroupChunks.Member(units: shared.activeRank, unitBytes: unitBytes, lowRank: true)])
                (widest, weights) = (0, [])
                return
            case .separate(let separate): members = separate
            }
            var weights: [MemberWeights] = [], units: [GroupChunks.Member] = []
            for m in members {
                switch m {
                case .dense(let d):
                    weights.append(MemberWeights(form: .dense(d.weight.operand, inputs: d.inputs), outputs: d.outputs, gatherCount: 0))
                    units.append(GroupChunks.Member(units: d.outputs, unitBytes: d.weight.byteCount(rows: 1, columns: d.inputs), lowRank: false))
                case .lowRank(let l):
                    weights.append(MemberWeights(form: .lowRank(right: l.right.operand, left: l.left.operand, rank: l.rank),
                                                 outputs: l.outputs, gatherCount: l.right.gatherCount))
                    units.append(GroupChunks.Member(units: l.activeRank, unitBytes: l.right.byteCount(activeRank: 1) + l.left.byteCount(activeRank: 1),
                                                    lowRank: true))
                }
            }
            self.weights = weights
            widest = members.reduce(0) { max($0, $1.outputs) }
            chunks = GroupChunks(members: units)
        }
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

    /// `n` floats rounded up to whole 64-byte cache lines.
    static func lines(_ n: Int) -> Int { (n + 15) / 16 * 16 }

    /// Where the parts of one low-rank member's (or a shared group's) decode scratch sit, in floats
    /// from its start: z `[t × rank]`, the gathered `x_rest` `[t × gather]`, then `partials` partial
    /// outputs of `t` rows each, rows `partialStride` apart. Each part and each partial row starts
    /// on a cache line: the transposed kernel loads and stores its output in 32-byte vectors, and a
    /// partial output that started 24 bytes into a line (after a z of 230 ranks) split every second
    /// vector across two lines (SVD-LLM 20% f16 decoded 1.08× faster aligned; docs/BENCHMARKS.md).
    /// `scratchCount` reserves and `applyRows` places with this one layout.
    struct LowRankScratch {
        let gathered: Int
        let partials: Int
        let partialStride: Int
        /// Floats in all.
        let count: Int

        init(rows t: Int, rank: Int, gather: Int, partialWidth: Int, partials slots: Int) {
            gathered = ProjectionGroup.lines(t * rank)
            partials = gathered + ProjectionGroup.lines(t * gather)
            partialStride = ProjectionGroup.lines(partialWidth)
            count = partials + slots * t * partialStride
        }
    }

    /// Floats of scratch `apply` and `applyOneRow` need for `rows` input rows.
    public func scratchCount(rows t: Int) -> Int {
        let partials = GroupChunks.maximumLowRankChunks - 1  // per low-rank member, at any active rank
        let fused = min(t, WeightMatrix.smallBatch)  // rows of a fused decode region
        switch layout {
        case .separate(let members):
            // Up to `smallBatch` rows: every low-rank member's z, gathered inputs and partial
            // outputs (one per chunk after its first, at any active rank) side by side; more
            // rows: one member at a time.
            let few = members.reduce(0) { total, m in
                guard case .lowRank(let l) = m else { return total }
                return total + LowRankScratch(rows: fused, rank: l.rank, gather: l.right.gatherCount, partialWidth: l.outputs, partials: partials).count
            }
            return max(few, members.map { $0.scratchCount(rows: t) }.max() ?? 0)
        case .sharedRight(let shared):
            let widen = shared.lefts.map { $0.scratchCount() }.max() ?? 0
            let few = LowRankScratch(rows: fused, rank: shared.rank, gather: shared.right.gatherCount,
                                     partialWidth: shared.lefts.reduce(0) { $0 + Self.lines($1.outputs) }, partials: partials).count
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

    /// One member's weights as a decode region reads them (trivial values, see `WeightOperand`).
    private struct MemberWeights {
        enum Form {
            case dense(WeightOperand, inputs: Int)
            case lowRank(right: RightOperand, left: WeightOperand, rank: Int)
        }
        let form: Form
        let outputs: Int
        /// A skipped right factor's gathered `x_rest` per row (0 when plain or dense).
        let gatherCount: Int
    }

    /// One member of a group as the workers of a decode region read it: trivial values only (see
    /// `WeightOperand`), made on the calling thread before the region.
    private struct MemberOperand {
        let form: MemberWeights.Form
        let outputs: Int
        /// The member's output rows (stride `ldy`).
        let y: UnsafeMutablePointer<Float>
        let ldy: Int
        /// Low-rank: z `[t × rank]` (stride: the stored rank), the gathered `x_rest` of a skipped
        /// right factor, and the partial outputs of its chunks after the first (slot s at
        /// `partials + (s − 1) · t · partialStride`, rows `partialStride` apart).
        let z: UnsafeMutablePointer<Float>
        let gathered: UnsafeMutablePointer<Float>
        let partials: UnsafeMutablePointer<Float>
        let partialStride: Int
        /// Low-rank: its chunks' slots (the output and `slots − 1` partial outputs); 1 when dense.
        let slots: Int

        /// Where a chunk of slot `slot` writes its `t` rows, and their stride: the output for slot 0,
        /// partial output `slot` otherwise.
        @inline(__always)
        func output(slot: Int, rows t: Int) -> (UnsafeMutablePointer<Float>, Int) {
            slot == 0 ? (y, ldy) : (partials + (slot - 1) * t * partialStride, partialStride)
        }
    }

    /// A few input rows (t ≤ `WeightMatrix.smallBatch`) through every member in one parallel
    /// region. Separate members: the workers claim the plan's chunks (`GroupChunks`, stealing
    /// once their own run is done); a dense chunk is output rows, a low-rank chunk is ranks: z = A x
    /// over them (those rows of the right factor), then B z over them (those columns of the left
    /// factor) into the chunk's slot, the output or a partial output that the worker finishing the
    /// member's last chunk adds in, in slot order (`ChunkCountdowns`). A
    /// shared group's chunks are runs of its rank: z over them, then every member's `B_i z`. So
    /// the right and left products need no synchronisation between them, a compressed group costs
    /// one region, as a dense one does, and the result does not depend on which worker ran what.
    /// One row runs the one-row decode kernels; more rows the few-row kernels, which read each
    /// weight once for up to four rows. The workers read only `MemberOperand`s and the chunk list,
    /// so no reference is counted during the region.
    func applyRows(_ x: UnsafePointer<Float>, rows t: Int, ldx: Int, into outputs: [UnsafeMutablePointer<Float>], ldy: [Int],
                   scratch: UnsafeMutablePointer<Float>) {
        switch layout {
        case .separate(let members):
            let count = members.count
            let parts = Parallel.partCount(plan.widest, minimum: 128)
            let chunks = plan.chunks
            withUnsafeTemporaryAllocation(of: MemberOperand.self, capacity: count) { ops in
                // Scratch per low-rank member (`LowRankScratch`): z, gathered x_rest, then its
                // partial outputs, one per chunk after the first.
                var offset = 0
                for i in 0..<count {
                    let w = plan.weights[i]
                    switch w.form {
                    case .dense:
                        ops.initializeElement(at: i, to: MemberOperand(
                            form: w.form, outputs: w.outputs, y: outputs[i], ldy: ldy[i],
                            z: scratch, gathered: scratch, partials: scratch, partialStride: 0, slots: 1))
                    case .lowRank(_, _, let rank):
                        let layout = LowRankScratch(rows: t, rank: rank, gather: w.gatherCount, partialWidth: w.outputs,
                                                    partials: chunks.slots[i] - 1)
                        let z = scratch + offset, gathered = z + layout.gathered
                        if w.gatherCount > 0, case .lowRank(let l) = members[i] { l.right.prepareRows(x, rows: t, ldx: ldx, gathered: gathered) }
                        ops.initializeElement(at: i, to: MemberOperand(
                            form: w.form, outputs: w.outputs, y: outputs[i], ldy: ldy[i], z: z, gathered: gathered,
                            partials: z + layout.partials, partialStride: layout.partialStride, slots: chunks.slots[i]))
                        offset += layout.count
                    }
                }
                chunks.slots.withUnsafeBufferPointer { slots in
                    withUnsafeTemporaryAllocation(of: Int64.self, capacity: count * ChunkCountdowns.stride) { storage in
                        // Each chunk writes its own output rows or slot; the worker that runs a
                        // member's last chunk adds its partial outputs, in slot order.
                        let countdowns = ChunkCountdowns(storage.baseAddress!, counts: slots)
                        let box = UncheckedSendableBox((UnsafePointer(ops.baseAddress!), x))
                        Self.runChunks(chunks, parts: parts) { chunk in
                            let (ops, x) = box.value
                            let m = ops[chunk.member]
                            Self.run(m, units: chunk.units, slot: chunk.slot, x: x, ldx: ldx, rows: t)
                            if m.slots > 1, countdowns.finish(chunk.member) { Self.addPartials(m, rows: t) }
                        }
                    }
                }
            }
        case .sharedRight(let shared):
            // Scratch (`LowRankScratch`): z, gathered x_rest, then a partial output per chunk after
            // the first, each row holding every member's columns (member i at a line-aligned offset).
            let layout = LowRankScratch(rows: t, rank: shared.rank, gather: shared.right.gatherCount,
                                        partialWidth: shared.lefts.reduce(0) { $0 + Self.lines($1.outputs) }, partials: 0)
            let z = scratch, gathered = scratch + layout.gathered, partialBase = scratch + layout.partials, stride = layout.partialStride
            shared.right.prepareRows(x, rows: t, ldx: ldx, gathered: gathered)
            let total = shared.lefts.reduce(0) { $0 + $1.outputs }
            let rank = shared.rank, count = shared.lefts.count
            let parts = Parallel.partCount(max(total, shared.activeRank), minimum: 128)
            let right = shared.right.operand, chunks = plan.chunks
            withUnsafeTemporaryAllocation(of: MemberOperand.self, capacity: count) { ops in
                var column = 0
                for (i, left) in shared.lefts.enumerated() {
                    ops.initializeElement(at: i, to: MemberOperand(
                        form: .lowRank(right: right, left: left.operand, rank: rank), outputs: left.outputs, y: outputs[i], ldy: ldy[i],
                        z: z, gathered: gathered, partials: partialBase + column, partialStride: stride, slots: chunks.slots[0]))
                    column += Self.lines(left.outputs)
                }
                withUnsafeTemporaryAllocation(of: Int64.self, capacity: ChunkCountdowns.stride) { storage in
                    // Disjoint ranks of z and slots per chunk; the worker that runs the last chunk
                    // adds every member's partial outputs, in slot order.
                    let countdowns = ChunkCountdowns(storage.baseAddress!, count: chunks.slots[0])
                    let box = UncheckedSendableBox((UnsafePointer(ops.baseAddress!), x))
                    Self.runChunks(chunks, parts: parts) { chunk in
                        let (ops, x) = box.value
                        right.applyRows(chunk.units, x: x, ldx: ldx, rows: t, gathered: gathered, into: z, ldz: rank)
                        for i in 0..<count { Self.runLeft(ops[i], ranks: chunk.units, slot: chunk.slot, rows: t) }
                        if ops[0].slots > 1, countdowns.finish(0) {
                            for i in 0..<count { Self.addPartials(ops[i], rows: t) }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body` once for every chunk of `chunks` over `parts` workers: each worker starts on its
    /// run of equal bytes (`GroupChunks.boundaries`), then takes chunks from the far end of the run
    /// with the most left (`StealingSegments`).
    @inline(__always)
    private static func runChunks(_ chunks: GroupChunks, parts: Int, _ body: (GroupChunks.Chunk) -> Void) {
        chunks.chunks.withUnsafeBufferPointer { list in
            chunks.boundaries(parts: parts).withUnsafeBufferPointer { boundaries in
                withUnsafeTemporaryAllocation(of: UInt64.self, capacity: parts * StealingSegments.stride) { storage in
                    let segments = StealingSegments(storage.baseAddress!, boundaries: boundaries)
                    let list = UncheckedSendableBox(list.baseAddress!)  // read only
                    Parallel.forEach(parts) { p in
                        while let c = segments.next(for: p) { body(list.value[c]) }
                    }
                }
            }
        }
    }

    /// One chunk of one member: a dense member's output rows `units`; a low-rank member's ranks
    /// `units` (z over them, then B z into the output for slot 0, into partial `slot` otherwise).
    @inline(__always)
    private static func run(_ m: MemberOperand, units: Range<Int>, slot: Int, x: UnsafePointer<Float>, ldx: Int, rows t: Int) {
        switch m.form {
        case .dense(let w, let inputs):
            w.gemvRows(units, columns: inputs, x: x, ldx: ldx, rows: t, y: m.y, ldy: m.ldy)
        case .lowRank(let right, let left, let rank):
            // One row of a plain right factor: A's and Bᵀ's rows side by side (`gemvPair`), where
            // this CPU's tier fuses them; otherwise z over the ranks, then B z.
            if t == 1, right.selected == nil,
               right.weights.gemvPair(left: left, ranks: units, columns: right.inputs, outputs: m.outputs, x: x, z: m.z,
                                      y: m.output(slot: slot, rows: 1).0) {
                return
            }
            right.applyRows(units, x: x, ldx: ldx, rows: t, gathered: m.gathered, into: m.z, ldz: rank)
            runLeft(m, ranks: units, slot: slot, rows: t)
        }
    }

    /// `B[:, ranks] · z[ranks]` of a low-rank member: into its output for slot 0 (the chunk holding
    /// rank 0), into partial `slot` otherwise (both overwritten).
    @inline(__always)
    private static func runLeft(_ m: MemberOperand, ranks: Range<Int>, slot: Int, rows t: Int) {
        guard case .lowRank(_, let left, let rank) = m.form else { return }
        let (y, ldy) = m.output(slot: slot, rows: t)
        left.gemvTransposedRows(rows: ranks, columns: 0..<m.outputs, x: m.z, ldx: rank, count: t, y: y, ldy: ldy)
    }

    /// Adds a low-rank member's partial outputs (its chunks' after the first) into its output, in
    /// slot order, so the sums do not depend on which worker ran which chunk or finished last.
    @inline(__always)
    private static func addPartials(_ m: MemberOperand, rows t: Int) {
        for slot in 1..<m.slots {
            let (partial, stride) = m.output(slot: slot, rows: t)
            for s in 0..<t { VectorMath.add(partial + s * stride, into: m.y + s * m.ldy, count: m.outputs) }
        }
    }
}
