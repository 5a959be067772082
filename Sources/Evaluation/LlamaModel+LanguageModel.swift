import LinearAlgebra
import Llama

/// A Llama model as evaluation sees it: one workspace reused across windows and batches.
public final class LlamaLanguageModel: LanguageModel {
    public let model: LlamaModel
    /// Rows (tokens) packed into one forward pass when scoring continuations. One pass reads every
    /// weight once (540 MB in Float32 for SmolLM2), so a multiple-choice item alone (50–200 tokens)
    /// is bound by memory bandwidth; packing several items makes the projections compute-bound.
    /// A request longer than this runs alone.
    public var rowsPerPass: Int
    private var workspace: Workspace?
    private var cache: KVCache?
    private var logitBuffer: [Float] = []
    /// Logit rows computed per head call `[chunk × vocabulary]`.
    private static let logitChunk = 128

    public init(_ model: LlamaModel, rowsPerPass: Int = 1024) {
        precondition(rowsPerPass > 0, "rowsPerPass must be positive")
        self.model = model
        self.rowsPerPass = rowsPerPass
    }

    public var vocabularySize: Int { model.configuration.vocabularySize }
    public var contextLength: Int { model.configuration.contextLength }

    public func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int) {
        if workspace == nil || workspace!.rows < tokens.count || workspace!.contextCapacity < tokens.count {
            workspace = Workspace(model: model, rows: tokens.count, contextCapacity: tokens.count)
        }
        let scores = model.score(tokens, workspace: workspace)
        return (scores.negativeLogLikelihoods, scores.nonFinitePositions)
    }

    public func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) -> [Double] {
        continuationLogLikelihoods([ContinuationRequest(context: context, continuations: continuations)])[0]
    }

    /// Requests are packed in order into passes of at most `rowsPerPass` rows (`forwardPacked`).
    /// In a pass each context is a segment from position 0; each continuation but its last token
    /// is a segment that sees its context and itself. The first token of every continuation is
    /// predicted by its context's last row, the others by the continuation's own rows, and logits
    /// are computed only for those rows. (A sequence longer than the model's context is cut from
    /// the left, as the harness does.)
    public func continuationLogLikelihoods(_ requests: [ContinuationRequest]) -> [[Double]] {
        var results = requests.map { [Double](repeating: 0, count: $0.continuations.count) }
        var pack: [(index: Int, context: [Int])] = []
        var packRows = 0
        for (i, request) in requests.enumerated() {
            precondition(!request.context.isEmpty, "a continuation needs a non-empty context")
            let longest = request.continuations.map(\.count).max() ?? 0
            let context = Array(request.context.suffix(max(1, contextLength + 1 - longest)))
            let rows = context.count + request.continuations.reduce(0) { $0 + max(0, $1.count - 1) }
            if !pack.isEmpty && packRows + rows > rowsPerPass {
                run(pack, requests, into: &results)
                pack = []
                packRows = 0
            }
            pack.append((i, context))
            packRows += rows
        }
        if !pack.isEmpty { run(pack, requests, into: &results) }
        return results
    }

    private func run(_ pack: [(index: Int, context: [Int])], _ requests: [ContinuationRequest], into results: inout [[Double]]) {
        var tokens: [Int] = []
        var segments: [AttentionSegment] = []
        // (row whose logits predict the token, request, continuation, token)
        var targets: [(row: Int, request: Int, choice: Int, token: Int)] = []
        for (i, context) in pack {
            let contextRows = tokens.count..<(tokens.count + context.count)
            tokens += context
            segments.append(AttentionSegment(rows: contextRows, firstPosition: 0, prefix: 0..<0))
            for (j, continuation) in requests[i].continuations.enumerated() where !continuation.isEmpty {
                targets.append((contextRows.upperBound - 1, i, j, continuation[0]))
                guard continuation.count > 1 else { continue }
                let branchStart = tokens.count
                tokens += continuation.dropLast()
                segments.append(AttentionSegment(rows: branchStart..<tokens.count, firstPosition: context.count, prefix: contextRows))
                for r in 1..<continuation.count { targets.append((branchStart + r - 1, i, j, continuation[r])) }
            }
        }
        let needed = tokens.count
        if cache == nil || cache!.capacity < needed || workspace == nil || workspace!.rows < needed || workspace!.contextCapacity < needed {
            let capacity = max(needed, rowsPerPass)
            cache = model.makeCache(capacity: capacity)
            workspace = Workspace(model: model, rows: capacity, contextCapacity: capacity)
        }
        let cache = cache!, ws = workspace!
        cache.reset()
        model.forwardPacked(tokens[...], segments: segments, cache: cache, workspace: ws)

        // Only the rows that predict something reach the head: gather them to the front.
        targets.sort { $0.row < $1.row }
        var wanted: [Int] = []
        for t in targets where wanted.last != t.row { wanted.append(t.row) }
        ws.gatherFinalRows(wanted, width: model.configuration.hiddenSize)
        let v = vocabularySize
        let chunk = Self.logitChunk
        if logitBuffer.count < chunk * v { logitBuffer = [Float](repeating: 0, count: chunk * v) }
        logitBuffer.withUnsafeMutableBufferPointer { buffer in
            var next = 0  // first target not yet added
            var start = 0
            while start < wanted.count {
                let n = min(chunk, wanted.count - start)
                model.logits(workspace: ws, rows: start..<(start + n), into: buffer.baseAddress!)
                for k in 0..<n {
                    let row = buffer.baseAddress! + k * v
                    let lse = VectorMath.logSumExp(row, count: v)
                    while next < targets.count && targets[next].row == wanted[start + k] {
                        let t = targets[next]
                        results[t.request][t.choice] += Double(row[t.token]) - lse
                        next += 1
                    }
                }
                start += n
            }
        }
    }
}
