/// What evaluation needs from a model, nothing more.
public protocol LanguageModel {
    var vocabularySize: Int { get }
    /// The longest sequence one call may score.
    var contextLength: Int { get }
    /// Next-token negative log-likelihoods of `tokens` (one window, from position 0):
    /// `result[t] = −log p(tokens[t+1] | tokens[...t])`, plus the number of positions whose logits
    /// were not all finite.
    func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int)
    /// For each continuation c: Σ_t log p(c[t] | context, c[..<t]). The context is non-empty and
    /// shared, so a model can run it once and branch (a KV-cache fork).
    func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) -> [Double]
    /// The same for many independent requests at once: `result[i][j]` is continuation j of request
    /// i. A model may pack them into few passes (multiple-choice evaluation hands over a batch of
    /// items); the answer must not depend on how they are grouped.
    func continuationLogLikelihoods(_ requests: [ContinuationRequest]) -> [[Double]]
}

/// One context and the continuations to score after it (token ids, no special tokens added).
public struct ContinuationRequest: Sendable, Equatable {
    public var context: [Int]
    public var continuations: [[Int]]

    public init(context: [Int], continuations: [[Int]]) {
        self.context = context
        self.continuations = continuations
    }
}

extension LanguageModel {
    /// The plain way: one full pass over context + continuation per continuation. When the
    /// sequence is longer than `contextLength` + 1, the context is cut from the left (as the
    /// harness does).
    public func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) -> [Double] {
        precondition(!context.isEmpty, "a continuation needs a non-empty context")
        return continuations.map { continuation in
            guard !continuation.isEmpty else { return 0 }
            let whole = Array((context + continuation).suffix(contextLength + 1))
            let nll = nextTokenNLL(whole).nll
            return -nll.suffix(continuation.count).reduce(0, +)
        }
    }

    /// One request at a time.
    public func continuationLogLikelihoods(_ requests: [ContinuationRequest]) -> [[Double]] {
        requests.map { continuationLogLikelihoods(context: $0.context, continuations: $0.continuations) }
    }
}
