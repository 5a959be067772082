import ArgumentParser
import Foundation
import Llama
import Tokenization

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streamed to stdout (speeds on stderr).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions

    @Option(help: "The prompt (the user message with --chat).")
    var prompt: String

    @Flag(help: "Wrap the prompt in the model's chat template (with its default system prompt unless --system is given).")
    var chat = false

    @Option(help: "System message for --chat.")
    var system: String?

    @Option(help: "Maximum number of new tokens.")
    var maxTokens: Int = 128

    @Option(help: "Sampling temperature; 0 is greedy (argmax).")
    var temperature: Float = 0

    @Option(help: "Keep only the k most likely tokens (0: no limit).")
    var topK: Int = 0

    @Option(help: "Nucleus sampling: keep the most likely tokens up to this total probability (1: no limit).")
    var topP: Float = 1

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Flag(help: "Keep going past the end-of-sequence token.")
    var ignoreEOS = false

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
        guard temperature >= 0 && temperature.isFinite else { throw ValidationError("--temperature must be a non-negative number") }
        guard topK >= 0 else { throw ValidationError("--top-k must be 0 or more") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        if system != nil && !chat { throw ValidationError("--system needs --chat") }
    }

    func run() throws {
        var loaded = try loadModel(model)
        let runtime = try engine.makeModel(&loaded)
        let text: String
        if chat {
            guard let template = loaded.chatTemplate else {
                throw CLIError(String(describing: TokenizationError.noChatTemplate(source: loaded.source.path)))
            }
            var messages: [ChatTemplate.Message] = []
            if let system { messages.append(.init(.system, system)) }
            messages.append(.init(.user, prompt))
            text = template.render(messages)
        } else {
            text = prompt
        }
        let encoding = loaded.tokenizer.encodeCounting(text, addSpecialTokens: true)
        if encoding.skippedBytes > 0 {
            Terminal.error("warning: \(encoding.skippedBytes) byte(s) of the prompt have no token in this vocabulary and were skipped")
        }
        guard !encoding.ids.isEmpty else { throw CLIError("the prompt encodes to no tokens") }
        let capacity = encoding.ids.count + maxTokens
        guard capacity <= loaded.configuration.contextLength else {
            throw CLIError("prompt (\(encoding.ids.count) tokens) plus --max-tokens \(maxTokens) exceeds the context length \(loaded.configuration.contextLength)")
        }
        let generator = Generator(model: runtime, capacity: capacity)
        var decoder = StreamingDecoder(tokenizer: loaded.tokenizer)
        let stop: Set<Int> = ignoreEOS ? [] : Set([loaded.tokenizer.eosTokenID].compactMap { $0 })
        let output = FileHandle.standardOutput
        let result = generator.generate(
            prompt: encoding.ids, maxTokens: maxTokens,
            sampling: SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed),
            stopTokens: stop
        ) { token in
            if stop.contains(token) { return true }
            if let piece = try? decoder.append(token), !piece.isEmpty { output.write(Data(piece.utf8)) }
            return true
        }
        output.write(Data((decoder.finish() + "\n").utf8))
        Terminal.error(String(format: "[%d prompt tokens, %d generated (%@); prefill %.1f tok/s, decode %.1f tok/s]",
                              result.promptTokens, result.tokens.count, result.stopReason.rawValue,
                              result.prefillTokensPerSecond, result.decodeTokensPerSecond))
    }
}
