import Foundation
import LinearAlgebra
import Llama
import Tokenization

/// What a generation sends its requester: text as it becomes final, then one summary.
public enum GenerationEvent: Sendable {
    case text(String)
    case finished(GenerationSummary)
}

/// How a generation ended.
public struct GenerationSummary: Sendable {
    /// OpenAI's finish_reason: "stop" (a stop token or stop sequence), "length" (max_tokens or the
    /// context), or "cancelled" (the client went away or the server is stopping).
    public var finishReason: String
    public var promptTokens: Int
    public var completionTokens: Int
    /// From submission (queueing included) to the first token.
    public var timeToFirstToken: Double
    /// From the first token to the last.
    public var decodeSeconds: Double
}

/// A submitted generation: its events, and a way to cancel it (also when the stream is dropped).
public final class Ticket: Sendable {
    public let id: String
    public let events: AsyncStream<GenerationEvent>
    public let promptTokens: Int
    private let cancelHandler: @Sendable () -> Void

    init(id: String, events: AsyncStream<GenerationEvent>, promptTokens: Int, cancel: @escaping @Sendable () -> Void) {
        self.id = id
        self.events = events
        self.promptTokens = promptTokens
        cancelHandler = cancel
    }

    public func cancel() { cancelHandler() }
}

/// Continuous batching for one model: up to `maxConcurrent` sequences decode together, one
/// `forwardBatch` pass per step over every active sequence (each with its own KV cache), so the
/// weights are read once per step for all of them. A new request is prefilled on its own (in
/// 512-row passes, as `Generator`) and joins the batch at the next step; requests beyond
/// `maxConcurrent` wait in a queue of `maxQueued`, and a full queue refuses with 429. With a rank
/// schedule, sequences at different active ranks step in one pass per rank. The model runs on one
/// dedicated thread (the kernels parallelise inside it); callers only enqueue and read events.
public final class BatchScheduler: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let stopTokens: Set<Int>
    public let maxConcurrent: Int
    public let maxQueued: Int
    /// Positions per sequence (prompt and generated tokens).
    public let context: Int
    public let schedule: (any RankSchedule)?

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var activeCount = 0
    private var stopping = false
    private var cancelAll = false
    private var thread: Thread?
    private var finishedLoop = false
    private var nextID = 0

    public init(model: LlamaModel, tokenizer: BPETokenizer, stopTokens: Set<Int>, maxConcurrent: Int = 4, maxQueued: Int = 16,
                context: Int, schedule: (any RankSchedule)? = nil) {
        precondition(maxConcurrent >= 1 && maxQueued >= 0 && context >= 2)
        self.model = model
        self.tokenizer = tokenizer
        self.stopTokens = stopTokens
        self.maxConcurrent = maxConcurrent
        self.maxQueued = maxQueued
        self.context = context
        self.schedule = schedule
    }

    /// Sequences decoding and requests waiting.
    public var load: (active: Int, queued: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (activeCount, queue.count)
    }

    public func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "lowrank-batch"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Stops admitting; with `cancel`, in-flight generations end now ("cancelled"), otherwise they
    /// finish. Returns when the model thread has stopped.
    public func shutdown(cancel: Bool) {
        condition.lock()
        stopping = true
        if cancel { cancelAll = true }
        condition.broadcast()
        while thread != nil && !finishedLoop { condition.wait() }
        condition.unlock()
    }

    /// Queues a generation of up to `maxTokens` tokens after `prompt` (token ids).
    public func submit(prompt: [Int], maxTokens: Int?, sampling: SamplingSettings, stop: [String]) throws(APIError) -> Ticket {
        guard !prompt.isEmpty else { throw .invalid("the prompt encodes to no tokens") }
        guard prompt.count < context else {
            throw APIError.invalid("the prompt is \(prompt.count) tokens; this server's context is \(context) tokens (prompt and reply together)",
                                   param: "messages", code: "context_length_exceeded")
        }
        let room = context - prompt.count
        if let maxTokens, maxTokens > room {
            throw APIError.invalid("the prompt (\(prompt.count) tokens) plus max_tokens \(maxTokens) exceeds this server's context of \(context) tokens",
                                   param: "max_tokens", code: "context_length_exceeded")
        }
        var continuation: AsyncStream<GenerationEvent>.Continuation!
        let events = AsyncStream<GenerationEvent>(bufferingPolicy: .unbounded) { continuation = $0 }
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw APIError(status: 503, message: "the server is shutting down", type: "server_error") }
        // Room for maxConcurrent generating and maxQueued waiting (a queued request may be about to take a free slot).
        guard activeCount + queue.count < maxConcurrent + maxQueued else {
            throw APIError(status: 429, message: "\(activeCount) requests are generating and \(queue.count) are queued (the limit): retry later",
                           type: "rate_limit_error", code: "queue_full")
        }
        nextID += 1
        let job = Job(id: "gen-\(nextID)", prompt: prompt, maxTokens: maxTokens ?? room, sampling: sampling, stop: stop,
                      tokenizer: tokenizer, continuation: continuation)
        queue.append(job)
        condition.signal()
        let ticket = Ticket(id: job.id, events: events, promptTokens: prompt.count) { [weak self, job] in self?.cancel(job) }
        continuation.onTermination = { [weak self, job] _ in self?.cancel(job) }
        return ticket
    }

    private func cancel(_ job: Job) {
        condition.lock()
        job.cancelled = true
        condition.signal()
        condition.unlock()
    }

    // MARK: - The model thread

    private func loop() {
        let vocabulary = model.configuration.vocabularySize
        let prefill = Workspace(model: model, rows: min(512, context), contextCapacity: context)
        let batch = Workspace(model: model, rows: maxConcurrent, contextCapacity: context)
        let logits = UnsafeMutableBufferPointer<Float>.allocate(capacity: maxConcurrent * vocabulary)
        defer { logits.deallocate() }
        var models: [Double: LlamaModel] = [:]  // the model at each active-rank fraction (factors shared)
        func runtime(at fraction: Double) -> LlamaModel {
            if let m = models[fraction] { return m }
            var m = self.model
            if fraction < 1 { m.setActiveRank(fraction: fraction) }
            models[fraction] = m
            return m
        }
        var active: [Job] = []
        while true {
            condition.lock()
            while active.isEmpty && queue.isEmpty && !stopping { condition.wait() }
            if cancelAll {
                for job in active + queue { job.cancelled = true }
            }
            if stopping && queue.isEmpty && active.allSatisfy({ $0.cancelled }) {  // under the lock
                activeCount = 0
                condition.unlock()
                // Outside the lock: finishing a stream runs its termination handler, which takes it.
                for job in active { job.finish("cancelled") }
                condition.lock()
                finishedLoop = true
                condition.broadcast()
                condition.unlock()
                return
            }
            var admitted: [Job] = []
            while active.count + admitted.count < maxConcurrent, !queue.isEmpty { admitted.append(queue.removeFirst()) }
            activeCount = active.count + admitted.count
            // `cancelled` is written under this lock by other threads: read it here only.
            let cancelled = Set((active + admitted).filter(\.cancelled).map { ObjectIdentifier($0) })
            condition.unlock()

            for job in admitted {
                if cancelled.contains(ObjectIdentifier(job)) {
                    job.finish("cancelled")
                    continue
                }
                let fraction = schedule?.fraction(forToken: 0) ?? 1
                let m = runtime(at: fraction)
                job.cache = m.makeCache(capacity: job.prompt.count + job.maxTokens)
                let last = m.prefill(job.prompt, cache: job.cache!, workspace: prefill)
                m.logits(workspace: prefill, rows: last..<(last + 1), into: logits.baseAddress!)
                job.accept(job.sampler.next(UnsafeBufferPointer(rebasing: logits[0..<vocabulary])), stopTokens: stopTokens)
                if !job.done { active.append(job) }
            }
            for job in active where cancelled.contains(ObjectIdentifier(job)) && !job.done { job.finish("cancelled") }
            active.removeAll { $0.done }
            guard !active.isEmpty else {
                condition.lock()
                activeCount = 0
                condition.unlock()
                continue
            }
            // One pass per active-rank fraction (one pass in all without a schedule).
            var groups: [Double: [Job]] = [:]
            for job in active { groups[schedule?.fraction(forToken: job.generated.count) ?? 1, default: []].append(job) }
            for (fraction, jobs) in groups.sorted(by: { $0.key > $1.key }) {
                let m = runtime(at: fraction)
                m.forwardBatch(jobs.map { $0.generated.last! }, caches: jobs.map { $0.cache! }, workspace: batch)
                m.logits(workspace: batch, rows: 0..<jobs.count, into: logits.baseAddress!)
                for (row, job) in jobs.enumerated() {
                    job.accept(job.sampler.next(UnsafeBufferPointer(rebasing: logits[(row * vocabulary)..<((row + 1) * vocabulary)])),
                               stopTokens: stopTokens)
                }
            }
            active.removeAll { $0.done }
            condition.lock()
            activeCount = active.count
            condition.unlock()
        }
    }
}

/// One generation on the model thread: its cache, sampler, detokeniser and stop handling.
final class Job: @unchecked Sendable {
    let id: String
    let prompt: [Int]
    let maxTokens: Int
    var sampler: Sampler
    let stop: [String]
    let continuation: AsyncStream<GenerationEvent>.Continuation
    var decoder: StreamingDecoder
    var cache: KVCache?
    var generated: [Int] = []
    /// Decoded text not yet sent: it could be the start of a stop sequence.
    var held = ""
    var cancelled = false  // read and written under the scheduler's lock only
    private(set) var done = false
    let submitted = ContinuousClock.now
    var firstTokenAt: ContinuousClock.Instant?

    init(id: String, prompt: [Int], maxTokens: Int, sampling: SamplingSettings, stop: [String], tokenizer: BPETokenizer,
         continuation: AsyncStream<GenerationEvent>.Continuation) {
        self.id = id
        self.prompt = prompt
        self.maxTokens = maxTokens
        sampler = Sampler(sampling)
        self.stop = stop
        self.continuation = continuation
        decoder = StreamingDecoder(tokenizer: tokenizer)
    }

    /// Takes the next sampled token: ends at a stop token, a stop sequence or `maxTokens`;
    /// otherwise sends the text that can no longer become part of a stop sequence.
    func accept(_ token: Int, stopTokens: Set<Int>) {
        if firstTokenAt == nil { firstTokenAt = .now }
        generated.append(token)
        if stopTokens.contains(token) {
            flush(all: true)
            return finish("stop")
        }
        held += (try? decoder.append(token)) ?? ""
        if let cut = stop.compactMap({ held.range(of: $0)?.lowerBound }).min() {
            held = String(held[..<cut])
            flush(all: true)
            return finish("stop")
        }
        if generated.count >= maxTokens {
            held += decoder.finish()
            flush(all: true)
            return finish("length")
        }
        flush(all: false)
    }

    /// Sends held text: all of it, or all but the longest suffix that begins a stop sequence.
    private func flush(all: Bool) {
        var keep = 0
        if !all {
            for s in stop {
                for length in stride(from: min(s.count - 1, held.count), to: 0, by: -1) where held.hasSuffix(s.prefix(length)) {
                    keep = max(keep, length)
                    break
                }
            }
        }
        let send = String(held.dropLast(keep))
        held = String(held.suffix(keep))
        if !send.isEmpty { continuation.yield(.text(send)) }
    }

    func finish(_ reason: String) {
        guard !done else { return }
        done = true
        cache = nil
        let now = ContinuousClock.now
        let first = firstTokenAt ?? now
        continuation.yield(.finished(GenerationSummary(finishReason: reason, promptTokens: prompt.count, completionTokens: generated.count,
                                                       timeToFirstToken: (first - submitted).seconds, decodeSeconds: (now - first).seconds)))
        continuation.finish()
    }
}
