import Foundation
import Testing
import TestSupport
import Llama
import Tokenization

/// The library's prompt-in, text-out path (what generate, summarize and serve share).
@Suite("Generation session")
struct GenerationSessionTests {
    static let tiny = TinyLlama(seed: 8)

    func session() throws -> GenerationSession {
        GenerationSession(model: LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights),
                          tokenizer: try Self.tiny.tokenizer(), chatTemplate: Self.tiny.chatTemplate, source: "tiny")
    }

    /// A chat prompt is the template's rendering with BOS, and the text is the decoded tokens: the
    /// same as driving `Generator` by hand, streamed in pieces that add up to it.
    @Test func aChatPromptGeneratesWhatTheGeneratorDoesOnTheRenderedTemplate() throws {
        let s = try session()
        let tokenizer = try Self.tiny.tokenizer()
        let messages = [ChatTemplate.Message(.user, "hello there")]
        let ids = tokenizer.encode(Self.tiny.chatTemplate.render(messages), addSpecialTokens: true)
        let byHand = Generator(model: s.model, capacity: ids.count + 12)
            .generate(prompt: ids, maxTokens: 12, sampling: .greedy, stopTokens: s.stopTokens)
        var pieces: [String] = []
        let result = try s.generate(.chat(messages), maxTokens: 12) { pieces.append($0); return true }
        #expect(result.generation.tokens == byHand.tokens && result.generation.promptTokens == ids.count)
        let kept = byHand.tokens.filter { !s.stopTokens.contains($0) }
        #expect(result.text == (try tokenizer.decode(kept)) && pieces.joined() == result.text)
    }

    /// Buffers are kept and grown: a short generation after a long one, and a long one after a
    /// short one, give what fresh sessions give.
    @Test func reusedBuffersGiveWhatAFreshSessionGives() throws {
        let s = try session()
        let long = try s.generate(.text("a b c d e f g h"), maxTokens: 20, ignoreEOS: true)
        let short = try s.generate(.text("a b"), maxTokens: 5, ignoreEOS: true)
        let longer = try s.generate(.text("a b c d e f g h i j k l"), maxTokens: 40, ignoreEOS: true)
        #expect(long.generation.tokens == (try session().generate(.text("a b c d e f g h"), maxTokens: 20, ignoreEOS: true)).generation.tokens)
        #expect(short.generation.tokens == (try session().generate(.text("a b"), maxTokens: 5, ignoreEOS: true)).generation.tokens)
        #expect(longer.generation.tokens == (try session().generate(.text("a b c d e f g h i j k l"), maxTokens: 40, ignoreEOS: true)).generation.tokens)
        #expect(longer.generation.tokens.count == 40)
    }

    @Test func returningFalseFromTheTextCallbackStopsGeneration() throws {
        let s = try session()
        let free = try s.generate(.text("a b c"), maxTokens: 30, ignoreEOS: true)
        var calls = 0
        let stopped = try s.generate(.text("a b c"), maxTokens: 30, ignoreEOS: true) { _ in calls += 1; return false }
        #expect(calls == 1 && stopped.generation.tokens.count < free.generation.tokens.count)
        #expect(free.text.hasPrefix(stopped.text) && !stopped.text.isEmpty)
    }

    @Test func promptsThatCannotRunAreErrorsNamingTheLimit() throws {
        let s = try session()
        let prompt = try s.encode(.text("a b c")).ids.count
        _ = try s.generate(.text("a b c"), maxTokens: 128 - prompt)  // exactly the context: runs
        #expect(throws: GenerationError.tooLong(promptTokens: prompt, maxTokens: 129 - prompt, contextLength: 128)) {
            try s.generate(.text("a b c"), maxTokens: 129 - prompt)
        }
        let noTemplate = GenerationSession(model: s.model, tokenizer: s.tokenizer, chatTemplate: nil, source: "tiny.gguf")
        #expect(throws: GenerationError.noChatTemplate(source: "tiny.gguf")) { try noTemplate.generate(.chat([.init(.user, "hi")]), maxTokens: 4) }
        #expect(GenerationError.tooLong(promptTokens: 3, maxTokens: 126, contextLength: 128).description.contains("context length 128"))
    }
}
