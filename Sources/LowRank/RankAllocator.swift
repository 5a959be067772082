import Gradients
import Llama

/// What an allocator reads before it chooses ranks.
public enum AllocationInput: Sendable {
    /// The projections' shapes: ranks are known before calibration, and each layer is factorised
    /// as soon as its statistics exist.
    case shapes
    /// The singular values of every scaled weight: every projection is decomposed (at full rank,
    /// kept in memory as Float32) before any rank is chosen, then truncated to the plan.
    case spectra
    /// FLRC's Fisher importances of the dense weights: a backward pass over the calibration windows
    /// before any projection is factorised; the ranks are then known up front.
    case fisherImportance
    /// ASVD's sensitivity list: every projection's full-rank factors (as for spectra), then the
    /// calibration loss with one projection truncated at a time, at each candidate kept fraction.
    case sensitivity

    /// Whether the allocator reads calibration data even for a method that does not (plain SVD).
    public var needsCalibration: Bool { self == .fisherImportance || self == .sensitivity }
    /// Whether every projection is factorised at full rank before the plan exists.
    public var needsFullRankFactors: Bool { self == .spectra || self == .sensitivity }
    /// Whether the allocator runs the whole model (a backward pass, loss probes), which needs
    /// every weight in Float32 at once (no layer-by-layer widening from a memory map).
    public var runsWholeModel: Bool { self == .fisherImportance || self == .sensitivity }
}

/// A rule that turns a parameter budget into a rank per projection (an open set: FLRC's Fisher,
/// D-Rank's effective rank, ASVD's search, ...).
public protocol RankAllocator: Sendable {
    var input: AllocationInput { get }
    /// Ranks for `profiles` storing at most `keptFraction` of their dense parameters.
    func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan
    /// The importance this allocator reads from a projection's Fisher statistics (for reports).
    func importance(of entry: FisherImportance.Entry) -> Double?
}

extension RankAllocator {
    public func importance(of entry: FisherImportance.Entry) -> Double? { nil }
}

/// The closed set of allocators the CLI offers (`--allocation`).
public enum AllocationMethod: String, CaseIterable, Codable, Sendable {
    /// SVD-LLM's rule: the same kept fraction of every matrix, r = ⌊keep·m·n/(m+n)⌋.
    case uniform
    /// D-Rank: ranks ∝ √(effective rank) within each projection type, then a Q/K → V transfer.
    case effectiveRank = "effective-rank"
    /// ASVD's sensitivity search: calibration loss per projection and kept fraction, then a binary search.
    case asvdSearch = "asvd-search"
    /// ASVD's probes allocated as a knapsack: the least summed loss increase within the budget (ours).
    case asvdKnapsack = "asvd-knapsack"
    /// SVD-LLM V2: per projection type, less compression where the truncation loss is larger.
    case svdLLMV2 = "svd-llm-v2"
    /// FLRC: ranks ∝ α = Σ (G ⊙ W)² from a backward pass on the calibration windows.
    case fisher
    /// FLRC's ablation: ranks ∝ Σ W².
    case fisherWeight = "fisher-weight"
    /// FLRC's ablation: ranks ∝ Σ G².
    case fisherGradient = "fisher-gradient"

    public func allocator(beta: Double, uniformFallback: Bool = false, fisherCap: FisherCap = .breakEven) -> any RankAllocator {
        switch self {
        case .uniform: UniformAllocator()
        case .effectiveRank: EffectiveRankAllocator(beta: beta, uniformFallback: uniformFallback)
        case .svdLLMV2: TruncationLossAllocator()
        case .asvdSearch: SensitivitySearchAllocator()
        case .asvdKnapsack: SensitivityKnapsackAllocator()
        case .fisher: FisherAllocator(variant: .fisher, cap: fisherCap)
        case .fisherWeight: FisherAllocator(variant: .weightOnly, cap: fisherCap)
        case .fisherGradient: FisherAllocator(variant: .gradientOnly, cap: fisherCap)
        }
    }

    /// The allocations that read ASVD's sensitivity probes (the ones `--search-samples` and
    /// `--sensitivity-from` apply to; their probes are interchangeable).
    public var readsSensitivity: Bool { self == .asvdSearch || self == .asvdKnapsack }

    /// FLRC's family (the ones `--fisher-cap` applies to).
    public var isFisher: Bool { [.fisher, .fisherWeight, .fisherGradient].contains(self) }
}

/// SVD-LLM's uniform rank per matrix (each rounded down, so slightly under the budget); per unit
/// for units of several projections, and for skipped units the rank whose r·(m+n−r) meets it.
public struct UniformAllocator: RankAllocator {
    public init() {}
    public var input: AllocationInput { .shapes }
    public func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan {
        RankPlan(ranks: Dictionary(uniqueKeysWithValues: profiles.map {
            ($0.id, $0.uniformRank(keptFraction: keptFraction))
        }))
    }
}
