import Llama

/// What an allocator reads before it chooses ranks.
public enum AllocationInput: Sendable {
    /// The projections' shapes: ranks are known before calibration, and each layer is factorised
    /// as soon as its statistics exist.
    case shapes
    /// The singular values of every scaled weight: every projection is decomposed (at full rank,
    /// kept in memory as Float32) before any rank is chosen, then truncated to the plan.
    case spectra
}

/// A rule that turns a parameter budget into a rank per projection (an open set: FLRC's Fisher,
/// D-Rank's effective rank, ASVD's search, ...).
public protocol RankAllocator: Sendable {
    var input: AllocationInput { get }
    /// Ranks for `profiles` storing at most `keptFraction` of their dense parameters.
    func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan
}

/// The closed set of allocators the CLI offers (`--allocation`).
public enum AllocationMethod: String, CaseIterable, Codable, Sendable {
    /// SVD-LLM's rule: the same kept fraction of every matrix, r = ⌊keep·m·n/(m+n)⌋.
    case uniform
    /// D-Rank: ranks ∝ √(effective rank) within each projection type, then a Q/K → V transfer.
    case effectiveRank = "effective-rank"

    public func allocator(beta: Double, uniformFallback: Bool = false) -> any RankAllocator {
        switch self {
        case .uniform: UniformAllocator()
        case .effectiveRank: EffectiveRankAllocator(beta: beta, uniformFallback: uniformFallback)
        }
    }
}

/// SVD-LLM's uniform rank per matrix (each rounded down, so slightly under the budget).
public struct UniformAllocator: RankAllocator {
    public init() {}
    public var input: AllocationInput { .shapes }
    public func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan {
        RankPlan(ranks: Dictionary(uniqueKeysWithValues: profiles.map {
            ($0.id, uniformRank(outputs: $0.outputs, inputs: $0.inputs, keptFraction: keptFraction))
        }))
    }
}
