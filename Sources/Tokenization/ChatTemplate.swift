/// The ChatML conversation format (`<|im_start|>role\ncontent<|im_end|>\n`) that SmolLM2 uses,
/// rendered directly rather than by a Jinja interpreter. Built from the model's template so the
/// default system prompt is the model's own.
public struct ChatTemplate: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public enum Role: String, Sendable { case system, user, assistant }
        public var role: Role
        public var content: String
        public init(_ role: Role, _ content: String) {
            self.role = role
            self.content = content
        }
    }

    /// Inserted as the first message when a conversation does not start with a system message
    /// (the GGUF template's `loop.first and messages[0]['role'] != 'system'` branch).
    public var defaultSystemPrompt: String?

    public init(defaultSystemPrompt: String?) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Recognises a ChatML Jinja template and extracts its default system prompt.
    public init(jinja template: String, source: String) throws(TokenizationError) {
        guard template.contains("<|im_start|>"), template.contains("<|im_end|>") else {
            throw .unsupported(source: source, what: "chat template", value: String(template.prefix(60)),
                               supported: ["ChatML (<|im_start|>role ... <|im_end|>)"])
        }
        let marker = "<|im_start|>system\n"
        if let start = template.range(of: marker), let end = template[start.upperBound...].range(of: "<|im_end|>") {
            defaultSystemPrompt = String(template[start.upperBound..<end.lowerBound])
        } else {
            defaultSystemPrompt = nil
        }
    }

    /// The prompt text; with `addGenerationPrompt`, ends with the opening of an assistant turn.
    public func render(_ messages: [Message], addGenerationPrompt: Bool = true) -> String {
        var text = ""
        if messages.first?.role != .system, let defaultSystemPrompt {
            text += "<|im_start|>system\n\(defaultSystemPrompt)<|im_end|>\n"
        }
        for message in messages {
            text += "<|im_start|>\(message.role.rawValue)\n\(message.content)<|im_end|>\n"
        }
        if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        return text
    }
}
