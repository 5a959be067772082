import Foundation
import Testing
import TestSupport
import Llama
import Tokenization

@Suite("Generation")
struct GenerationTests {
    static let tiny = TinyLlama(seed: 8)

    func generator() -> Generator {
        Generator(model: LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights), capacity: 64, prefillRows: 4)
    }

    @Test func greedyPicksTheArgmaxOfTheFullForwardAtEveryStep() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let prompt = [10, 20, 30, 40, 50, 60]  // longer than prefillRows: prefill in two chunks
        let result = generator().generate(prompt: prompt, maxTokens: 8, sampling: .greedy, stopTokens: [])
        var sequence = prompt
        for token in result.tokens {
            let scores = model.score(sequence, keepLogitsAt: [sequence.count - 1])
            let row = scores.logits[sequence.count - 1]!
            #expect(token == row.withUnsafeBufferPointer { Sampler.argmax($0) })
            sequence.append(token)
        }
        #expect(result.tokens.count == 8)
        #expect(result.stopReason == .maximumTokens)
    }

    @Test func generationStopsAfterEmittingAStopToken() {
        let g = generator()
        let free = g.generate(prompt: [1, 2, 3], maxTokens: 10, sampling: .greedy, stopTokens: [])
        let stop = free.tokens[3]
        let stopped = g.generate(prompt: [1, 2, 3], maxTokens: 10, sampling: .greedy, stopTokens: [stop])
        let firstStop = free.tokens.firstIndex(of: stop)!
        #expect(stopped.tokens == Array(free.tokens[...firstStop]))
        #expect(stopped.stopReason == .endOfSequence)
    }

    @Test func sameSeedGivesTheSameSampleAndOtherSeedsDiffer() {
        let g = generator()
        let settings = SamplingSettings(temperature: 1.5, topK: 50, topP: 0.95, seed: 42)
        let a = g.generate(prompt: [5, 6], maxTokens: 20, sampling: settings, stopTokens: []).tokens
        let b = g.generate(prompt: [5, 6], maxTokens: 20, sampling: settings, stopTokens: []).tokens
        var other = settings
        other.seed = 43
        let c = g.generate(prompt: [5, 6], maxTokens: 20, sampling: other, stopTokens: []).tokens
        #expect(a == b)
        #expect(a != c)
    }

    @Test func topKOfOneIsGreedy() {
        let logits: [Float] = [0.1, 3, -2, 2.9]
        var sampler = Sampler(SamplingSettings(temperature: 2, topK: 1, seed: 7))
        for _ in 0..<20 { #expect(logits.withUnsafeBufferPointer { sampler.next($0) } == 1) }
    }

    @Test func topPKeepsTheSmallestSetReachingTheMass() {
        // Probabilities at T = 1: about 0.64, 0.24, 0.09, 0.03. With p = 0.7 only the first two remain.
        let logits: [Float] = [3, 2, 1, 0]
        var sampler = Sampler(SamplingSettings(temperature: 1, topP: 0.7, seed: 1))
        var seen = Set<Int>()
        for _ in 0..<400 { seen.insert(logits.withUnsafeBufferPointer { sampler.next($0) }) }
        #expect(seen == [0, 1])
    }

    @Test func streamingDecoderHoldsBackSplitCharacters() throws {
        let tokenizer = try Self.tiny.tokenizer()
        let ids = tokenizer.encode("é!")  // é is two byte tokens
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        #expect(try decoder.append(ids[0]) == "")
        #expect(try decoder.append(ids[1]) == "é")
        #expect(try decoder.append(ids[2]) == "!")
        #expect(decoder.finish() == "")
    }
}

/// Real model: `greedy_generation.json` (Hugging Face generate, greedy, KV cache, 48 new tokens),
/// both with and without stopping at EOS; every generation token-identical.
@Suite("SmolLM2 greedy generation matches the reference", .serialized)
struct SmolLM2GenerationTests {
    @Test func everyGreedyGenerationIsTokenIdentical() throws {
        let loaded = try ModelLoader.load(Fixtures.requireSmolLM2())
        let model = LlamaModel(configuration: loaded.configuration, weights: loaded.weights)
        let fixture = try Fixtures.sharedJSON("greedy_generation.json")
        let cases = fixture["cases"] as! [[String: Any]]
        #expect(cases.count == 3)
        for c in cases {
            let name = c["name"] as! String
            let prompt = c["prompt_ids"] as! [Int]
            if let text = c["prompt"] as? String, name == "plain" { #expect(loaded.tokenizer.encode(text) == prompt) }
            let generator = Generator(model: model, capacity: prompt.count + 48)
            for (run, stops) in [("stop_at_eos", Set([2])), ("no_eos_stop", Set<Int>())] {
                let expected = (c[run] as! [String: Any])["generated_ids"] as! [Int]
                let result = generator.generate(prompt: prompt, maxTokens: 48, sampling: .greedy, stopTokens: stops)
                #expect(result.tokens == expected, "\(name) \(run)")
                let text = (c[run] as! [String: Any])["text"] as! String
                #expect(try loaded.tokenizer.decode(result.tokens) == text, "\(name) \(run)")
            }
        }
    }

    @Test func chatPromptsRenderToTheReferencePrompts() throws {
        let loaded = try ModelLoader.load(Fixtures.requireSmolLM2())
        let template = try #require(loaded.chatTemplate)
        let cases = try Fixtures.sharedJSON("greedy_generation.json")["cases"] as! [[String: Any]]
        let conversations: [String: [ChatTemplate.Message]] = [
            "chat_default_system": [.init(.user, "What is the capital of France?")],
            "chat_system_user": [.init(.system, "You are a helpful assistant."), .init(.user, "Give me three tips for learning to cook.")],
        ]
        for c in cases {
            guard let messages = conversations[c["name"] as! String] else { continue }
            let rendered = template.render(messages)
            #expect(rendered == c["prompt"] as! String)
            #expect(loaded.tokenizer.encode(rendered) == c["prompt_ids"] as! [Int])
        }
    }
}
