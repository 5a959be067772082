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

    /// Actual counts of a (possibly compressed) model: each compressed group counts what it stores.
    /// A shared right factor is counted under the group's first projection kind; a right basis shared
    /// across layers counts once, under the first layer that uses it.
    public init(configuration c: LlamaConfiguration, compressedGroups: [GroupID: ProjectionGroup]) {
        self.init(configuration: c)
        var countedBases: Set<SharedBasisID> = []
        for (id, group) in compressedGroups.sorted(by: { $0.key < $1.key }) {
            for kind in id.site.projections {
                let s = c.shape(of: kind)
                projections[kind, default: 0] -= s.outputs * s.inputs
            }
            switch group.layout {
            case .separate(let members):
                for (kind, member) in zip(id.site.projections, members) {
                    var count = member.parameterCount
                    if let basis = member.lowRank?.basis, !countedBases.insert(basis).inserted { count -= member.lowRank!.right.parameterCount }
                    projections[kind, default: 0] += count
                }
            case .sharedRight(let shared):
                projections[id.site.projections[0], default: 0] += shared.right.parameterCount
                for (kind, left) in zip(id.site.projections, shared.lefts) { projections[kind, default: 0] += left.count }
            }
        }
    }

    public var projectionTotal: Int { projections.values.reduce(0, +) }
    public var total: Int { embedding + outputHead + norms + projectionTotal }
}
