/// Parameter counts of a model by kind of tensor.
public struct ParameterCount: Codable, Equatable, Sendable {
    public var embedding: Int
    /// Zero when the output head is tied to the embedding.
    public var outputHead: Int
    public var norms: Int
    /// Summed over layers, per projection kind.
    public var projections: [ProjectionKind: Int]

    public init(configuration c: LlamaConfiguration) {
        embedding = c.vocabularySize * c.hiddenSize
        outputHead = c.tiedEmbeddings ? 0 : c.vocabularySize * c.hiddenSize
        norms = (2 * c.layerCount + 1) * c.hiddenSize
        var projections: [ProjectionKind: Int] = [:]
        for kind in ProjectionKind.allCases {
            let s = c.shape(of: kind)
            projections[kind] = c.layerCount * s.outputs * s.inputs
        }
        self.projections = projections
    }

    /// Actual counts of a (possibly compressed) model: a factored projection counts rank·(m + n).
    public init(configuration c: LlamaConfiguration, factored: [ProjectionID: LowRankLinear]) {
        self.init(configuration: c)
        for (id, f) in factored {
            let s = c.shape(of: id.kind)
            projections[id.kind, default: 0] += f.parameterCount - s.outputs * s.inputs
        }
    }

    public var projectionTotal: Int { projections.values.reduce(0, +) }
    public var total: Int { embedding + outputHead + norms + projectionTotal }
}
