import Foundation
import Tokenization

/// What to continue: raw text (tokenised with the model's special tokens, e.g. BOS), or a
/// conversation rendered by the model's chat template with an open assistant turn.
public enum Prompt: Sendable, Equatable {
    case text(String)
    case chat([ChatTemplate.Message])
}

/// Why a generation could not start.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    case noChatTemplate(source: String)
    case emptyPrompt
    case tooLong(promptTokens: Int, maxTokens: Int, contextLength: Int)

    public var description: String {
        switch self {
        case .noChatTemplate(let source): String(describing: TokenizationError.noChatTemplate(source: source))
        case .emptyPrompt: "the prompt encodes to no tokens"
        case .tooLong(let prompt, let maxTokens, let context):
            "the prompt (\(prompt) tokens) plus \(maxTokens) new tokens exceeds the context length \(context)"
        }
    }
}

/// One finished generation: its text (stop tokens not included) and its tokens and timings.
public struct TextGeneration: Sendable {
    public var text: String
    public var generation: Generation
    /// Bytes of the prompt that no token of the vocabulary covers (skipped, and reported).
    public var skippedPromptBytes: Int
}

/// Prompt in, text out, for one model: chat template, stop tokens, sampling and streaming
/// detokenisation in one place, shared by `lowrank generate`, summarisation and serving.
/// Buffers (KV cache, workspace) are kept between generations and grown when a longer one comes.
/// Not thread-safe: one generation at a time.
public final class GenerationSession {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let chatTemplate: ChatTemplate?
    /// Where the model came from (named in errors).
    public let source: String
    /// Tokens that end a reply: the tokenizer's EOS and, when it is a token, ChatML's `<|im_end|>`
    /// (an instruct model's turn ends with it even where EOS is another token).
    public let stopTokens: Set<Int>
    private var generator: Generator?

    public init(model: LlamaModel, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?, source: String) {
        self.model = model
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.source = source
        stopTokens = Set([tokenizer.eosTokenID, tokenizer.id(of: "<|im_end|>")].compactMap { $0 })
    }

    /// The session of a loaded model, running `model` (its weights possibly converted or truncated).
    public convenience init(model: LlamaModel, loaded: LoadedModel) {
        self.init(model: model, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate, source: loaded.source.path)
    }

    /// Σ m·n over the dense model's projections (what FLRC's compression rate is relative to).
    public var denseProjectionParameters: Int { ParameterCount(configuration: model.configuration).projections.values.reduce(0, +) }

    /// The prompt's tokens, as `generate` would feed them.
    public func encode(_ prompt: Prompt) throws(GenerationError) -> BPETokenizer.Encoding {
        try Self.encode(prompt, tokenizer: tokenizer, chatTemplate: chatTemplate, source: source)
    }

    /// The same without a session (the server encodes on its request threads, the model runs elsewhere).
    public static func encode(_ prompt: Prompt, tokenizer: BPETokenizer, chatTemplate: ChatTemplate?,
                              source: String) throws(GenerationError) -> BPETokenizer.Encoding {
        let text: String
        switch prompt {
        case .text(let raw):
            text = raw
        case .chat(let messages):
            guard let chatTemplate else { throw .noChatTemplate(source: source) }
            text = chatTemplate.render(messages)
        }
        return tokenizer.encodeCounting(text, addSpecialTokens: true)
    }

    /// Generates up to `maxTokens` tokens after `prompt`, handing each newly complete piece of text
    /// to `onText` (which may return false to stop). Stops at a stop token (not part of the text)
    /// unless `ignoreEOS`. A `schedule` sets the low-rank modules' active rank per generated token.
    public func generate(_ prompt: Prompt, maxTokens: Int, sampling: SamplingSettings = .greedy, ignoreEOS: Bool = false,
                         schedule: (any RankSchedule)? = nil, onText: (String) -> Bool = { _ in true }) throws(GenerationError) -> TextGeneration {
        let encoding = try encode(prompt)
        guard !encoding.ids.isEmpty else { throw .emptyPrompt }
        let needed = encoding.ids.count + maxTokens
        guard needed <= model.configuration.contextLength else {
            throw .tooLong(promptTokens: encoding.ids.count, maxTokens: maxTokens, contextLength: model.configuration.contextLength)
        }
        if generator.map({ $0.cache.capacity < needed }) ?? true {
            generator = Generator(model: model, capacity: needed)
        }
        let stop = ignoreEOS ? [] : stopTokens
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var text = ""
        var stopped = false
        let generation = generator!.generate(prompt: encoding.ids, maxTokens: maxTokens, sampling: sampling, stopTokens: stop,
                                                   schedule: schedule) { token in
            if stop.contains(token) { return true }
            // A sampled id is always in the vocabulary, so its bytes exist.
            guard let piece = try? decoder.append(token), !piece.isEmpty else { return true }
            text += piece
            if !onText(piece) { stopped = true }
            return !stopped
        }
        let rest = decoder.finish()
        if !rest.isEmpty && !stopped {
            text += rest
            _ = onText(rest)
        }
        return TextGeneration(text: text, generation: generation, skippedPromptBytes: encoding.skippedBytes)
    }
}
