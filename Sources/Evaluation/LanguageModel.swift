/// What evaluation needs from a model, nothing more.
public protocol LanguageModel {
    var vocabularySize: Int { get }
    /// The longest sequence one call may score.
    var contextLength: Int { get }
    /// Next-token negative log-likelihoods of `tokens` (one window, from position 0):
    /// `result[t] = −log p(tokens[t+1] | tokens[...t])`, plus the number of positions whose logits
    /// were not all finite.
    func nextTokenNLL(_ tokens: [Int]) -> (nll: [Double], nonFinitePositions: Int)
}
