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
    /// How the caches this model's runners make (`makeCache`) store keys and values: a run-time
    /// choice, like the active rank (`lowrank … --kv-cache`).
    public var keyValuePrecision: KVCachePrecision = .float32

    public init(configuration: LlamaConfiguration, tokenEmbedding: WeightMatrix, layers: [DecoderLayer], finalNorm: [Float], outputHead: Linear) {
        self.configuration = configuration
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.outputHead = outputHead
    }

    /// Builds the runnable model; `precision` chooses how projection weights, low-rank factors
    /// and the head are stored. Matrices a loader gave in half precision (`weights.halfPrecision`)
    /// are used as they are (in place from the file when mapped) when `precision` is theirs.
    /// With `halfAsStored`, matrices the loader gave in half precision stay in it whatever
    /// `precision` says (compression from a memory map: `LoadOptions.mapsStoredHalfPrecision`; the
    /// layer being compressed is widened to Float32 on its own, `Compressor`).
    /// Float32 weights share the arrays of `weights` (no copy); `init(moving:)` is what runs fastest.
    public init(configuration: LlamaConfiguration, weights: LlamaWeights, precision: WeightPrecision = .float32, halfAsStored: Bool = false) {
        var store = StorageMemo { halfAsStored && $0.precision != .float32 ? $0 : $0.converted(to: precision) }
        self.init(configuration: configuration, tokenEmbedding: Self.tokenEmbedding(of: weights),
                  layers: weights.layers.indices.map { Self.layer($0, of: weights).mapWeights { store($0) } },
                  finalNorm: weights.finalNorm, outputHead: .dense(DenseLinear(store(Self.head(of: weights, configuration: configuration)))))
    }

    /// Builds the runnable model by moving `weights` into it, for inference. Float32 weights are
    /// copied into cache-line aligned storage of the model's own (`WeightMatrix.cacheLineAligned`:
    /// loaders' arrays start 48 bytes into a line, and aligned rows decode faster), and each layer's
    /// weights are released from `weights` as soon as its copy exists, so the model and the loaded
    /// weights never both exist whole (at most one layer, and the token embedding when it is the
    /// tied Float32 head, are held twice). Afterwards `weights` holds the final norm only.
    public init(configuration: LlamaConfiguration, moving weights: inout LlamaWeights, precision: WeightPrecision = .float32) {
        var store = StorageMemo { $0.converted(to: precision).cacheLineAligned() }
        var layers: [DecoderLayer] = []
        layers.reserveCapacity(weights.layers.count)
        for l in weights.layers.indices {
            layers.append(Self.layer(l, of: weights).mapWeights { store($0) })
            weights.removeProjections(layer: l)
        }
        let head = store(Self.head(of: weights, configuration: configuration))
        // Row lookups gain nothing from alignment: the embedding shares the tied head's copy when
        // that kept its precision, and stays as loaded otherwise.
        let loadedEmbedding = Self.tokenEmbedding(of: weights)
        let embedding = store.existingResult(of: loadedEmbedding).flatMap { $0.precision == loadedEmbedding.precision ? $0 : nil } ?? loadedEmbedding
        let finalNorm = weights.finalNorm
        weights = LlamaWeights(tokenEmbedding: Matrix(rows: 0, columns: 0, storage: []), layers: [], finalNorm: finalNorm, outputHead: nil)
        self.init(configuration: configuration, tokenEmbedding: embedding, layers: layers,
                  finalNorm: finalNorm, outputHead: .dense(DenseLinear(head)))
    }

    /// `[vocabulary × hidden]`: the loader's mapped half-precision tensor, or the Float32 one.
    private static func tokenEmbedding(of weights: LlamaWeights) -> WeightMatrix {
        weights.halfPrecision[.tokenEmbedding] ?? WeightMatrix(weights.tokenEmbedding)
    }

    /// Decoder layer `l` with its weights as loaded: compressed groups, half-precision matrices,
    /// and Float32 ones sharing the loader's arrays (the inits then store each as they choose).
    private static func layer(_ l: Int, of weights: LlamaWeights) -> DecoderLayer {
        let w = weights.layers[l]
        return DecoderLayer(attentionNorm: w.attentionNorm, mlpNorm: w.mlpNorm) { site in
            if let group = weights.compressedGroups[GroupID(layer: l, site: site)] { return group }
            return ProjectionGroup(site: site, layout: .separate(site.projections.map { kind in
                .dense(DenseLinear(weights.halfPrecision[.projection(ProjectionID(layer: l, kind: kind))] ?? WeightMatrix(w[kind])))
            }))
        }
    }

    /// The output head `[vocabulary × hidden]` as loaded (the token embedding when tied).
    private static func head(of weights: LlamaWeights, configuration: LlamaConfiguration) -> WeightMatrix {
        let half = weights.halfPrecision
        return half[.outputHead] ?? (configuration.tiedEmbeddings ? half[.tokenEmbedding] : nil)
            ?? WeightMatrix(weights.outputHead ?? weights.tokenEmbedding)
    }

    public subscript(id: ProjectionID) -> Linear {
        get { layers[id.layer][id.kind] }
        set { layers[id.layer][id.kind] = newValue }
    }

    public subscript(id: GroupID) -> ProjectionGroup {
        get { layers[id.layer][id.site] }
        set { layers[id.layer][id.site] = newValue }
    }

    /// A cache for up to `capacity` positions at the model's `keyValuePrecision`.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(configuration: configuration, capacity: capacity, precision: keyValuePrecision)
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

/// Applies a storage change (precision, alignment) once per source buffer, so weights that shared a
/// buffer as loaded (a tied head and embedding, a Basis Sharing basis) share one after it too.
/// Sources are keyed by address: valid while each source stays allocated from its first lookup to
/// its last, and no new source is allocated meanwhile (true in both `LlamaModel` inits: a moving
/// build releases a layer's sources only after all of them were looked up).
private struct StorageMemo {
    let transform: (WeightMatrix) -> WeightMatrix
    private var results: [Int: WeightMatrix] = [:]

    init(_ transform: @escaping (WeightMatrix) -> WeightMatrix) { self.transform = transform }

    mutating func callAsFunction(_ w: WeightMatrix) -> WeightMatrix {
        guard let key = w.storageAddress else { return transform(w) }
        if let done = results[key] { return done }
        let result = transform(w)
        results[key] = result
        return result
    }

    /// What `w`'s buffer already became, if it was stored.
    func existingResult(of w: WeightMatrix) -> WeightMatrix? { w.storageAddress.flatMap { results[$0] } }
}
