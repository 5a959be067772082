import ModelFormats

/// Where a model came from and how its tensors were stored, for reports.
public struct ModelSource: Sendable, Equatable {
    public enum Format: String, Sendable, Codable { case gguf = "GGUF", huggingFace = "Hugging Face safetensors" }
    public var path: String
    public var format: Format
    /// Number of tensors of each stored element type.
    public var tensorTypes: [ElementType: Int]
    /// Stored element type of each role kind, for `info` ("projections: Q4_1").
    public var typeByRole: [String: Set<ElementType>]
    /// Free-form metadata worth showing (model name, GGUF version, ...).
    public var details: [(String, String)]

    public static func == (a: ModelSource, b: ModelSource) -> Bool {
        a.path == b.path && a.format == b.format && a.tensorTypes == b.tensorTypes && a.typeByRole == b.typeByRole
    }
}

extension TensorRole {
    /// Coarse group for summaries.
    var group: String {
        switch self {
        case .tokenEmbedding: "token embedding"
        case .outputHead: "output head"
        case .finalNorm, .attentionNorm, .mlpNorm: "norms"
        case .projection(let id): id.kind.shortName
        }
    }
}
