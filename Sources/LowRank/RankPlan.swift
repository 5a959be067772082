import Gradients
import Llama

/// The rank of every projection, chosen before any projection is factorised: the seam between
/// allocation (`RankAllocator`) and factorisation (`Compressor`).
public struct RankPlan: Sendable, Equatable {
    public var ranks: [ProjectionID: Int]
    /// Factor even where r·(m+n) ≥ m·n (FLRC's full-rank reading, an ablation); otherwise such a
    /// projection stays dense.
    public var factorsPastBreakEven: Bool

    public init(ranks: [ProjectionID: Int], factorsPastBreakEven: Bool = false) {
        self.ranks = ranks
        self.factorsPastBreakEven = factorsPastBreakEven
    }

    public subscript(id: ProjectionID) -> Int? { ranks[id] }

    /// Parameters the plan stores: each unit's `cost(rank:)`, or where the plan factors past
    /// break-even, its factors' count even when that exceeds the dense matrix.
    public func parameters(_ profiles: [ProjectionProfile]) -> Int {
        profiles.reduce(0) { total, p in
            let r = ranks[p.id] ?? 0
            return total + (factorsPastBreakEven && r >= 1 ? p.factorCost(rank: r) : p.cost(rank: r))
        }
    }
}

/// What an allocator knows about one allocation unit: a projection `W [outputs × inputs]`, or
/// several factorised as one (`members`, stacked along outputs: SkipCat's Cat groups, Basis
/// Sharing's layer groups), which then share one rank. A unit is keyed by its first member.
///
/// Cost per rank: a plain factorisation stores r·(m+n), linear in r; a skipped one r·(m+n−r)
/// (SkipCat's block skipping drops an r × r identity block), so each further rank costs less
/// (m+n−2r−1). Allocators never assume a constant cost: budgets are checked with `cost(rank:)`,
/// repairs step by the exact difference, and the closed forms that need one number per unit
/// (D-Rank's ω) read `costPerRank(near:)`, the mean cost per rank at the uniform rank.
public struct ProjectionProfile: Sendable {
    public var id: ProjectionID
    /// The projections factorised together, in stacking order (`[id]` for one projection).
    public var members: [ProjectionID]
    /// Whether the unit's factorisation is block-skipped (cost r·(m+n−r)).
    public var skipped: Bool
    /// Σ of the members' outputs.
    public var outputs: Int
    public var inputs: Int
    /// Singular values of the scaled weight (W·S: whitened for SVD-LLM; the stacked members for a
    /// unit of several), descending; nil when the allocator asked for shapes only.
    public var singularValues: [Double]?
    /// FLRC's importances of the dense weight (from the backward pass), when the allocator asks;
    /// summed over a unit's members.
    public var fisher: FisherImportance.Entry?
    /// ASVD's probes: the calibration loss with only this unit truncated, per kept fraction.
    public var sensitivity: [SensitivityPoint]?
    /// The dense model's loss on the same probe windows (what each probe is compared with).
    public var sensitivityBaseline: Double?

    public init(id: ProjectionID, outputs: Int, inputs: Int, singularValues: [Double]? = nil, fisher: FisherImportance.Entry? = nil,
                sensitivity: [SensitivityPoint]? = nil, members: [ProjectionID]? = nil, skipped: Bool = false) {
        self.sensitivity = sensitivity
        self.id = id
        self.members = members ?? [id]
        self.skipped = skipped
        self.outputs = outputs
        self.inputs = inputs
        self.singularValues = singularValues
        self.fisher = fisher
    }

    /// Parameters per unit of rank of a plain factorisation, m + n.
    public var perRank: Int { outputs + inputs }
    public var denseParameters: Int { outputs * inputs }
    /// The largest rank that still stores fewer parameters than the dense matrices: r·(m+n) < m·n,
    /// or skipped r·(m+n−r) < m·n, which holds for every r < min(m, n).
    public var largestSavingRank: Int { skipped ? min(outputs, inputs) - 1 : (denseParameters - 1) / perRank }
    /// The rank from which FLRC's break-even cap keeps the unit dense (plain: ⌊mn/(m+n)⌋).
    public var breakEvenRank: Int { skipped ? min(outputs, inputs) : denseParameters / perRank }

    /// What the factors of rank r store: r·(m+n), or skipped r·(m+n−r) (needs r < inputs).
    public func factorCost(rank r: Int) -> Int { skipped && r < inputs ? r * (perRank - r) : r * perRank }

    /// What a rank costs: the factors, or m·n when that saves nothing (the unit stays dense).
    public func cost(rank: Int) -> Int {
        rank >= 1 && rank <= largestSavingRank ? factorCost(rank: rank) : denseParameters
    }

    /// The largest rank whose factors store at most `keep` of the dense parameters: SVD-LLM's
    /// ⌊keep·m·n/(m+n)⌋, or skipped the smaller root of r·(m+n−r) = keep·m·n, rounded down.
    public func uniformRank(keptFraction keep: Double) -> Int {
        guard skipped else { return LowRank.uniformRank(outputs: outputs, inputs: inputs, keptFraction: keep) }
        let s = Double(perRank), target = keep * Double(denseParameters)
        var r = Int(((s - (s * s - 4 * target).squareRoot()) / 2).rounded(.down))
        r = min(max(r, 0), largestSavingRank)
        while r > 0 && Double(factorCost(rank: r)) > target + 1e-6 { r -= 1 }
        while r < largestSavingRank && Double(factorCost(rank: r + 1)) <= target + 1e-6 { r += 1 }
        return r
    }

    /// Mean parameters per rank at the uniform rank for `keep` (m + n when plain).
    public func costPerRank(near keep: Double) -> Double {
        guard skipped else { return Double(perRank) }
        let r = max(1, uniformRank(keptFraction: keep))
        return Double(factorCost(rank: r)) / Double(r)
    }

    /// Why the unit stays dense at `rank` (0, or no saving, unless the plan factors past
    /// break-even), or nil.
    public func keptDenseNote(rank: Int, factorsPastBreakEven: Bool = false) -> String? {
        if rank < 1 { return "rank would be 0: kept dense" }
        return rank <= largestSavingRank || factorsPastBreakEven ? nil : "rank \(rank) would not save parameters: kept dense"
    }

    /// The profiles of every projection of a model, shapes only.
    public static func shapes(of c: LlamaConfiguration) -> [ProjectionProfile] {
        (0..<c.layerCount).flatMap { layer in
            ProjectionKind.allCases.map { kind in
                let s = c.shape(of: kind)
                return ProjectionProfile(id: ProjectionID(layer: layer, kind: kind), outputs: s.outputs, inputs: s.inputs)
            }
        }
    }
}
