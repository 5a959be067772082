import Foundation
import Llama

/// D-Rank's allocation (algorithms.md §5; arXiv 2509.25622 §3.2–3.4), with groups of one layer
/// (n = 1), which the paper prescribes for grouped-query attention:
/// 1. the effective rank R = exp(entropy of σ²/Σσ²) of each scaled (whitened) weight;
/// 2. per projection type, budget B = keep·Σ m·n and the Lagrangian closed form
///    k_l = B·√(R_l/ω)/Σ_j √(R_j·ω), ω = m + n; within one type every ω is equal, so k_l is the
///    type's total rank split in proportion to √R_l (a skipped unit's cost per rank falls with r:
///    ω is then its mean cost per rank at the uniform rank, and the repair steps by exact costs);
/// 3. the Q/K → V transfer in **parameter** units: q and k ranks shrink by (1 − β), and the
///    parameters freed, β·Σ(k_q·ω_q + k_k·ω_k), become v ranks evenly over the layers at v's own ω
///    (the released code moves rank units, which is parameter-neutral only when q, k and v have
///    equal shapes: not under grouped-query attention);
/// 4. ranks rounded and clamped to [1, the largest rank that still saves parameters];
/// 5. budget repair (as the released code, to the exact budget): per pool — q, k and v together,
///    each other type alone — while over budget the matrix with the smallest R/ω loses one rank;
///    then while one more rank fits, the matrix with the largest R/ω below its cap gains one.
/// With `uniformFallback` (off by default: the paper does not describe it), the released code's
/// extra step between 2 and 3: o, up and down keep uniform ranks when their dynamic ranks do not
/// lower the type's summed squared truncation error Σ_l Σ_{i>k_l} σ_i²; gate always keeps uniform
/// ranks; q, k and v always take the dynamic ones.
public struct EffectiveRankAllocator: RankAllocator {
    /// Fraction of the q and k ranks moved to v (the paper's Table 5: 0.3–0.4 best; the code: 0.2).
    public var beta: Double
    public var uniformFallback: Bool

    public init(beta: Double = 0.3, uniformFallback: Bool = false) {
        precondition(beta >= 0 && beta < 1, "beta \(beta) must be in [0, 1)")
        self.beta = beta
        self.uniformFallback = uniformFallback
    }

    /// Σ over the matrices of Σ_{i > k} σ_i²: the squared error the truncation leaves (whitened: on
    /// the calibration outputs).
    static func truncationError(_ profiles: [ProjectionProfile], ranks: (ProjectionProfile) -> Int) -> Double {
        profiles.reduce(0) { total, p in total + p.singularValues!.dropFirst(ranks(p)).reduce(0) { $0 + $1 * $1 } }
    }

    public var input: AllocationInput { .spectra }

    public func allocate(_ profiles: [ProjectionProfile], keptFraction keep: Double) throws -> RankPlan {
        var effective: [ProjectionID: Double] = [:]
        for p in profiles {
            guard let sigma = p.singularValues else { throw AllocationError.missingSpectrum(p.id) }
            // An all-zero matrix has no spectrum to spread: rank 1 is all it can use.
            effective[p.id] = sigma.contains(where: { $0 > 0 }) ? EffectiveRank.energy(sigma) : 1
        }
        var target: [ProjectionID: Double] = [:]
        var budgets: [ProjectionKind: Double] = [:]
        for kind in ProjectionKind.allCases {
            let ofKind = profiles.filter { $0.id.kind == kind }
            guard !ofKind.isEmpty else { continue }
            let budget = keep * Double(ofKind.reduce(0) { $0 + $1.denseParameters })
            budgets[kind] = budget
            let roots = ofKind.reduce(0.0) { $0 + (effective[$1.id]! * $1.costPerRank(near: keep)).squareRoot() }
            for p in ofKind {
                target[p.id] = budget * (effective[p.id]! / p.costPerRank(near: keep)).squareRoot() / roots
            }
            if uniformFallback && [.output, .gate, .up, .down].contains(kind) {
                func rounded(_ p: ProjectionProfile) -> Int { min(max(1, Int(target[p.id]!.rounded())), max(1, p.largestSavingRank)) }
                func uniform(_ p: ProjectionProfile) -> Int { p.uniformRank(keptFraction: keep) }
                if kind == .gate || Self.truncationError(ofKind, ranks: rounded) >= Self.truncationError(ofKind, ranks: uniform) {
                    for p in ofKind { target[p.id] = Double(uniform(p)) }
                }
            }
        }
        // The transfer needs separate q, k and v units (a Cat group shares one rank: nothing to move).
        let values = profiles.filter { $0.id.kind == .value }
        if beta > 0 && !values.isEmpty {
            var freed = 0.0
            for p in profiles where p.id.kind == .query || p.id.kind == .key {
                freed += beta * target[p.id]! * p.costPerRank(near: keep)
                target[p.id]! *= 1 - beta
            }
            for p in values { target[p.id]! += freed / Double(values.count) / p.costPerRank(near: keep) }
        }
        var ranks: [ProjectionID: Int] = [:]
        for p in profiles { ranks[p.id] = min(max(1, Int(target[p.id]!.rounded())), max(1, p.largestSavingRank)) }
        // Pools that must each meet their own budget: the transfer moves parameters between q, k and v only.
        let pools: [[ProjectionKind]] = [[.query, .key, .value], [.output], [.gate], [.up], [.down]]
        for pool in pools {
            let members = profiles.filter { pool.contains($0.id.kind) }
            guard !members.isEmpty else { continue }
            // keep·Σ m·n is an integer in exact arithmetic (0.8 of 16,588,800): absorb the rounding of keep.
            let budget = Int((pool.reduce(0.0) { $0 + (budgets[$1] ?? 0) } + 1e-6).rounded(.down))
            Self.repair(members, ranks: &ranks, density: { effective[$0.id]! / $0.costPerRank(near: keep) }, budget: budget)
        }
        return RankPlan(ranks: ranks)
    }

    /// Steps ranks one at a time until the pool's parameters are at most `budget` and no further
    /// single rank fits (each step on the matrix the density ranks last or first).
    static func repair(_ members: [ProjectionProfile], ranks: inout [ProjectionID: Int], density: (ProjectionProfile) -> Double,
                       budget: Int) {
        // Each step changes the cost by the exact difference (constant m+n when plain, m+n−2r−1 skipped).
        func step(_ p: ProjectionProfile, _ r: Int) -> Int { p.factorCost(rank: r + 1) - p.factorCost(rank: r) }
        var cost = members.reduce(0) { $0 + $1.factorCost(rank: ranks[$1.id]!) }
        while cost > budget {
            guard let p = members.filter({ ranks[$0.id]! > 1 }).min(by: { density($0) < density($1) }) else { break }
            ranks[p.id]! -= 1
            cost -= step(p, ranks[p.id]!)
        }
        while let p = members.filter({ ranks[$0.id]! < $0.largestSavingRank && cost + step($0, ranks[$0.id]!) <= budget })
            .max(by: { density($0) < density($1) }) {
            cost += step(p, ranks[p.id]!)
            ranks[p.id]! += 1
        }
    }
}
