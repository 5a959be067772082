import Foundation
import Llama

/// One probe of ASVD's sensitivity list: the calibration loss with only this projection factorised
/// at `keptFraction` of its parameters.
public struct SensitivityPoint: Sendable, Equatable, Codable {
    public var keptFraction: Double
    public var loss: Double

    public init(keptFraction: Double, loss: Double) {
        self.keptFraction = keptFraction
        self.loss = loss
    }
}

/// ASVD's sensitivity-based truncation-rank search (STRS; arXiv 2312.05821, code `sensitivity.py`,
/// `binary_search.py`; algorithms.md §3.3), the slow baseline allocation time is compared with:
/// 1. every (projection, kept fraction ∈ {0.4, …, 0.9}) probe's calibration loss, one projection
///    replaced at a time (the compressor measures them: `SensitivityProbe`);
/// 2. the probes sorted from most to least damaging;
/// 3. a binary search over the split index: the probes after it are applied, each projection taking
///    the smallest kept fraction among its applied probes (the others stay dense), rank
///    ⌊fraction·m·n/(m+n)⌋. ASVD's code stops at the first split whose ratio exceeds the target;
///    we take the last one within it, so the parameter budget holds like every other allocator's.
public struct SensitivitySearchAllocator: RankAllocator {
    /// ASVD's candidate kept fractions (`--param_ratio` grid of its sensitivity pass).
    public static let candidates = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    public init() {}

    public var input: AllocationInput { .sensitivity }

    public func allocate(_ profiles: [ProjectionProfile], keptFraction keep: Double) throws -> RankPlan {
        var probes: [(id: ProjectionID, fraction: Double, loss: Double)] = []
        for p in profiles {
            for point in try p.checkedSensitivity() { probes.append((p.id, point.keptFraction, point.loss)) }
        }
        // Most damaging first; ties broken by identity so the order is reproducible.
        probes.sort { a, b in
            if a.loss != b.loss { return a.loss > b.loss }
            if a.id != b.id { return a.id < b.id }
            return a.fraction < b.fraction
        }
        let budget = keep * Double(profiles.reduce(0) { $0 + $1.denseParameters }) + 1e-6
        func plan(applyingFrom split: Int) -> RankPlan {
            var fraction: [ProjectionID: Double] = [:]
            for probe in probes[split...] { fraction[probe.id] = min(fraction[probe.id] ?? 1, probe.fraction) }
            var ranks: [ProjectionID: Int] = [:]
            for p in profiles {
                if let f = fraction[p.id] {
                    ranks[p.id] = p.uniformRank(keptFraction: f)
                } else {
                    ranks[p.id] = min(p.outputs, p.inputs)  // not applied: stays dense
                }
            }
            return RankPlan(ranks: ranks)
        }
        // Parameters fall as the split moves down (more probes applied): find the largest split within budget.
        guard Double(plan(applyingFrom: 0).parameters(profiles)) <= budget else {
            throw AllocationError.searchCannotReachBudget(smallestKeptFraction: Self.candidates.first!, keep: keep)
        }
        var low = 0, high = probes.count  // plan(low) fits; plan(high) (nothing applied) does not, unless keep ≥ 1
        while high - low > 1 {
            let middle = (low + high) / 2
            if Double(plan(applyingFrom: middle).parameters(profiles)) <= budget { low = middle } else { high = middle }
        }
        return plan(applyingFrom: low)
    }
}

extension ProjectionProfile {
    /// The unit's probes, refused (naming the unit and fraction) when missing or not finite: what
    /// every allocator reading them checks first.
    func checkedSensitivity() throws(AllocationError) -> [SensitivityPoint] {
        guard let points = sensitivity, !points.isEmpty else { throw .missingSensitivity(id) }
        if let bad = points.first(where: { !$0.loss.isFinite }) { throw .nonFiniteSensitivity(id, bad.keptFraction) }
        return points
    }
}
