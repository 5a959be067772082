import Testing
import LinearAlgebra
import Llama
import TestSupport

/// A batched decoding step (several sequences, one pass over the weights) gives each sequence the
/// logits its own single-sequence decoding gives, at any mix of lengths, dense or low-rank.
@Suite("Batched decoding")
struct BatchDecodingTests {
    static let tiny = TinyLlama(seed: 23)
    static let prompts = [[5, 61, 200, 7], [90], [33, 8, 150, 12, 99, 4, 17], [61, 61, 3]]

    /// Logits of the last row after `forward` (one row).
    static func lastLogits(_ model: LlamaModel, workspace: Workspace, rows: Int) -> [Float] {
        let v = model.configuration.vocabularySize
        var out = [Float](repeating: 0, count: v)
        out.withUnsafeMutableBufferPointer { model.logits(workspace: workspace, rows: (rows - 1)..<rows, into: $0.baseAddress!) }
        return out
    }

    @Test(arguments: [false, true], KVCachePrecision.allCases)
    func eachRowOfABatchedStepEqualsItsOwnDecoding(lowRank: Bool, cache precision: KVCachePrecision) {
        var model = lowRank ? Self.tiny.lowRankModel(rank: 12) : LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        model.keyValuePrecision = precision
        let capacity = 32, v = model.configuration.vocabularySize
        let prefill = Workspace(model: model, rows: 8, contextCapacity: capacity)
        let single = Workspace(model: model, rows: 1, contextCapacity: capacity)
        let batch = Workspace(model: model, rows: 4, contextCapacity: capacity)
        // Reference: each sequence decoded alone; batched: the same prefixes, then steps together.
        let alone = Self.prompts.map { _ in model.makeCache(capacity: capacity) }
        let together = Self.prompts.map { _ in model.makeCache(capacity: capacity) }
        var next: [Int] = []
        for (i, prompt) in Self.prompts.enumerated() {
            model.forward(prompt[...], cache: alone[i], workspace: prefill)
            let logits = Self.lastLogits(model, workspace: prefill, rows: prompt.count)
            model.forward(prompt[...], cache: together[i], workspace: prefill)
            next.append(logits.withUnsafeBufferPointer { Sampler.argmax($0) })
        }
        var worst = 0.0
        for step in 0..<6 {
            // Sequence 1 sits out one step, so the batch's rows change membership and lengths differ.
            let active = step == 2 ? [0, 2, 3] : [0, 1, 2, 3]
            model.forwardBatch(active.map { next[$0] }, caches: active.map { together[$0] }, workspace: batch)
            var batched = [Float](repeating: 0, count: active.count * v)
            batched.withUnsafeMutableBufferPointer { model.logits(workspace: batch, rows: 0..<active.count, into: $0.baseAddress!) }
            for (row, i) in active.enumerated() {
                model.forward([next[i]][...], cache: alone[i], workspace: single)
                let reference = Self.lastLogits(model, workspace: single, rows: 1)
                let mine = Array(batched[(row * v)..<((row + 1) * v)])
                var error = 0.0, norm = 0.0
                for (a, b) in zip(mine, reference) {
                    error += Double(a - b) * Double(a - b)
                    norm += Double(b) * Double(b)
                }
                worst = max(worst, (error / norm).squareRoot())
                #expect(together[i].count == alone[i].count)
                next[i] = reference.withUnsafeBufferPointer { Sampler.argmax($0) }
            }
        }
        // A half cache: the batched and one-row products can differ in a key's last Float32 bit,
        // which near a rounding boundary moves the stored half by one step (ForwardTests.passTolerance).
        #expect(worst < (precision == .float32 ? 1e-5 : 5e-5), "largest relative logit difference \(worst)")
    }
}
