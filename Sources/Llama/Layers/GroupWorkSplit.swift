/// How a projection group's decode work is cut between the workers of one parallel region.
///
/// The members' work units (a dense member's output rows, a low-rank member's active ranks: one
/// row of the right factor and one of `Bᵀ` each) are laid end to end, each weighted by the bytes
/// of weights it reads, and the line is cut into `parts` shares of equal bytes. A worker's share
/// is then one contiguous run of units: a few whole members and at most two members' edges. Cut
/// member by member instead (each worker a slice of every member, as before), every worker
/// streamed two short slices of each low-rank member and every low-rank member needed a partial
/// output per extra worker, summed on the calling thread after the region; now at 40% gate and up
/// go whole to one worker each and only q is cut. Measured alone, this split's decode speed was
/// within the host's noise of the old one (AMD EPYC, docs/BENCHMARKS.md): it is kept for the
/// fewer partial sums and streams, not for a measured gain.
///
/// A cut that falls within `1/32` of a share's bytes of a member's edge moves to that edge: the
/// imbalance it leaves (≤ 3%) costs about what the partial output and the extra short streams of
/// a sliver of a member would.
public struct GroupWorkSplit: Sendable, Equatable {
    /// One member's work: its units (output rows or active ranks) and the bytes each reads.
    public struct Member: Sendable, Equatable {
        public let units: Int
        public let unitBytes: Int
        public init(units: Int, unitBytes: Int) {
            self.units = units
            self.unitBytes = unitBytes
        }
    }

    public let parts: Int
    /// The members, each with at least one byte per unit.
    private let members: [Member]
    /// Per member: the bytes of all members before it.
    private let offsets: [Int]
    /// The `parts + 1` cut points, in bytes along the line (0 and the total at the ends).
    private let cuts: [Int]

    /// - Parameters: `members`: each member's units and bytes per unit, in order; `parts` ≥ 1.
    public init(members: [Member], parts: Int) {
        precondition(parts >= 1, "a split needs at least one part")
        self.parts = parts
        let members = members.map { Member(units: $0.units, unitBytes: max(1, $0.unitBytes)) }
        self.members = members
        var offsets: [Int] = [], total = 0
        for m in members {
            offsets.append(total)
            total += m.units * m.unitBytes
        }
        self.offsets = offsets
        let snap = total / (32 * parts)
        var cuts = [0]
        for p in 1..<max(1, parts) {
            var cut = total * p / parts
            // The member the cut falls in, and the cut moved to its nearer edge when close to it.
            if let i = offsets.indices.last(where: { offsets[$0] <= cut }) {
                let start = offsets[i], end = start + members[i].units * members[i].unitBytes
                if cut - start <= snap { cut = start } else if end - cut <= snap { cut = end }
            }
            cuts.append(max(cuts.last!, cut))
        }
        cuts.append(total)
        self.cuts = cuts
    }

    /// The unit of member `i` at cut `c`: the first unit whose start is at or past the cut (so
    /// consecutive parts tile each member's units exactly).
    @inline(__always)
    private func unit(member i: Int, cut c: Int) -> Int {
        let bytes = cuts[c] - offsets[i]
        if bytes <= 0 { return 0 }
        return min(members[i].units, (bytes + members[i].unitBytes - 1) / members[i].unitBytes)
    }

    /// The units of member `i` that part `p` computes (empty when none).
    @inline(__always)
    public func units(member i: Int, part p: Int) -> Range<Int> {
        unit(member: i, cut: p)..<unit(member: i, cut: p + 1)
    }
}
