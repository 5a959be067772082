import LinearAlgebra

/// Next-token scores of a whole sequence.
public struct SequenceScores: Sendable {
    /// `−log p(tokens[t+1] | tokens[...t])` for t in 0..<count−1, in Double.
    public var negativeLogLikelihoods: [Double]
    /// Positions whose logits held a NaN or an infinity; they are kept in the mean (so it becomes
    /// non-finite), never dropped.
    public var nonFinitePositions: Int
    /// Full logit rows `[vocabulary]` of the positions asked for.
    public var logits: [Int: [Float]]
    /// log Σ exp(logits) of those positions.
    public var logSumExp: [Int: Double]

    public var meanNLL: Double {
        negativeLogLikelihoods.isEmpty ? .nan : negativeLogLikelihoods.reduce(0, +) / Double(negativeLogLikelihoods.count)
    }
}

extension LlamaModel {
    /// Scores `tokens` from position 0 in one pass (prefill in chunks of the workspace's rows),
    /// computing logits `chunk` rows at a time so the `[tokens × vocabulary]` matrix never exists.
    public func score(_ tokens: [Int], keepLogitsAt positions: Set<Int> = [], workspace: Workspace? = nil,
                      observer: (any ForwardObserver)? = nil) -> SequenceScores {
        precondition(!tokens.isEmpty)
        let ws = workspace ?? Workspace(model: self, rows: min(tokens.count, 2048), contextCapacity: tokens.count)
        let cache = makeCache(capacity: tokens.count)
        let vocabulary = configuration.vocabularySize
        let chunk = 64
        let logitBuffer = UnsafeMutablePointer<Float>.allocate(capacity: chunk * vocabulary)
        defer { logitBuffer.deallocate() }
        var result = SequenceScores(negativeLogLikelihoods: [], nonFinitePositions: 0, logits: [:], logSumExp: [:])
        result.negativeLogLikelihoods.reserveCapacity(tokens.count - 1)
        var start = 0
        while start < tokens.count {
            let rows = min(ws.rows, tokens.count - start)
            forward(tokens[start..<(start + rows)], cache: cache, workspace: ws, observer: observer)
            var r = 0
            while r < rows {
                let n = min(chunk, rows - r)
                logits(workspace: ws, rows: r..<(r + n), into: logitBuffer)
                for i in 0..<n {
                    let position = start + r + i
                    let row = logitBuffer + i * vocabulary
                    let wanted = positions.contains(position)
                    guard position + 1 < tokens.count || wanted else { continue }
                    let lse = VectorMath.logSumExp(row, count: vocabulary)
                    if !lse.isFinite || !Self.allFinite(row, vocabulary) { result.nonFinitePositions += 1 }
                    if position + 1 < tokens.count {
                        result.negativeLogLikelihoods.append(lse - Double(row[tokens[position + 1]]))
                    }
                    if wanted {
                        result.logits[position] = Array(UnsafeBufferPointer(start: row, count: vocabulary))
                        result.logSumExp[position] = lse
                    }
                }
                r += n
            }
            start += rows
        }
        return result
    }

    static func allFinite(_ x: UnsafePointer<Float>, _ count: Int) -> Bool {
        for i in 0..<count where !x[i].isFinite { return false }
        return true
    }
}
