import LinearAlgebra

/// One decoder layer ready to run: two norms and four projection groups, one per input site.
public struct DecoderLayer: Sendable, Equatable, WeightMapping {
    public var attentionNorm: [Float]  // [hidden]
    public var mlpNorm: [Float]  // [hidden]
    /// q `[heads·d × hidden]`, k and v `[kvHeads·d × hidden]`.
    public var attentionInput: ProjectionGroup
    /// o `[hidden × heads·d]`.
    public var attentionOutput: ProjectionGroup
    /// gate and up `[intermediate × hidden]`.
    public var mlpInput: ProjectionGroup
    /// down `[hidden × intermediate]`.
    public var mlpHidden: ProjectionGroup

    public init(attentionNorm: [Float], mlpNorm: [Float], attentionInput: ProjectionGroup, attentionOutput: ProjectionGroup,
                mlpInput: ProjectionGroup, mlpHidden: ProjectionGroup) {
        self.attentionNorm = attentionNorm
        self.mlpNorm = mlpNorm
        self.attentionInput = attentionInput
        self.attentionOutput = attentionOutput
        self.mlpInput = mlpInput
        self.mlpHidden = mlpHidden
    }

    /// A layer whose group at each input site `group(site)` gives.
    public init(attentionNorm: [Float], mlpNorm: [Float], group: (InputSite) -> ProjectionGroup) {
        self.init(attentionNorm: attentionNorm, mlpNorm: mlpNorm, attentionInput: group(.attentionInput),
                  attentionOutput: group(.attentionOutput), mlpInput: group(.mlpInput), mlpHidden: group(.mlpHidden))
    }

    /// A layer whose projections are all separate (`linear(kind)` gives each).
    public init(attentionNorm: [Float], mlpNorm: [Float], _ linear: (ProjectionKind) -> Linear) {
        func group(_ site: InputSite) -> ProjectionGroup { ProjectionGroup(site: site, layout: .separate(site.projections.map(linear))) }
        self.init(attentionNorm: attentionNorm, mlpNorm: mlpNorm, attentionInput: group(.attentionInput),
                  attentionOutput: group(.attentionOutput), mlpInput: group(.mlpInput), mlpHidden: group(.mlpHidden))
    }

    public subscript(site: InputSite) -> ProjectionGroup {
        get {
            switch site {
            case .attentionInput: attentionInput
            case .attentionOutput: attentionOutput
            case .mlpInput: mlpInput
            case .mlpHidden: mlpHidden
            }
        }
        set {
            precondition(newValue.site == site, "a \(newValue.site) group cannot stand at \(site)")
            switch site {
            case .attentionInput: attentionInput = newValue
            case .attentionOutput: attentionOutput = newValue
            case .mlpInput: mlpInput = newValue
            case .mlpHidden: mlpHidden = newValue
            }
        }
    }

    /// One projection (a view into its group; setting it makes the group's members separate).
    public subscript(kind: ProjectionKind) -> Linear {
        get { self[kind.inputSite][kind] }
        set { self[kind.inputSite][kind] = newValue }
    }

    public var groups: [ProjectionGroup] { InputSite.allCases.map { self[$0] } }

    public func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> DecoderLayer {
        DecoderLayer(attentionNorm: attentionNorm, mlpNorm: mlpNorm, attentionInput: try attentionInput.mapWeights(transform),
                     attentionOutput: try attentionOutput.mapWeights(transform), mlpInput: try mlpInput.mapWeights(transform),
                     mlpHidden: try mlpHidden.mapWeights(transform))
    }
}
