import Gradients
import Llama

/// What one factorisation covers, by method: one projection; SkipCat's Cat group (the projections
/// that read one input: q/k/v, gate/up); or Basis Sharing's group (one projection type of
/// consecutive layers). Members are stacked along outputs, `[W_1; W_2; …]` `[Σ m_i × n]`: they read
/// inputs with one Gram matrix (Cat: the same input; Basis Sharing: the group's Gram matrices
/// summed), so one whitening serves them, and the factorisation's right factor `A [r × n]` is
/// shared while each member keeps its rows of the left factor.
public struct FactorizationUnit: Sendable, Equatable {
    /// In stacking order; the first one keys the unit in a `RankPlan`.
    public var members: [ProjectionID]
    /// Block-skipped after truncation (SkipCat's Skip).
    public var skipped: Bool
    /// Basis Sharing: the layers whose same projection shares the right factor.
    public var basis: SharedBasisID?

    public init(members: [ProjectionID], skipped: Bool = false, basis: SharedBasisID? = nil) {
        precondition(!members.isEmpty && members.allSatisfy { $0.kind.inputSite == members[0].kind.inputSite }, "a unit's members read one input site")
        self.members = members
        self.skipped = skipped
        self.basis = basis
    }

    public var id: ProjectionID { members[0] }
    public var site: InputSite { id.kind.inputSite }
    /// The layer after whose calibration the unit's statistics are complete.
    public var lastLayer: Int { members.map(\.layer).max()! }
    /// Several projections of one layer sharing a right factor.
    public var isCat: Bool { basis == nil && members.count > 1 }

    /// The units `method` factorises, layer by layer (a Basis Sharing group at its last layer).
    /// Basis Sharing shares q, k, v, gate and up across `groupSize` layers and keeps o and down per
    /// layer, as its code does (algorithms.md §4); the last group may be shorter.
    public static func units(method: CompressionMethod, configuration c: LlamaConfiguration, groupSize: Int = 1) -> [FactorizationUnit] {
        var units: [FactorizationUnit] = []
        for layer in 0..<c.layerCount {
            for site in InputSite.allCases {
                let kinds = site.projections
                if method.stacksSharedInput && kinds.count > 1 {
                    units.append(FactorizationUnit(members: kinds.map { ProjectionID(layer: layer, kind: $0) }, skipped: method.skips))
                    continue
                }
                for kind in kinds {
                    if method.sharesAcrossLayers && [.query, .key, .value, .gate, .up].contains(kind) {
                        guard (layer + 1) % groupSize == 0 || layer == c.layerCount - 1 else { continue }
                        let first = layer - layer % groupSize
                        let members = (first...layer).map { ProjectionID(layer: $0, kind: kind) }
                        units.append(FactorizationUnit(members: members, basis: SharedBasisID(kind: kind, layers: first..<layer + 1)))
                    } else {
                        units.append(FactorizationUnit(members: [ProjectionID(layer: layer, kind: kind)], skipped: method.skips))
                    }
                }
            }
        }
        return units
    }

    /// The unit's shape for an allocator.
    public func profile(_ c: LlamaConfiguration) -> ProjectionProfile {
        ProjectionProfile(id: id, outputs: members.reduce(0) { $0 + c.shape(of: $1.kind).outputs }, inputs: c.shape(of: id.kind).inputs,
                          members: members, skipped: skipped)
    }
}

extension FisherImportance.Entry {
    /// A unit's importance: its members' sums (α, Σ W², Σ G² add over disjoint weights; the
    /// first-window norm is the norm of the stacked gradient).
    static func summed(_ entries: [FisherImportance.Entry]) -> FisherImportance.Entry? {
        guard let first = entries.first else { return nil }
        guard entries.count > 1 else { return first }
        let summedSquares = entries.allSatisfy { $0.squareOfSummedGradient != nil } ? entries.reduce(0) { $0 + $1.squareOfSummedGradient! } : nil
        return FisherImportance.Entry(fisher: entries.reduce(0) { $0 + $1.fisher }, weightOnly: entries.reduce(0) { $0 + $1.weightOnly },
                                      gradientOnly: entries.reduce(0) { $0 + $1.gradientOnly },
                                      firstWindowGradientNorm: entries.reduce(0) { $0 + $1.firstWindowGradientNorm * $1.firstWindowGradientNorm }.squareRoot(),
                                      squareOfSummedGradient: summedSquares)
    }
}
