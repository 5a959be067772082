import Foundation
import Llama

/// ASVD's sensitivity probes allocated as a multiple-choice knapsack (ours; `--allocation
/// asvd-knapsack`): each unit takes one of ASVD's candidate kept fractions or stays dense, and the
/// plan minimises the summed calibration-loss increase Σ Δ_i within the parameter budget.
///
/// Why not ASVD's own search (`SensitivitySearchAllocator`): its binary search applies every probe
/// whose loss is below a threshold, so it compares losses but never their price. A large unit
/// (gate/up, 3× the parameters of q) that loses 0.01 at 0.4 is as "cheap" to it as a small one
/// that loses 0.01, while the large one frees three times the parameters. Here the price is part
/// of the choice.
///
/// The rule, in the order it runs:
/// 1. Δ_i(f) = loss_i(f) − dense loss, from the probes and the dense model's loss on the same probe
///    windows (`ProjectionProfile.sensitivityBaseline`).
/// 2. Monotone envelope (our choice; probes scored on one or a few windows are noisy): Δ_i(f) is
///    raised to max(0, max over f′ ≥ f of Δ_i(f′)). Keeping more of a matrix cannot hurt in
///    expectation, so a probe that scored below the dense loss, or below a larger fraction's probe,
///    is read as noise rather than as a free saving the plan would exploit.
/// 3. Options per unit: every candidate (cost: the parameters of its uniform rank) and dense (Δ = 0,
///    cost m·n).
/// 4. Exact dynamic programming over the budget in buckets of ⌈Σ m·n / 100,000⌉ parameters (one
///    parameter for small models), each option's cost rounded up to whole buckets, so the plan
///    always meets the budget and leaves at most one bucket per unit unspent (SmolLM2: 120 units of
///    1,062 parameters, 0.15% of the budget).
///    Of options with equal Σ Δ the one keeping more parameters wins.
///
/// The Δ are summed as if the units' losses added up, as ASVD's search also assumes.
public struct SensitivityKnapsackAllocator: RankAllocator {
    public init() {}

    public var input: AllocationInput { .sensitivity }

    /// Buckets the budget is divided into (at most; fewer when the model has fewer parameters).
    static let buckets = 100_000

    /// One option of a unit: kept fraction (nil: dense), its parameters and its loss increase.
    struct Option: Equatable {
        var fraction: Double?
        var cost: Int
        var delta: Double
    }

    public func allocate(_ profiles: [ProjectionProfile], keptFraction keep: Double) throws -> RankPlan {
        var options: [[Option]] = []
        for p in profiles {
            let points = try p.checkedSensitivity()
            guard let baseline = p.sensitivityBaseline else { throw AllocationError.missingSensitivityBaseline(p.id) }
            guard baseline.isFinite else { throw AllocationError.nonFiniteSensitivity(p.id, 1) }  // the dense loss: fraction 1
            options.append(Self.options(p, points: points, baseline: baseline))
        }
        let total = profiles.reduce(0) { $0 + $1.denseParameters }
        let budget = Int((keep * Double(total) + 1e-6).rounded(.down))
        let bucket = max(1, (total + Self.buckets - 1) / Self.buckets)
        let capacity = budget / bucket
        func buckets(_ cost: Int) -> Int { (cost + bucket - 1) / bucket }
        guard options.reduce(0, { $0 + buckets($1[0].cost) }) <= capacity else {
            throw AllocationError.searchCannotReachBudget(smallestKeptFraction: SensitivitySearchAllocator.candidates.first!, keep: keep)
        }
        // best[b]: the least Σ Δ of the units so far within b buckets; choice[u][b]: unit u's option there.
        var best = [Double](repeating: 0, count: capacity + 1)
        var choice = [[UInt8]](repeating: [], count: options.count)
        for (u, unit) in options.enumerated() {
            var next = [Double](repeating: .infinity, count: capacity + 1)
            var picked = [UInt8](repeating: 0, count: capacity + 1)
            // Larger options first, so on equal Σ Δ the unit keeps more.
            for k in unit.indices.reversed() {
                let c = buckets(unit[k].cost), delta = unit[k].delta
                guard c <= capacity else { continue }
                for b in c...capacity where best[b - c] + delta < next[b] {
                    next[b] = best[b - c] + delta
                    picked[b] = UInt8(k)
                }
            }
            best = next
            choice[u] = picked
        }
        var ranks: [ProjectionID: Int] = [:]
        var b = capacity
        for u in options.indices.reversed() {
            let option = options[u][Int(choice[u][b])]
            b -= buckets(option.cost)
            let p = profiles[u]
            ranks[p.id] = option.fraction.map { p.uniformRank(keptFraction: $0) } ?? min(p.outputs, p.inputs)  // nil: stays dense
        }
        return RankPlan(ranks: ranks)
    }

    /// A unit's options, cheapest first: each candidate under the monotone envelope, then dense.
    static func options(_ p: ProjectionProfile, points: [SensitivityPoint], baseline: Double) -> [Option] {
        let sorted = points.sorted { $0.keptFraction < $1.keptFraction }
        var options: [Option] = []
        var envelope = 0.0  // max(0, Δ of every larger fraction), filled from the largest fraction down
        for point in sorted.reversed() {
            envelope = max(envelope, point.loss - baseline)
            options.append(Option(fraction: point.keptFraction, cost: p.cost(rank: p.uniformRank(keptFraction: point.keptFraction)), delta: envelope))
        }
        options.reverse()
        options.append(Option(fraction: nil, cost: p.denseParameters, delta: 0))
        return options
    }
}
