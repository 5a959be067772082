/// The seven linear projections of a Llama decoder layer.
public enum ProjectionKind: String, CaseIterable, Codable, Sendable, Comparable {
    case query, key, value, output, gate, up, down

    /// Hugging Face module name (`self_attn.q_proj`, `mlp.down_proj`, ...).
    public var huggingFaceName: String {
        switch self {
        case .query: "self_attn.q_proj"
        case .key: "self_attn.k_proj"
        case .value: "self_attn.v_proj"
        case .output: "self_attn.o_proj"
        case .gate: "mlp.gate_proj"
        case .up: "mlp.up_proj"
        case .down: "mlp.down_proj"
        }
    }

    /// Short HF name (`q_proj`), as the fixtures and papers write it.
    public var shortName: String { String(huggingFaceName.split(separator: ".").last!) }

    /// GGUF tensor name stem (llama.cpp `LLM_TENSOR_*` table).
    public var ggufName: String {
        switch self {
        case .query: "attn_q"
        case .key: "attn_k"
        case .value: "attn_v"
        case .output: "attn_output"
        case .gate: "ffn_gate"
        case .up: "ffn_up"
        case .down: "ffn_down"
        }
    }

    public static func < (a: ProjectionKind, b: ProjectionKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One projection of one layer.
public struct ProjectionID: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var layer: Int
    public var kind: ProjectionKind

    public init(layer: Int, kind: ProjectionKind) {
        self.layer = layer
        self.kind = kind
    }

    public var description: String { "\(layer).\(kind.shortName)" }

    /// Hugging Face module path (`model.layers.3.self_attn.q_proj`); tensors are `<module>.weight`,
    /// or `<module>.left` and `<module>.right` when factored.
    public var huggingFaceModule: String { "model.layers.\(layer).\(kind.huggingFaceName)" }

    public static func < (a: ProjectionID, b: ProjectionID) -> Bool { (a.layer, a.kind) < (b.layer, b.kind) }
}

/// Every tensor a Llama model has, addressed by type. Names in files are produced from roles,
/// never parsed.
public enum TensorRole: Hashable, Sendable {
    case tokenEmbedding
    case outputHead
    case finalNorm
    case attentionNorm(layer: Int)
    case mlpNorm(layer: Int)
    case projection(ProjectionID)

    public var ggufName: String {
        switch self {
        case .tokenEmbedding: "token_embd.weight"
        case .outputHead: "output.weight"
        case .finalNorm: "output_norm.weight"
        case .attentionNorm(let layer): "blk.\(layer).attn_norm.weight"
        case .mlpNorm(let layer): "blk.\(layer).ffn_norm.weight"
        case .projection(let id): "blk.\(id.layer).\(id.kind.ggufName).weight"
        }
    }

    public var huggingFaceName: String {
        switch self {
        case .tokenEmbedding: "model.embed_tokens.weight"
        case .outputHead: "lm_head.weight"
        case .finalNorm: "model.norm.weight"
        case .attentionNorm(let layer): "model.layers.\(layer).input_layernorm.weight"
        case .mlpNorm(let layer): "model.layers.\(layer).post_attention_layernorm.weight"
        case .projection(let id): "model.layers.\(id.layer).\(id.kind.huggingFaceName).weight"
        }
    }

    /// Row-major shape the configuration implies.
    public func shape(in configuration: LlamaConfiguration) -> [Int] {
        switch self {
        case .tokenEmbedding, .outputHead: [configuration.vocabularySize, configuration.hiddenSize]
        case .finalNorm, .attentionNorm, .mlpNorm: [configuration.hiddenSize]
        case .projection(let id):
            [configuration.shape(of: id.kind).outputs, configuration.shape(of: id.kind).inputs]
        }
    }

    /// All roles of a model, output head included only when it is not tied.
    public static func all(for configuration: LlamaConfiguration) -> [TensorRole] {
        var roles: [TensorRole] = [.tokenEmbedding]
        for layer in 0..<configuration.layerCount {
            roles.append(.attentionNorm(layer: layer))
            roles += ProjectionKind.allCases.map { .projection(ProjectionID(layer: layer, kind: $0)) }
            roles.append(.mlpNorm(layer: layer))
        }
        roles.append(.finalNorm)
        if !configuration.tiedEmbeddings { roles.append(.outputHead) }
        return roles
    }
}
