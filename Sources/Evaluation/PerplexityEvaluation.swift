import Foundation
import Llama

/// Perplexity with the SVD-LLM protocol (algorithms.md §1.7, §9): the tokenised corpus is cut into
/// consecutive non-overlapping windows of `windowLength` tokens, the remainder dropped; every
/// position after the first of each window is predicted; perplexity = exp(mean NLL over all
/// predicted tokens). Unlike the reference code, windows with non-finite logits are kept (their
/// NLL makes the mean non-finite) and counted, never skipped.
public struct PerplexityEvaluation: Sendable {
    public var windowLength: Int
    /// Score only the first `limit` windows.
    public var limit: Int?

    public init(windowLength: Int = 2048, limit: Int? = nil) {
        self.windowLength = windowLength
        self.limit = limit
    }

    public static let protocolDescription =
        "SVD-LLM: non-overlapping windows, remainder dropped, first token of each window is context only, token-mean NLL, non-finite windows kept and counted"

    public struct Result: Codable, Sendable, Equatable {
        public var perplexity: Double
        public var meanNLL: Double
        /// Predicted tokens.
        public var tokens: Int
        public var windows: Int
        public var windowLength: Int
        public var availableWindows: Int
        public var corpusTokens: Int
        public var nonFinitePositions: Int
        public var seconds: Double
        public var `protocol`: String

        enum CodingKeys: String, CodingKey {
            case perplexity, meanNLL = "mean_nll", tokens, windows, windowLength = "window_length"
            case availableWindows = "available_windows", corpusTokens = "corpus_tokens"
            case nonFinitePositions = "non_finite_positions", seconds, `protocol`
        }
    }

    /// `progress(windowsDone, windowsTotal)` after each window.
    public func run(_ model: some LanguageModel, tokens: [Int], progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        guard windowLength >= 2 else { throw EvaluationError.invalidOption("--window must be at least 2") }
        guard windowLength <= model.contextLength else {
            throw EvaluationError.invalidOption("--window \(windowLength) exceeds the model's context length \(model.contextLength)")
        }
        let available = tokens.count / windowLength
        guard available > 0 else {
            throw EvaluationError.invalidOption("the corpus has \(tokens.count) tokens, fewer than one window of \(windowLength)")
        }
        let windows = min(available, limit ?? available)
        let clock = ContinuousClock()
        let started = clock.now
        var total = 0.0
        var count = 0
        var nonFinite = 0
        for w in 0..<windows {
            let window = Array(tokens[(w * windowLength)..<((w + 1) * windowLength)])
            let (nll, bad) = model.nextTokenNLL(window)
            total += nll.reduce(0, +)
            count += nll.count
            nonFinite += bad
            progress(w + 1, windows)
        }
        let elapsed = clock.now - started
        let mean = total / Double(count)
        return Result(perplexity: Foundation.exp(mean), meanNLL: mean, tokens: count, windows: windows, windowLength: windowLength,
                      availableWindows: available, corpusTokens: tokens.count, nonFinitePositions: nonFinite,
                      seconds: elapsed.seconds,
                      protocol: Self.protocolDescription)
    }
}

public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case invalidOption(String)
    public var description: String {
        switch self { case .invalidOption(let m): m }
    }
}
