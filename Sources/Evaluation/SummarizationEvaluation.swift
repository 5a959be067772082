import Foundation
import Llama

/// One summarised document: what the model wrote and how it scored.
public struct SummaryResult: Sendable {
    public var id: String
    public var prediction: String
    public var references: [String]
    /// Against every reference, the best F1 per variant.
    public var scores: RougeScores
    /// Its tokens, stop reason, timings, and the rows and parameters it used.
    public var generation: Generation
}

/// Summarisation as FLRC evaluates it: each document in a chat prompt (the dataset's instruction
/// and the document as the user message, the model's default system prompt), greedy decoding up to
/// `maxTokens`, the reply (whitespace trimmed) scored with ROUGE against the references.
public enum SummarizationEvaluation {
    public static func run(_ items: [SummarizationItem], dataset: SummarizationDataset, session: GenerationSession, maxTokens: Int,
                           schedule: (any RankSchedule)? = nil, scorer: RougeScorer = RougeScorer(),
                           progress: (Int, Int) -> Void = { _, _ in }) throws(SummarizationError)
        -> [SummaryResult] {
        var results: [SummaryResult] = []
        progress(0, items.count)
        for item in items {
            let generated: TextGeneration
            do {
                generated = try session.generate(.chat([.init(.user, dataset.userMessage(item.document))]), maxTokens: maxTokens,
                                             schedule: schedule)
            } catch {
                throw .generation(id: item.id, reason: error.description)
            }
            let prediction = generated.text.trimmingCharacters(in: .whitespacesAndNewlines)
            results.append(SummaryResult(id: item.id, prediction: prediction, references: item.references,
                                         scores: scorer.score(references: item.references, prediction: prediction),
                                         generation: generated.generation))
            progress(results.count, items.count)
        }
        return results
    }

    /// FLRC's compression rate over a whole run: 1 − (parameters used, summed over every processed
    /// row of every item) / (rows · dense projection parameters); `decodeOnly` counts decode rows only.
    public static func compressionRate(_ results: [SummaryResult], denseProjectionParameters dense: Int, decodeOnly: Bool = false) -> Double {
        let rows = results.reduce(0) { $0 + (decodeOnly ? $1.generation.decodeRows : $1.generation.processedRows) }
        let used = results.reduce(0) { $0 + (decodeOnly ? $1.generation.decodeProjectionParametersUsed : $1.generation.projectionParametersUsed) }
        return rows > 0 ? 1 - Double(used) / (Double(rows) * Double(dense)) : .nan
    }

    /// Mean F1 of each variant over the results.
    public static func meanF1(_ results: [SummaryResult]) -> (rouge1: Double, rouge2: Double, rougeL: Double) {
        let n = Double(max(results.count, 1))
        return (results.reduce(0) { $0 + $1.scores.rouge1.f1 } / n, results.reduce(0) { $0 + $1.scores.rouge2.f1 } / n,
                results.reduce(0) { $0 + $1.scores.rougeL.f1 } / n)
    }
}
