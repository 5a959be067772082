import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LinearAlgebra

/// Why generation stopped.
public enum StopReason: String, Sendable, Codable {
    case endOfSequence = "eos"
    case maximumTokens = "max_tokens"
}

/// The result of one generation, with its timings.
public struct Generation: Sendable {
    public var tokens: [Int]
    public var stopReason: StopReason
    /// Seconds to prefill the prompt and produce the first token.
    public var timeToFirstToken: Double
    /// Seconds spent on the tokens after the first.
    public var decodeSeconds: Double
    public var promptTokens: Int
    /// Projection parameters each prompt row used (at the prefill's active ranks).
    public var prefillProjectionParametersPerRow: Int = 0
    /// Decode rows (one per generated token but the last) and the projection parameters they used
    /// at their active ranks, summed.
    public var decodeRows: Int = 0
    public var decodeProjectionParametersUsed: Int = 0
    /// Keys and values beyond the half range that a half KV cache stored as ±65504 (0 for Float32).
    public var saturatedCacheValues: Int = 0

    /// Every row the model ran, prompt rows first, and the projection parameters they used (FLRC's
    /// compression rate is 1 − used / (rows · dense projection parameters)).
    public var processedRows: Int { promptTokens + decodeRows }
    public var projectionParametersUsed: Int { promptTokens * prefillProjectionParametersPerRow + decodeProjectionParametersUsed }

    public var prefillTokensPerSecond: Double { Double(promptTokens) / timeToFirstToken }

    /// FLRC's compression rate of this generation: the mean fraction of the dense model's projection
    /// parameters not used per processed row, prompt rows included (`decodeOnly`: decode rows only).
    public func compressionRate(denseProjectionParameters dense: Int, decodeOnly: Bool = false) -> Double {
        let rows = decodeOnly ? decodeRows : processedRows
        let used = decodeOnly ? decodeProjectionParametersUsed : projectionParametersUsed
        return rows > 0 ? 1 - Double(used) / (Double(rows) * Double(dense)) : .nan
    }
    public var decodeTokensPerSecond: Double { tokens.count > 1 ? Double(tokens.count - 1) / decodeSeconds : .nan }
}

/// Incremental decoding with a KV cache: the prompt is prefilled in one batched pass (sgemm), then
/// each new token is one row (gemv). All buffers are allocated before the first token.
public final class Generator {
    public let model: LlamaModel
    let cache: KVCache
    let workspace: Workspace
    private let logits: UnsafeMutableBufferPointer<Float>

    /// - Parameter capacity: prompt plus new tokens, at most.
    public init(model: LlamaModel, capacity: Int, prefillRows: Int = 512) {
        self.model = model
        cache = model.makeCache(capacity: capacity)
        workspace = Workspace(model: model, rows: max(1, min(prefillRows, capacity)), contextCapacity: capacity)
        logits = .allocate(capacity: model.configuration.vocabularySize)
    }

    deinit { logits.deallocate() }

    /// `LOWRANK_TRACE_GOVERNOR=1` prints each decoded token's time and the worker count chosen
    /// for the next one; `LOWRANK_DECODE_GOVERNOR=off` keeps every worker (for measurements).
    /// Kept across generations, so what one generation learnt about the machine's load carries over.
    private var governor = DecodeThreadGovernor(workers: Parallel.workers)

    static let traceGovernor = getenv("LOWRANK_TRACE_GOVERNOR") != nil
    static let governorEnabled = getenv("LOWRANK_DECODE_GOVERNOR").map { String(cString: $0) } != "off"

    /// Generates up to `maxTokens` tokens after `prompt`. Stops after emitting one of `stopTokens`
    /// (it is included). `onToken` sees each token as it is chosen and may return false to stop.
    /// With a `schedule`, every low-rank module runs at `schedule.fraction(forToken: t)` of its
    /// stored rank while token t is produced (the prefill produces token 0); the KV cache keeps what
    /// earlier rows computed at their own ranks.
    public func generate(prompt: [Int], maxTokens: Int, sampling: SamplingSettings, stopTokens: Set<Int>,
                         schedule: (any RankSchedule)? = nil, onToken: (Int) -> Bool = { _ in true }) -> Generation {
        precondition(!prompt.isEmpty, "the prompt must have at least one token")
        precondition(prompt.count + maxTokens <= cache.capacity, "prompt and new tokens exceed the generator's capacity")
        cache.reset()
        let saturatedBefore = cache.saturatedValues
        var model = self.model  // the active ranks change on this copy only (the factors are shared)
        var fraction: Double?
        var parameters = model.activeProjectionParameters
        func prepare(token t: Int) {
            guard let f = schedule?.fraction(forToken: t), f != fraction else { return }
            model.setActiveRank(fraction: f)
            fraction = f
            parameters = model.activeProjectionParameters
        }
        prepare(token: 0)
        let prefillParameters = parameters
        var decodeRows = 0, decodeParameters = 0
        var sampler = Sampler(sampling)
        let clock = ContinuousClock()
        let started = clock.now
        let lastRow = model.prefill(prompt, cache: cache, workspace: workspace)
        var generated: [Int] = []
        var reason = StopReason.maximumTokens
        var firstTokenAt = started
        var row = lastRow
        defer { Parallel.resetActiveWorkers() }
        var tokenStarted = clock.now
        while generated.count < maxTokens {
            if generated.count > 0 && Self.governorEnabled {
                let now = clock.now
                let seconds = (now - tokenStarted).seconds
                governor.record(seconds: seconds)
                tokenStarted = now
                Parallel.activeWorkers = governor.workersForNextToken()
                if Self.traceGovernor { FileHandle.standardError.write(Data("token \(generated.count): \(seconds) s; next with \(Parallel.activeWorkers) worker(s)\n".utf8)) }
            }
            model.logits(workspace: workspace, rows: row..<(row + 1), into: logits.baseAddress!)
            let token = sampler.next(UnsafeBufferPointer(logits))
            generated.append(token)
            if generated.count == 1 { firstTokenAt = clock.now }
            if !onToken(token) { break }
            if stopTokens.contains(token) {
                reason = .endOfSequence
                break
            }
            if generated.count == maxTokens { break }
            prepare(token: generated.count)
            model.forward([token], cache: cache, workspace: workspace)
            decodeRows += 1
            decodeParameters += parameters
            row = 0
        }
        let finished = clock.now
        return Generation(tokens: generated, stopReason: reason,
                          timeToFirstToken: (firstTokenAt - started).seconds,
                          decodeSeconds: (finished - firstTokenAt).seconds, promptTokens: prompt.count,
                          prefillProjectionParametersPerRow: prefillParameters, decodeRows: decodeRows,
                          decodeProjectionParametersUsed: decodeParameters,
                          saturatedCacheValues: cache.saturatedValues - saturatedBefore)
    }
}

extension Duration {
    public var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
