import LinearAlgebra
import Llama

/// A Llama model as evaluation sees it: one workspace reused across windows.
public final class LlamaLanguageModel: LanguageModel {
    public let model: LlamaModel
    private var workspace: Workspace?
    private var cache: KVCache?
    private var logitBuffer: [Float] = []

    public init(_ model: LlamaModel) { self.model = model }

    public var vocabularySize: Int { model.configuration.vocabularySize }
    public var contextLength: Int { model.configuration.contextLength }

    public func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) {
        if workspace == nil || workspace!.rows < tokens.count || workspace!.contextCapacity < tokens.count {
            workspace = Workspace(model: model, rows: tokens.count, contextCapacity: tokens.count)
        }
        let scores = model.score(tokens, workspace: workspace)
        return (scores.negativeLogLikelihoods, scores.nonFinitePositions)
    }

    /// The context runs once into the KV cache; only its last row's logits are computed. Each
    /// continuation then truncates the cache back to the context and runs its own tokens, with
    /// logits only where a continuation token is predicted. (Multiple-choice contexts are one
    /// to a few hundred tokens; a sequence longer than the model's context is cut from the left.)
    public func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) -> [Double] {
        precondition(!context.isEmpty, "a continuation needs a non-empty context")
        let longest = continuations.map(\.count).max() ?? 0
        let context = Array(context.suffix(max(1, contextLength + 1 - longest)))
        let needed = context.count + longest
        if cache == nil || cache!.capacity < needed || workspace == nil || workspace!.rows < needed || workspace!.contextCapacity < needed {
            let capacity = max(needed, 512)
            cache = KVCache(configuration: model.configuration, capacity: capacity)
            workspace = Workspace(model: model, rows: capacity, contextCapacity: capacity)
        }
        let cache = cache!, ws = workspace!
        let v = vocabularySize
        if logitBuffer.count < longest * v { logitBuffer = [Float](repeating: 0, count: max(longest, 1) * v) }
        cache.reset()
        model.forward(context[...], cache: cache, workspace: ws)
        var first = [Float](repeating: 0, count: v)
        first.withUnsafeMutableBufferPointer { model.logits(workspace: ws, rows: (context.count - 1)..<context.count, into: $0.baseAddress!) }
        let firstLSE = first.withUnsafeBufferPointer { VectorMath.logSumExp($0.baseAddress!, count: v) }
        return continuations.map { continuation in
            guard let head = continuation.first else { return 0 }
            var total = Double(first[head]) - firstLSE
            guard continuation.count > 1 else { return total }
            cache.truncate(to: context.count)
            // Rows 0 ..< n−1 of the continuation predict tokens 1 ..< n.
            let n = continuation.count
            model.forward(continuation[..<(n - 1)], cache: cache, workspace: ws)
            logitBuffer.withUnsafeMutableBufferPointer { buffer in
                model.logits(workspace: ws, rows: 0..<(n - 1), into: buffer.baseAddress!)
                for r in 0..<(n - 1) {
                    let row = buffer.baseAddress! + r * v
                    total += Double(row[continuation[r + 1]]) - VectorMath.logSumExp(row, count: v)
                }
            }
            return total
        }
    }
}
