import ModelFormats

/// Hyper-parameters of a Llama-family model (Llama 2/3, Mistral shapes, SmolLM2), mirroring the
/// fields of a Hugging Face `config.json`.
public struct LlamaConfiguration: Codable, Equatable, Sendable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var attentionHeads: Int
    /// Grouped-query attention: each KV head serves `attentionHeads / keyValueHeads` query heads.
    public var keyValueHeads: Int
    public var headDimension: Int
    public var vocabularySize: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Float
    public var contextLength: Int
    /// The output head reuses the token embedding matrix.
    public var tiedEmbeddings: Bool

    public init(
        hiddenSize: Int, intermediateSize: Int, layerCount: Int, attentionHeads: Int, keyValueHeads: Int,
        headDimension: Int? = nil, vocabularySize: Int, rmsNormEpsilon: Float, ropeTheta: Float,
        contextLength: Int, tiedEmbeddings: Bool
    ) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDimension = headDimension ?? (attentionHeads > 0 ? hiddenSize / attentionHeads : 0)
        self.vocabularySize = vocabularySize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
    }

    public var queryWidth: Int { attentionHeads * headDimension }
    public var keyValueWidth: Int { keyValueHeads * headDimension }

    /// `[outputs × inputs]` of each projection.
    public func shape(of kind: ProjectionKind) -> (outputs: Int, inputs: Int) {
        switch kind {
        case .query: (queryWidth, hiddenSize)
        case .key, .value: (keyValueWidth, hiddenSize)
        case .output: (hiddenSize, queryWidth)
        case .gate, .up: (intermediateSize, hiddenSize)
        case .down: (hiddenSize, intermediateSize)
        }
    }

    /// Every layer of every checkpoint form keeps its two norm vectors as tensors, so a file holding
    /// `tensorCount` tensors has at most tensorCount / 2 layers. Loaders check this before any work
    /// sized by the declared layer count (the GGUF fuzz target found a header declaring 44,289 layers
    /// over 11 tensors, which spent a second building tensor names before the first one was missing).
    public func requireLayerCount(fitting tensorCount: Int, source: String, key: String) throws(ModelFormatError) {
        guard layerCount <= tensorCount / 2 else {
            throw .invalidValue(path: source, key: key,
                                reason: "\(layerCount) layers need at least \(2 * layerCount) tensors (two norms each), the file has \(tensorCount)")
        }
    }

    /// Checks the invariants the engine relies on; `source` names the file for the message.
    public func validate(source: String) throws(ModelFormatError) {
        func require(_ ok: Bool, _ key: String, _ reason: String) throws(ModelFormatError) {
            if !ok { throw .invalidValue(path: source, key: key, reason: reason) }
        }
        try require(hiddenSize > 0, "hidden size", "must be positive")
        try require(intermediateSize > 0, "intermediate size", "must be positive")
        try require(layerCount > 0, "layer count", "must be positive")
        try require(attentionHeads > 0, "attention heads", "must be positive")
        try require(keyValueHeads > 0 && attentionHeads % keyValueHeads == 0, "key/value heads",
                    "\(keyValueHeads) does not divide \(attentionHeads) query heads")
        try require(headDimension > 0 && headDimension % 2 == 0, "head dimension", "\(headDimension) must be positive and even (RoPE pairs)")
        try require(vocabularySize > 0, "vocabulary size", "must be positive")
        try require(rmsNormEpsilon > 0 && rmsNormEpsilon.isFinite, "rms_norm_eps", "must be a positive finite number")
        try require(ropeTheta > 0 && ropeTheta.isFinite, "rope theta", "must be a positive finite number")
        try require(contextLength > 0, "context length", "must be positive")
    }
}
