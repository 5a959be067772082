import Foundation
import Testing
import Evaluation
import Llama
import LowRank
import TestSupport

/// Real model: SVD-LLM with the reference calibration recipe (fixture README: the C4 sample joined
/// with "\n\n", tokenised once, 64 windows of 512 at the listed offsets, statistics from one pass of
/// the original model) at 20% of projection parameters removed, scored on the first 40 WikiText-2
/// windows of 2048 against the reference mean NLL 5.05746 (PyTorch, float64 factorisation).
@Suite("SmolLM2 SVD-LLM compression matches the reference", .serialized)
struct SmolLM2CompressionTests {
    static let referenceStarts = [
        124761, 310714, 285332, 68379, 193963, 480218, 316628, 248540, 328057, 304533, 34355, 317508, 6903, 476482, 439074,
        246012, 135976, 288769, 122856, 100529, 375992, 246553, 283626, 438546, 288165, 249746, 208212, 335055, 451423, 78966,
        121593, 332849, 79493, 455105, 485404, 274297, 204439, 388629, 7941, 352012, 407494, 33570, 83571, 397531, 309906, 22433,
        157951, 408984, 16259, 431788, 453785, 141259, 247856, 311820, 376870, 482427, 460751, 203218, 374409, 413196, 482920,
        223836, 207074, 381747,
    ]

    @Test func svdLLMAtTwentyPercentMatchesTheReferenceMeanNLL() throws {
        let loaded = try ModelLoader.load(Fixtures.requireSmolLM2())
        let data = Fixtures.repositoryRoot + "/data"
        let c4 = loaded.tokenizer.encode(try Corpus.c4.text(dataDirectory: data))
        #expect(c4.count == 498_018)
        let calibration = try CalibrationSet(tokens: c4, starts: Self.referenceStarts, length: 512)
        let model = LlamaModel(configuration: loaded.configuration, weights: loaded.weights)
        let (compressed, report) = try Compressor.compress(model, weights: loaded.weights,
                                                           recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.2, calibrationStarts: Self.referenceStarts),
                                                           calibration: calibration)
        #expect(report.projectionParametersAfter == 84_873_600)
        #expect(report.projections.allSatisfy { $0.whiteningShift == 0 })
        let ranks = Dictionary(grouping: report.projections, by: \.projection).mapValues { Set($0.map { $0.rank! }) }
        #expect(ranks == ["q_proj": [230], "o_proj": [230], "k_proj": [115], "v_proj": [115], "gate_proj": [335], "up_proj": [335], "down_proj": [335]])
        let wikitext = loaded.tokenizer.encode(try Corpus.wikitext2.text(dataDirectory: data))
        let result = try PerplexityEvaluation(windowLength: 2048, limit: 40).run(LlamaLanguageModel(compressed), tokens: wikitext)
        print("svd-llm 20%: mean NLL \(result.meanNLL), perplexity \(result.perplexity) (reference 5.05746, 157.19)")
        #expect(abs(result.meanNLL - 5.05746) < 0.01, "mean NLL \(result.meanNLL)")
    }
}
