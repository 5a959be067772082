import Foundation
import Llama

/// SVD-LLM V2's heterogeneous compression ratios (arXiv 2503.12340 §3.1, Alg. 1; algorithms.md §2.1):
/// 1. per projection type (all layers' q, all k, …), the truncation loss of each matrix at the
///    uniform rank, L = √(Σ dropped σ²) of the whitened weight W·S (its output error on the
///    calibration activations; the Gram is summed over the calibration tokens, as SVD-LLM's code);
/// 2. ℓ = 1/log L, and the removed fraction R_i = G·R·ℓ_i/Σ_j ℓ_j over the G matrices of the type, so
///    the type's mean stays R and a matrix that loses more is compressed less;
/// 3. r_i = ⌊(1 − R_i)·m·n/(m+n)⌋, clamped to [1, the largest rank that saves parameters], then each
///    type repaired to its budget (over: the matrix with the smallest loss per rank gives one up).
/// The paper's pseudocode is garbled in extraction, so step 2 is our reading (UNCONFIRMED). 1/log L
/// is not scale-free: it needs L > 1 for every matrix, which whitening by a summed Gram gives on
/// real models; a matrix with L ≤ 1 is an error that names it.
public struct TruncationLossAllocator: RankAllocator {
    public init() {}

    public var input: AllocationInput { .spectra }

    public func allocate(_ profiles: [ProjectionProfile], keptFraction keep: Double) throws -> RankPlan {
        var ranks: [ProjectionID: Int] = [:]
        var loss: [ProjectionID: Double] = [:]
        for p in profiles {
            guard let sigma = p.singularValues else { throw AllocationError.missingSpectrum(p.id) }
            let uniform = p.uniformRank(keptFraction: keep)
            let l = sigma.dropFirst(uniform).reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard l > 1 && l.isFinite else { throw AllocationError.truncationLossBelowOne(p.id, l) }
            loss[p.id] = l
        }
        let removed = 1 - keep
        for kind in ProjectionKind.allCases {
            let ofKind = profiles.filter { $0.id.kind == kind }
            guard !ofKind.isEmpty else { continue }
            let inverseLogs = ofKind.map { 1 / log(loss[$0.id]!) }
            let total = inverseLogs.reduce(0, +)
            for (p, l) in zip(ofKind, inverseLogs) {
                let ratio = Double(ofKind.count) * removed * l / total
                let rank = p.uniformRank(keptFraction: 1 - ratio)
                ranks[p.id] = min(max(1, rank), max(1, p.largestSavingRank))
            }
            let budget = Int((keep * Double(ofKind.reduce(0) { $0 + $1.denseParameters }) + 1e-6).rounded(.down))
            // Only the over-budget half of the repair: the rule's own rounding stays below the budget.
            var cost = ofKind.reduce(0) { $0 + $1.factorCost(rank: ranks[$1.id]!) }
            while cost > budget, let p = ofKind.filter({ ranks[$0.id]! > 1 }).min(by: { loss[$0.id]! < loss[$1.id]! }) {
                cost -= p.factorCost(rank: ranks[p.id]!) - p.factorCost(rank: ranks[p.id]! - 1)
                ranks[p.id]! -= 1
            }
        }
        return RankPlan(ranks: ranks)
    }
}
