import LinearAlgebra

/// One decoder layer ready to run.
public struct DecoderLayer: Sendable, Equatable {
    public var attentionNorm: [Float]  // [hidden]
    public var mlpNorm: [Float]  // [hidden]
    public var query: Linear  // [heads·d × hidden]
    public var key: Linear  // [kvHeads·d × hidden]
    public var value: Linear  // [kvHeads·d × hidden]
    public var output: Linear  // [hidden × heads·d]
    public var gate: Linear  // [intermediate × hidden]
    public var up: Linear  // [intermediate × hidden]
    public var down: Linear  // [hidden × intermediate]

    public subscript(kind: ProjectionKind) -> Linear {
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

/// A Llama-family model that runs: embedding, decoder layers with swappable linear layers, final
/// norm and output head (tied or separate).
public struct LlamaModel: Sendable {
    public var configuration: LlamaConfiguration
    public var tokenEmbedding: Matrix<Float>  // [vocabulary × hidden]
    public var layers: [DecoderLayer]
    public var finalNorm: [Float]  // [hidden]
    /// `[vocabulary × hidden]`; the token embedding when tied.
    public var outputHead: Linear

    /// Builds the runnable model; `precision` chooses how projection and head weights are stored.
    public init(configuration: LlamaConfiguration, weights: LlamaWeights, precision: WeightPrecision = .float32) {
        self.configuration = configuration
        tokenEmbedding = weights.tokenEmbedding
        layers = weights.layers.enumerated().map { l, w in
            func linear(_ kind: ProjectionKind) -> Linear {
                if let factors = weights.factored[ProjectionID(layer: l, kind: kind)] { return .lowRank(factors) }
                return .dense(DenseLinear(w[kind], precision: precision))
            }
            return DecoderLayer(attentionNorm: w.attentionNorm, mlpNorm: w.mlpNorm,
                                query: linear(.query), key: linear(.key), value: linear(.value), output: linear(.output),
                                gate: linear(.gate), up: linear(.up), down: linear(.down))
        }
        finalNorm = weights.finalNorm
        outputHead = .dense(DenseLinear(weights.outputHead ?? weights.tokenEmbedding, precision: precision))
    }

    public subscript(id: ProjectionID) -> Linear {
        get { layers[id.layer][id.kind] }
        set { layers[id.layer][id.kind] = newValue }
    }

    /// Largest scratch any layer needs for `rows` input rows (half-precision weights widened for a
    /// batched product; the `[rows × rank]` intermediate of a low-rank layer).
    func scratchCount(rows: Int) -> Int {
        var m = outputHead.scratchCount(rows: rows)
        for layer in layers { for kind in ProjectionKind.allCases { m = max(m, layer[kind].scratchCount(rows: rows)) } }
        return max(m, 1)
    }

    /// Bytes of weights read per decoded token (all projections and the head).
    public var weightBytes: Int {
        var total = outputHead.byteCount
        for layer in layers { for kind in ProjectionKind.allCases { total += layer[kind].byteCount } }
        return total
    }
}
