import Llama

/// A Llama model as evaluation sees it: one workspace reused across windows.
public final class LlamaLanguageModel: LanguageModel {
    public let model: LlamaModel
    private var workspace: Workspace?

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
}
