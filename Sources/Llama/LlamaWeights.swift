import LinearAlgebra

/// The weights of one decoder layer, in Hugging Face layout (Q/K rows in rotate-half order).
/// A projection that a checkpoint stores compressed has no dense weight here at all: its form is
/// in `LlamaWeights.compressedGroups` (`dense(_:)` is nil for it, and no placeholder exists).
public struct LlamaLayerWeights: Sendable, Equatable {
    public var attentionNorm: [Float]  // [hidden]
    public var mlpNorm: [Float]  // [hidden]
    /// Dense weights in `ProjectionKind.allCases` order; nil where the projection is compressed.
    private var projections: [Matrix<Float>?]

    /// A layer whose seven projections are all dense.
    public init(
        attentionNorm: [Float], query: Matrix<Float>, key: Matrix<Float>, value: Matrix<Float>, output: Matrix<Float>,
        mlpNorm: [Float], gate: Matrix<Float>, up: Matrix<Float>, down: Matrix<Float>
    ) {
        self.attentionNorm = attentionNorm
        self.mlpNorm = mlpNorm
        projections = [query, key, value, output, gate, up, down]
        assert(ProjectionKind.allCases == [.query, .key, .value, .output, .gate, .up, .down])
    }

    /// A layer whose dense projections `dense(kind)` gives; nil for a projection stored compressed.
    public init(attentionNorm: [Float], mlpNorm: [Float], dense: (ProjectionKind) throws -> Matrix<Float>?) rethrows {
        self.attentionNorm = attentionNorm
        self.mlpNorm = mlpNorm
        projections = try ProjectionKind.allCases.map(dense)
    }

    /// The dense weight of `kind`, or nil when the checkpoint stores that projection compressed.
    public func dense(_ kind: ProjectionKind) -> Matrix<Float>? { projections[Self.index(kind)] }

    /// The dense weight of a projection that has one (asking for a compressed one is a
    /// programming error: compression starts from dense models, `Compress` checks `isDense`).
    public subscript(kind: ProjectionKind) -> Matrix<Float> {
        get {
            guard let m = projections[Self.index(kind)] else {
                preconditionFailure("\(kind) is stored compressed: it has no dense weight (see LlamaWeights.compressedGroups)")
            }
            return m
        }
        set { projections[Self.index(kind)] = newValue }
    }

    public var query: Matrix<Float> { get { self[.query] } set { self[.query] = newValue } }  // [heads·d × hidden]
    public var key: Matrix<Float> { get { self[.key] } set { self[.key] = newValue } }  // [kvHeads·d × hidden]
    public var value: Matrix<Float> { get { self[.value] } set { self[.value] = newValue } }  // [kvHeads·d × hidden]
    public var output: Matrix<Float> { get { self[.output] } set { self[.output] = newValue } }  // [hidden × heads·d]
    public var gate: Matrix<Float> { get { self[.gate] } set { self[.gate] = newValue } }  // [intermediate × hidden]
    public var up: Matrix<Float> { get { self[.up] } set { self[.up] = newValue } }  // [intermediate × hidden]
    public var down: Matrix<Float> { get { self[.down] } set { self[.down] = newValue } }  // [hidden × intermediate]

    private static func index(_ kind: ProjectionKind) -> Int { ProjectionKind.allCases.firstIndex(of: kind)! }
}

/// All weights of a Llama model.
public struct LlamaWeights: Sendable, Equatable {
    public var tokenEmbedding: Matrix<Float>  // [vocabulary × hidden]
    public var layers: [LlamaLayerWeights]
    public var finalNorm: [Float]  // [hidden]
    /// `[vocabulary × hidden]`; nil when the head is tied to `tokenEmbedding`.
    public var outputHead: Matrix<Float>?
    /// Projection groups of a compressed checkpoint, loaded straight into their form. A projection
    /// that has a group here has no dense weight in `layers` (`dense(_:)` is nil).
    public var compressedGroups: [GroupID: ProjectionGroup] = [:]

    /// Matrices loaded straight into a half precision for inference (`LoadOptions.halfPrecision`):
    /// dense projections and the head (used in place from the memory-mapped file where it stores
    /// that type, else converted one at a time), and the token embedding when used in place. A
    /// projection here has no Float32 weight in `layers` (`dense(_:)` is nil); when the embedding is
    /// here `tokenEmbedding` is empty (0 × 0). Such weights run; they are not compressed or
    /// differentiated (both need Float32).
    public var halfPrecision: [TensorRole: WeightMatrix] = [:]

    /// True when every projection is dense (what compression starts from).
    public var isDense: Bool { compressedGroups.isEmpty }

    /// Whether some right factor is block-skipped (SkipCat). Its first r′ < r ranks are not a
    /// truncation of the factorisation (B′ = B·A₁ mixes every rank), so such a checkpoint runs at
    /// its stored ranks only.
    public var hasSkippedFactors: Bool {
        factored.values.contains { if case .skipped = $0.right { true } else { false } }
    }

    /// The low-rank projections of a compressed checkpoint (views into their groups).
    public var factored: [ProjectionID: LowRankLinear] {
        var out: [ProjectionID: LowRankLinear] = [:]
        for (id, group) in compressedGroups {
            for (kind, member) in zip(id.site.projections, group.members) {
                if let l = member.lowRank { out[ProjectionID(layer: id.layer, kind: kind)] = l }
            }
        }
        return out
    }

    public init(tokenEmbedding: Matrix<Float>, layers: [LlamaLayerWeights], finalNorm: [Float], outputHead: Matrix<Float>?) {
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.outputHead = outputHead
    }

    public subscript(id: ProjectionID) -> Matrix<Float> {
        get { layers[id.layer][id.kind] }
        set { layers[id.layer][id.kind] = newValue }
    }

    /// The dense weight of `id` in Float32: its Float32 matrix, or its half-precision one widened
    /// (exactly; the mapped pages are released after). What compression factorises.
    public func float32(_ id: ProjectionID) -> Matrix<Float> {
        if let m = layers[id.layer].dense(id.kind) { return m }
        guard let half = halfPrecision[.projection(id)] else {
            preconditionFailure("\(id) is stored compressed: it has no dense weight (see LlamaWeights.compressedGroups)")
        }
        defer { half.releaseMappedPages() }
        return half.matrix
    }

    /// Drops the pages the half-precision projections of `layer` read from their memory-mapped
    /// file from the resident set (nothing for weights in memory).
    public func releaseMappedPages(layer: Int) {
        for kind in ProjectionKind.allCases { halfPrecision[.projection(ProjectionID(layer: layer, kind: kind))]?.releaseMappedPages() }
    }

    /// Drops every projection weight of `layer` (dense, half-precision and compressed groups), so
    /// its storage is freed unless something else holds it: `LlamaModel(moving:)` once the model
    /// holds the layer in storage of its own. The layer is left without weights.
    mutating func removeProjections(layer l: Int) {
        layers[l] = LlamaLayerWeights(attentionNorm: layers[l].attentionNorm, mlpNorm: layers[l].mlpNorm) { _ in nil }
        for site in InputSite.allCases { compressedGroups[GroupID(layer: l, site: site)] = nil }
        for kind in ProjectionKind.allCases { halfPrecision[.projection(ProjectionID(layer: l, kind: kind))] = nil }
    }

    /// The tensor of a role, flattened row-major (for writers and comparisons).
    public func values(of role: TensorRole) -> [Float]? {
        switch role {
        case .tokenEmbedding: tokenEmbedding.storage
        case .outputHead: outputHead?.storage
        case .finalNorm: finalNorm
        case .attentionNorm(let layer): layers[layer].attentionNorm
        case .mlpNorm(let layer): layers[layer].mlpNorm
        case .projection(let id): layers[id.layer].dense(id.kind)?.storage
        }
    }
}
