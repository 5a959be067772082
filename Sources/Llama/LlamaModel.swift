import LinearAlgebra

/// A Llama-family model that runs: embedding, decoder layers whose projection groups take any
/// layer form, final norm and output head (tied or separate).
public struct LlamaModel: Sendable {
    public var configuration: LlamaConfiguration
    /// `[vocabulary × hidden]`: Float32, or a loader's mapped half-precision tensor (rows widened on lookup).
    public var tokenEmbedding: WeightMatrix
    public var layers: [DecoderLayer]
    public var finalNorm: [Float]  // [hidden]
    /// `[vocabulary × hidden]`; the token embedding when tied.
    public var outputHead: Linear

    /// Builds the runnable model; `precision` chooses how projection weights, low-rank factors
    /// and the head are stored. Matrices a loader gave in half precision (`weights.halfPrecision`)
    /// are used as they are (in place from the file when mapped) when `precision` is theirs.
    /// With `halfAsStored`, matrices the loader gave in half precision stay in it whatever
    /// `precision` says (compression from a memory map: `LoadOptions.mapsStoredHalfPrecision`; the
    /// layer being compressed is widened to Float32 on its own, `Compressor`).
    public init(configuration: LlamaConfiguration, weights: LlamaWeights, precision: WeightPrecision = .float32, halfAsStored: Bool = false) {
        self.configuration = configuration
        let half = weights.halfPrecision
        func stored(_ m: WeightMatrix) -> WeightMatrix { halfAsStored ? m : m.converted(to: precision) }
        tokenEmbedding = half[.tokenEmbedding] ?? WeightMatrix(weights.tokenEmbedding)
        layers = weights.layers.enumerated().map { l, w in
            DecoderLayer(attentionNorm: w.attentionNorm, mlpNorm: w.mlpNorm) { site in
                if let group = weights.compressedGroups[GroupID(layer: l, site: site)] { return group.converted(to: precision) }
                return ProjectionGroup(site: site, layout: .separate(site.projections.map { kind in
                    if let m = half[.projection(ProjectionID(layer: l, kind: kind))] { return .dense(DenseLinear(stored(m))) }
                    return .dense(DenseLinear(w[kind], precision: precision))
                }))
            }
        }
        finalNorm = weights.finalNorm
        if let head = half[.outputHead] ?? (configuration.tiedEmbeddings ? half[.tokenEmbedding] : nil) {
            outputHead = .dense(DenseLinear(stored(head)))
        } else {
            outputHead = .dense(DenseLinear(weights.outputHead ?? weights.tokenEmbedding, precision: precision))
        }
    }

    public subscript(id: ProjectionID) -> Linear {
        get { layers[id.layer][id.kind] }
        set { layers[id.layer][id.kind] = newValue }
    }

    public subscript(id: GroupID) -> ProjectionGroup {
        get { layers[id.layer][id.site] }
        set { layers[id.layer][id.site] = newValue }
    }

    /// Runs every low-rank factor at `fraction` of its stored rank, rounded up (1 restores the
    /// stored ranks). Nothing is copied: products read a prefix of each factor.
    public mutating func setActiveRank(fraction: Double) {
        for l in layers.indices { for site in InputSite.allCases { layers[l][site].setActiveRank(fraction: fraction) } }
    }

    /// The same model with every projection, factor and the head stored at `precision`.
    public func converted(to precision: WeightPrecision) -> LlamaModel {
        var out = self
        for l in layers.indices { for site in InputSite.allCases { out.layers[l][site] = layers[l][site].converted(to: precision) } }
        out.outputHead = outputHead.converted(to: precision)
        return out
    }

    /// Largest scratch any group needs for `rows` input rows (half-precision weights widened for a
    /// batched product; the `[rows × rank]` intermediates of low-rank layers).
    func scratchCount(rows: Int) -> Int {
        var m = outputHead.scratchCount(rows: rows)
        for layer in layers { for group in layer.groups { m = max(m, group.scratchCount(rows: rows)) } }
        return max(m, 1)
    }

    /// Bytes of weights read per decoded token (all projections at their active ranks, and the head).
    public var weightBytes: Int {
        var total = outputHead.byteCount
        for layer in layers { for group in layer.groups { total += group.byteCount } }
        return total
    }

    /// Bytes of weights used in place from a memory-mapped file (the embedding counted once when
    /// the head is tied to it).
    public var mappedWeightBytes: Int {
        var total = tokenEmbedding.isMapped ? tokenEmbedding.count * tokenEmbedding.precision.bytesPerValue : 0
        if case .dense(let d) = outputHead, d.weight.isMapped, !(configuration.tiedEmbeddings && tokenEmbedding.isMapped) { total += d.byteCount }
        for layer in layers {
            for group in layer.groups {
                for case .dense(let d) in group.members where d.weight.isMapped { total += d.byteCount }
            }
        }
        return total
    }

    /// Projection parameters one token uses at the active ranks (FLRC's "parameters used").
    public var activeProjectionParameters: Int {
        layers.reduce(0) { $0 + $1.groups.reduce(0) { $0 + $1.activeParameterCount } }
    }

    /// Stored projection parameters (every form counted as stored).
    public var projectionParameters: Int {
        layers.reduce(0) { $0 + $1.groups.reduce(0) { $0 + $1.parameterCount } }
    }
}

/// One projection group: the projections of one layer that read one input site.
public struct GroupID: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var layer: Int
    public var site: InputSite

    public init(layer: Int, site: InputSite) {
        self.layer = layer
        self.site = site
    }

    public var description: String { "\(layer).\(site.rawValue)" }

    public static func < (a: GroupID, b: GroupID) -> Bool {
        (a.layer, InputSite.allCases.firstIndex(of: a.site)!) < (b.layer, InputSite.allCases.firstIndex(of: b.site)!)
    }
}
