import Foundation
import Gradients
import Llama

/// Which per-projection statistic FLRC's proportional rule reads (the paper's Table 3 ablation).
public enum FisherVariant: String, Codable, Sendable, CaseIterable {
    /// α = Σ_windows Σ_i (G_i·W_i)² (FLRC Eq. 1).
    case fisher
    /// Σ_i W_i².
    case weightOnly = "weight"
    /// Σ_windows Σ_i G_i².
    case gradientOnly = "gradient"

    func value(_ e: FisherImportance.Entry) -> Double {
        switch self {
        case .fisher: e.fisher
        case .weightOnly: e.weightOnly
        case .gradientOnly: e.gradientOnly
        }
    }
}

/// What happens to a projection whose proportional rank is too large to save parameters. The
/// paper is silent (algorithms.md §6.1: "choose and document"); on SmolLM2 it decides much of the
/// result, because layer 29's down_proj alone holds about 23% of α.
public enum FisherCap: String, Codable, Sendable, CaseIterable {
    /// Ours, the default: a rank reaching the break-even ⌊m·n/(m+n)⌋ keeps the matrix dense (cost
    /// m·n), and the rank budget R grows until the others use what it leaves (in proportion to α).
    case breakEven = "break-even"
    /// The other reading, as an ablation: ranks capped at min(m, n) and stored as factors at
    /// r·(m+n) parameters even past break-even (more than the dense matrix).
    case fullRank = "full-rank"
}

/// FLRC's Fisher-based layer-wise rank allocation (arXiv 2510.09332 §3.1, Eq. 1–2):
/// r = round(α/S · R_budget) with S = Σ α over all projections, and R_budget the largest value for
/// which the plan's parameters stay within keep·Σ m·n: raising R until the next matrix gains a
/// rank would pass the budget, so it is met to within one rank step per matrix. Every rank is at
/// least 1 (a rank of 0 would delete the projection; the paper's formula allows it, we do not).
public struct FisherAllocator: RankAllocator {
    public var variant: FisherVariant
    public var cap: FisherCap

    public init(variant: FisherVariant = .fisher, cap: FisherCap = .breakEven) {
        self.variant = variant
        self.cap = cap
    }

    public var input: AllocationInput { .fisherImportance }

    public func importance(of entry: FisherImportance.Entry) -> Double? { variant.value(entry) }

    public func allocate(_ profiles: [ProjectionProfile], keptFraction keep: Double) throws -> RankPlan {
        var importance: [ProjectionID: Double] = [:]
        for p in profiles {
            guard let entry = p.fisher else { throw AllocationError.missingImportance(p.id) }
            let value = variant.value(entry)
            guard value.isFinite && value >= 0 else { throw AllocationError.nonFiniteImportance(p.id, value) }
            importance[p.id] = value
        }
        let total = importance.values.reduce(0, +)
        guard total > 0 else { throw AllocationError.zeroImportance }
        let budget = keep * Double(profiles.reduce(0) { $0 + $1.denseParameters }) + 1e-6
        func plan(_ r: Double) -> RankPlan {
            var ranks: [ProjectionID: Int] = [:]
            for p in profiles {
                let full = min(p.outputs, p.inputs)
                let proportional = max(1, Int((importance[p.id]! / total * r).rounded()))
                switch cap {
                case .breakEven:
                    // Reaching ⌊mn/(m+n)⌋ keeps the matrix dense: the plan says so with the full rank.
                    ranks[p.id] = proportional >= p.breakEvenRank ? full : proportional
                case .fullRank:
                    ranks[p.id] = min(proportional, full)
                }
            }
            return RankPlan(ranks: ranks, factorsPastBreakEven: cap == .fullRank)
        }
        // The cost is non-decreasing in R: bisect for the largest R within the budget.
        var low = 0.0, high = 1.0
        while Double(plan(high).parameters(profiles)) <= budget {
            high *= 2
            if high > 1e15 { return plan(high) }  // everything fits: every matrix at its cap
        }
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if Double(plan(middle).parameters(profiles)) <= budget { low = middle } else { high = middle }
            if high - low <= low * 1e-12 { break }
        }
        return plan(low)
    }
}
