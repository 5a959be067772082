import ArgumentParser
import Foundation
import Llama
import Tokenization

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streamed to stdout (speeds on stderr).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var scheduleOptions: RankScheduleOptions

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
        var loaded = try loadModel(model, engine: engine)
        let schedule = try scheduleOptions.load(loaded, engine: engine)
        let runtime = try engine.makeModel(&loaded)
        let session = GenerationSession(model: runtime, loaded: loaded)
        let input: Prompt
        if chat {
            var messages: [ChatTemplate.Message] = []
            if let system { messages.append(.init(.system, system)) }
            messages.append(.init(.user, prompt))
            input = .chat(messages)
        } else {
            input = .text(prompt)
        }
        let output = FileHandle.standardOutput
        let result: TextGeneration
        do {
            result = try session.generate(input, maxTokens: maxTokens,
                                          sampling: SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed),
                                          ignoreEOS: ignoreEOS, schedule: schedule?.0) { piece in
                output.write(Data(piece.utf8))
                return true
            }
        } catch .tooLong(let promptTokens, _, let context) {
            throw CLIError("prompt (\(promptTokens) tokens) plus --max-tokens \(maxTokens) exceeds the context length \(context)")
        } catch {
            throw CLIError(error.description)
        }
        output.write(Data("\n".utf8))
        if result.skippedPromptBytes > 0 {
            Terminal.error("warning: \(result.skippedPromptBytes) byte(s) of the prompt have no token in this vocabulary and were skipped")
        }
        let g = result.generation
        if g.saturatedCacheValues > 0 {
            Terminal.error("warning: \(g.saturatedCacheValues) key/value entries exceeded the half range (±65504) and were stored saturated in the f16 KV cache; "
                + "run with --kv-cache f32 to keep them exact")
        }
        Terminal.error(String(format: "[%d prompt tokens, %d generated (%@); prefill %.1f tok/s, decode %.1f tok/s]",
                              g.promptTokens, g.tokens.count, g.stopReason.rawValue, g.prefillTokensPerSecond, g.decodeTokensPerSecond))
        if let (_, record) = schedule {
            let dense = session.denseProjectionParameters
            Terminal.error(String(format: "[rank schedule %@ (%@): compression rate %.1f%% over prompt and generated rows, %.1f%% over decode rows]",
                                  record.file, record.direction, 100 * g.compressionRate(denseProjectionParameters: dense),
                                  100 * g.compressionRate(denseProjectionParameters: dense, decodeOnly: true)))
        }
    }
}
