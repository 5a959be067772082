import Foundation
import Testing
import Llama
import Serving
import TestSupport

/// The batching scheduler on the tiny model: batched greedy replies equal one-at-a-time
/// generation, stop sequences cut the text, the queue bound answers 429, and cancelling frees the
/// sequence.
@Suite("Batch scheduler")
struct BatchSchedulerTests {
    static let tiny = TinyLlama(seed: 29)
    static let prompts = ["The cat", "Numbers: 1, 2, 3", "zzz", "Hello there, how are"]

    static func session() throws -> GenerationSession {
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        return GenerationSession(model: model, tokenizer: try tiny.tokenizer(), chatTemplate: tiny.chatTemplate, source: "tiny")
    }

    static func collect(_ ticket: Ticket) async -> (String, GenerationSummary?) {
        var text = ""
        var summary: GenerationSummary?
        for await event in ticket.events {
            switch event {
            case .text(let piece): text += piece
            case .finished(let s): summary = s
            }
        }
        return (text, summary)
    }

    @Test func concurrentGreedyRepliesEqualOneAtATimeGeneration() async throws {
        let session = try Self.session()
        let expected = try Self.prompts.map { try session.generate(.text($0), maxTokens: 12).text }
        let scheduler = BatchScheduler(model: session.model, tokenizer: session.tokenizer, stopTokens: session.stopTokens,
                                       maxConcurrent: 4, context: 64)
        scheduler.start()
        defer { scheduler.shutdown(cancel: true) }
        let tickets = try Self.prompts.map {
            try scheduler.submit(prompt: session.tokenizer.encodeCounting($0, addSpecialTokens: true).ids, maxTokens: 12, sampling: .greedy, stop: [])
        }
        for (ticket, want) in zip(tickets, expected) {
            let (text, summary) = await Self.collect(ticket)
            #expect(text == want)
            #expect(summary?.finishReason == "length" && summary?.completionTokens == 12)
        }
        #expect(scheduler.load.active == 0 && scheduler.load.queued == 0)
    }

    @Test func aStopSequenceEndsTheReplyBeforeIt() async throws {
        let session = try Self.session()
        let full = try session.generate(.text("Numbers: 1, 2, 3"), maxTokens: 20).text
        try #require(full.count >= 8, "the reply is long enough to cut: \(full.debugDescription)")
        let stop = String(Array(full)[5..<7])
        let before = String(full[..<full.range(of: stop)!.lowerBound])
        let scheduler = BatchScheduler(model: session.model, tokenizer: session.tokenizer, stopTokens: session.stopTokens, context: 64)
        scheduler.start()
        defer { scheduler.shutdown(cancel: true) }
        let ticket = try scheduler.submit(prompt: session.tokenizer.encodeCounting("Numbers: 1, 2, 3", addSpecialTokens: true).ids,
                                          maxTokens: 20, sampling: .greedy, stop: [stop, "never appears"])
        let (text, summary) = await Self.collect(ticket)
        #expect(text == before)
        #expect(summary?.finishReason == "stop")
    }

    @Test func aFullQueueAnswers429AndAnOverlongPromptNamesTheContext() async throws {
        let session = try Self.session()
        let scheduler = BatchScheduler(model: session.model, tokenizer: session.tokenizer, stopTokens: [], maxConcurrent: 1, maxQueued: 1, context: 64)
        // Not started: nothing is admitted, so the slot and the queue fill up.
        _ = try scheduler.submit(prompt: [5, 6], maxTokens: 4, sampling: .greedy, stop: [])
        _ = try scheduler.submit(prompt: [5, 6], maxTokens: 4, sampling: .greedy, stop: [])
        #expect(throws: APIError.self) { try scheduler.submit(prompt: [5, 6], maxTokens: 4, sampling: .greedy, stop: []) }
        do {
            _ = try scheduler.submit(prompt: [5, 6], maxTokens: 4, sampling: .greedy, stop: [])
        } catch {
            #expect(error.status == 429 && error.code == "queue_full")
        }
        do {
            _ = try scheduler.submit(prompt: Array(repeating: 7, count: 64), maxTokens: nil, sampling: .greedy, stop: [])
            Issue.record("a 64-token prompt fits a 64-token context")
        } catch {
            #expect(error.status == 400 && error.code == "context_length_exceeded" && error.message.contains("context is 64 tokens"))
        }
        do {
            _ = try scheduler.submit(prompt: [5, 6], maxTokens: 63, sampling: .greedy, stop: [])
            Issue.record("2 + 63 tokens fit a 64-token context")
        } catch {
            #expect(error.status == 400 && error.param == "max_tokens")
        }
    }

    @Test func aCancelledGenerationEndsAndFreesItsSlot() async throws {
        let session = try Self.session()
        let scheduler = BatchScheduler(model: session.model, tokenizer: session.tokenizer, stopTokens: [], maxConcurrent: 1, context: 120)
        // Both wait for the one slot; the first is cancelled before the model thread starts (on
        // the tiny model a generation ends faster than a test can cancel it mid-way).
        let cancelled = try scheduler.submit(prompt: [5, 6, 7], maxTokens: 100, sampling: .greedy, stop: [])
        let next = try scheduler.submit(prompt: [5, 6, 7], maxTokens: 3, sampling: .greedy, stop: [])
        cancelled.cancel()
        scheduler.start()
        defer { scheduler.shutdown(cancel: true) }
        let (text, summary) = await Self.collect(cancelled)
        #expect(text.isEmpty && summary?.finishReason == "cancelled" && summary?.completionTokens == 0)
        // The slot is free again: the next request runs to its end.
        let (_, after) = await Self.collect(next)
        #expect(after?.finishReason == "length" && after?.completionTokens == 3)
        #expect(scheduler.load.active == 0)
    }
}
