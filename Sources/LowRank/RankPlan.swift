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

    /// Parameters the plan stores: r·(m+n) per projection, or m·n where that would not save
    /// anything and the compressor keeps the projection dense.
    public func parameters(_ profiles: [ProjectionProfile]) -> Int {
        profiles.reduce(0) { total, p in
            let r = ranks[p.id] ?? 0
            return total + (factorsPastBreakEven && r >= 1 ? r * p.perRank : p.cost(rank: r))
        }
    }
}

/// What an allocator knows about one projection `W [outputs × inputs]`.
public struct ProjectionProfile: Sendable {
    public var id: ProjectionID
    public var outputs: Int
    public var inputs: Int
    /// Singular values of the scaled weight (W·S: whitened for SVD-LLM), descending; nil when the
    /// allocator asked for shapes only.
    public var singularValues: [Double]?
    /// FLRC's importances of the dense weight (from the backward pass), when the allocator asks.
    public var fisher: FisherImportance.Entry?
    /// ASVD's probes: the calibration loss with only this projection truncated, per kept fraction.
    public var sensitivity: [SensitivityPoint]?

    public init(id: ProjectionID, outputs: Int, inputs: Int, singularValues: [Double]? = nil, fisher: FisherImportance.Entry? = nil,
                sensitivity: [SensitivityPoint]? = nil) {
        self.sensitivity = sensitivity
        self.id = id
        self.outputs = outputs
        self.inputs = inputs
        self.singularValues = singularValues
        self.fisher = fisher
    }

    /// Parameters per unit of rank, m + n.
    public var perRank: Int { outputs + inputs }
    public var denseParameters: Int { outputs * inputs }
    /// The largest rank that still stores fewer parameters than the dense matrix: r·(m+n) < m·n.
    public var largestSavingRank: Int { (denseParameters - 1) / perRank }
    /// What a rank costs: r·(m+n), or m·n when that saves nothing (the projection stays dense).
    public func cost(rank: Int) -> Int {
        rank >= 1 && rank <= largestSavingRank ? rank * perRank : denseParameters
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
