import LinearAlgebra

/// The weights of one decoder layer, in Hugging Face layout (Q/K rows in rotate-half order).
public struct LlamaLayerWeights: Sendable, Equatable {
    public var attentionNorm: [Float]  // [hidden]
    public var query: Matrix<Float>  // [heads·d × hidden]
    public var key: Matrix<Float>  // [kvHeads·d × hidden]
    public var value: Matrix<Float>  // [kvHeads·d × hidden]
    public var output: Matrix<Float>  // [hidden × heads·d]
    public var mlpNorm: [Float]  // [hidden]
    public var gate: Matrix<Float>  // [intermediate × hidden]
    public var up: Matrix<Float>  // [intermediate × hidden]
    public var down: Matrix<Float>  // [hidden × intermediate]

    public init(
        attentionNorm: [Float], query: Matrix<Float>, key: Matrix<Float>, value: Matrix<Float>, output: Matrix<Float>,
        mlpNorm: [Float], gate: Matrix<Float>, up: Matrix<Float>, down: Matrix<Float>
    ) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.output = output
        self.mlpNorm = mlpNorm
        self.gate = gate
        self.up = up
        self.down = down
    }

    public subscript(kind: ProjectionKind) -> Matrix<Float> {
        get {
            switch kind {
            case .query: query
            case .key: key
            case .value: value
            case .output: output
            case .gate: gate
            case .up: up
            case .down: down
            }
        }
        set {
            switch kind {
            case .query: query = newValue
            case .key: key = newValue
            case .value: value = newValue
            case .output: output = newValue
            case .gate: gate = newValue
            case .up: up = newValue
            case .down: down = newValue
            }
        }
    }
}

/// All weights of a Llama model.
public struct LlamaWeights: Sendable, Equatable {
    public var tokenEmbedding: Matrix<Float>  // [vocabulary × hidden]
    public var layers: [LlamaLayerWeights]
    public var finalNorm: [Float]  // [hidden]
    /// `[vocabulary × hidden]`; nil when the head is tied to `tokenEmbedding`.
    public var outputHead: Matrix<Float>?
    /// Projection groups of a compressed checkpoint, loaded straight into their form. A projection
    /// that has a group here has an empty `[0 × 0]` dense slot in `layers`: no dense weight exists.
    public var compressedGroups: [GroupID: ProjectionGroup] = [:]

    /// True when every projection is dense (what compression starts from).
    public var isDense: Bool { compressedGroups.isEmpty }

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

    /// The tensor of a role, flattened row-major (for writers and comparisons).
    public func values(of role: TensorRole) -> [Float]? {
        switch role {
        case .tokenEmbedding: tokenEmbedding.storage
        case .outputHead: outputHead?.storage
        case .finalNorm: finalNorm
        case .attentionNorm(let layer): layers[layer].attentionNorm
        case .mlpNorm(let layer): layers[layer].mlpNorm
        case .projection(let id): self[id].storage
        }
    }
}
