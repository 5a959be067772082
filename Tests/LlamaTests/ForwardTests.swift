import Foundation
import Testing
import LinearAlgebra
import TestSupport
import Llama

@Suite("Forward pass on the tiny model")
struct ForwardTests {
    static let tiny = TinyLlama(seed: 21, tiedEmbeddings: false)
    static let tokens = [3, 200, 17, 99, 264, 5, 42, 101, 7, 250, 33, 12]

    @Test func batchedForwardMatchesTheReferenceTwin() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let scores = model.score(Self.tokens, keepLogitsAt: Set(Self.tokens.indices))
        let reference = Reference.forward(Self.tiny.configuration, Self.tiny.weights, tokens: Self.tokens)
        var worst: Float = 0
        for p in Self.tokens.indices {
            for (a, b) in zip(scores.logits[p]!, reference.logits[p]) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst < 2e-5, "worst logit difference \(worst)")
        let referenceNLL = (0..<(Self.tokens.count - 1)).map { p in
            Reference.logSumExp(reference.logits[p]) - Double(reference.logits[p][Self.tokens[p + 1]])
        }
        #expect(abs(scores.meanNLL - referenceNLL.reduce(0, +) / Double(referenceNLL.count)) < 1e-5)
        #expect(scores.nonFinitePositions == 0)
    }

    @Test func decodingOneTokenAtATimeWithTheCacheMatchesOnePass() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let full = model.score(Self.tokens, keepLogitsAt: Set(Self.tokens.indices))
        let cache = KVCache(configuration: model.configuration, capacity: Self.tokens.count)
        let ws = Workspace(model: model, rows: 1, contextCapacity: Self.tokens.count)
        var row = [Float](repeating: 0, count: model.configuration.vocabularySize)
        for (p, token) in Self.tokens.enumerated() {
            model.forward(Self.tokens[p...p], cache: cache, workspace: ws)
            row.withUnsafeMutableBufferPointer { model.logits(workspace: ws, rows: 0..<1, into: $0.baseAddress!) }
            for (a, b) in zip(row, full.logits[p]!) { #expect(abs(a - b) < 1e-5, "position \(p) token \(token)") }
        }
        #expect(cache.count == Self.tokens.count)
    }

    /// Past 128 cached positions, decoding splits the positions between workers and merges their
    /// softmax states; the logits must still be those of one pass over the whole sequence.
    @Test func decodingALongSequenceSplitBetweenWorkersMatchesOnePass() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        var rng = SeededGenerator(seed: 9)
        let tokens = (0..<200).map { _ in Int.random(in: 0..<model.configuration.vocabularySize, using: &rng) }
        let checked: Set<Int> = [0, 63, 127, 128, 150, 199]
        let full = model.score(tokens, keepLogitsAt: checked)
        let cache = KVCache(configuration: model.configuration, capacity: tokens.count)
        let ws = Workspace(model: model, rows: 1, contextCapacity: tokens.count)
        var row = [Float](repeating: 0, count: model.configuration.vocabularySize)
        for p in tokens.indices {
            model.forward(tokens[p...p], cache: cache, workspace: ws)
            guard checked.contains(p) else { continue }
            row.withUnsafeMutableBufferPointer { model.logits(workspace: ws, rows: 0..<1, into: $0.baseAddress!) }
            let worst = zip(row, full.logits[p]!).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "position \(p): worst logit difference \(worst)")
        }
    }

    @Test func prefillInSeveralChunksMatchesOnePass() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let full = model.score(Self.tokens, keepLogitsAt: [11])
        let chunked = model.score(Self.tokens, keepLogitsAt: [11], workspace: Workspace(model: model, rows: 5, contextCapacity: 12))
        for (a, b) in zip(chunked.logits[11]!, full.logits[11]!) { #expect(abs(a - b) < 1e-5) }
        #expect(abs(chunked.meanNLL - full.meanNLL) < 1e-6)
    }

    @Test func truncatingTheCacheRewindsToASharedPrefix() {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let cache = KVCache(configuration: model.configuration, capacity: 16)
        let ws = Workspace(model: model, rows: 8, contextCapacity: 16)
        model.forward([1, 2, 3], cache: cache, workspace: ws)
        model.forward([4, 5], cache: cache, workspace: ws)
        cache.truncate(to: 3)
        model.forward([9, 8], cache: cache, workspace: ws)
        var row = [Float](repeating: 0, count: model.configuration.vocabularySize)
        row.withUnsafeMutableBufferPointer { model.logits(workspace: ws, rows: 1..<2, into: $0.baseAddress!) }
        let direct = model.score([1, 2, 3, 9, 8], keepLogitsAt: [4])
        for (a, b) in zip(row, direct.logits[4]!) { #expect(abs(a - b) < 1e-5) }
    }

    @Test(arguments: [WeightPrecision.float16, .bfloat16])
    func halfPrecisionWeightsMatchFloat32WeightsOfTheSameRoundedValues(precision: WeightPrecision) {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights, precision: precision)
        // The same computation in Float32 on weights rounded to the half type gives the same logits.
        var rounded = Self.tiny.weights
        func round(_ m: Matrix<Float>) -> Matrix<Float> { DenseLinear(m, precision: precision).matrix }
        for l in rounded.layers.indices {
            for kind in ProjectionKind.allCases { rounded.layers[l][kind] = round(rounded.layers[l][kind]) }
        }
        rounded.outputHead = round(rounded.outputHead!)
        let exact = LlamaModel(configuration: Self.tiny.configuration, weights: rounded)
        for batch in [Self.tokens, [Self.tokens[0]]] {  // batched path and one-row (gemv) path
            let a = model.score(batch, keepLogitsAt: [batch.count - 1])
            let b = exact.score(batch, keepLogitsAt: [batch.count - 1])
            for (x, y) in zip(a.logits[batch.count - 1]!, b.logits[batch.count - 1]!) { #expect(abs(x - y) < 1e-4) }
        }
    }

    @Test func bfloat16RoundsToNearestEven() {
        let m = Matrix<Float>(rows: 1, columns: 4, storage: [1.00390625, 1.01171875, -3.5, 0.1])
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1). 1 + 3·2^-8 ties up to 1 + 2^-6.
        #expect(DenseLinear(m, precision: .bfloat16).matrix.storage == [1, 1.015625, -3.5, 0.10009765625])
    }
}
