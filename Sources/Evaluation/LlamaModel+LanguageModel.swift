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

    /// The context runs once into the KV cache; only its last row's logits are computed. All the
    /// continuations then run together in one pass (`forwardBranches`: each sees the context and
    /// itself), so the weights are read twice per item rather than once per choice; logits only
    /// where a continuation token is predicted. (Multiple-choice contexts are one to a few hundred
    /// tokens; a sequence longer than the model's context is cut from the left.)
    public func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) -> [Double] {
        precondition(!context.isEmpty, "a continuation needs a non-empty context")
        let longest = continuations.map(\.count).max() ?? 0
        let context = Array(context.suffix(max(1, contextLength + 1 - longest)))
        let branchRows = continuations.reduce(0) { $0 + max(0, $1.count - 1) }
        let needed = context.count + branchRows
        if cache == nil || cache!.capacity < needed || workspace == nil || workspace!.rows < needed || workspace!.contextCapacity < needed {
            let capacity = max(needed, 512)
            cache = KVCache(configuration: model.configuration, capacity: capacity)
            workspace = Workspace(model: model, rows: capacity, contextCapacity: capacity)
        }
        let cache = cache!, ws = workspace!
        let v = vocabularySize
        cache.reset()
        model.forward(context[...], cache: cache, workspace: ws)
        var first = [Float](repeating: 0, count: v)
        first.withUnsafeMutableBufferPointer { model.logits(workspace: ws, rows: (context.count - 1)..<context.count, into: $0.baseAddress!) }
        let firstLSE = first.withUnsafeBufferPointer { VectorMath.logSumExp($0.baseAddress!, count: v) }
        var totals = continuations.map { $0.first.map { Double(first[$0]) - firstLSE } ?? 0 }
        // Row r of branch i (its token r) predicts token r + 1.
        let branches = continuations.enumerated().filter { $0.element.count > 1 }
        guard !branches.isEmpty else { return totals }
        model.forwardBranches(branches.map { $0.element.dropLast() }, cache: cache, workspace: ws)
        let chunk = 32
        if logitBuffer.count < chunk * v { logitBuffer = [Float](repeating: 0, count: chunk * v) }
        var targets: [(index: Int, token: Int)] = []
        for (i, c) in branches { for r in 1..<c.count { targets.append((i, c[r])) } }
        logitBuffer.withUnsafeMutableBufferPointer { buffer in
            var start = 0
            while start < targets.count {
                let n = min(chunk, targets.count - start)
                model.logits(workspace: ws, rows: start..<(start + n), into: buffer.baseAddress!)
                for k in 0..<n {
                    let row = buffer.baseAddress! + k * v
                    let target = targets[start + k]
                    totals[target.index] += Double(row[target.token]) - VectorMath.logSumExp(row, count: v)
                }
                start += n
            }
        }
        return totals
    }
}
