import Foundation
import Testing
import Llama
import ModelFormats
import TestSupport

@Suite("Synthetic checkpoints")
struct SyntheticCheckpointTests {
    @Test func aSyntheticModelLoadsWithItsShapesAndTheRequestedSpreadAndIsReproducible() throws {
        let tiny = TinyLlama(seed: 3, tiedEmbeddings: false)
        let dir = TemporaryDirectory()
        try SyntheticCheckpoint.write(tiny.configuration, seed: 9, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("a"))
        try SyntheticCheckpoint.write(tiny.configuration, seed: 9, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("b"))
        try SyntheticCheckpoint.write(tiny.configuration, seed: 10, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("c"))
        #expect(try SHA256.hexDigest(ofFile: dir.file("a/model.safetensors")) == SHA256.hexDigest(ofFile: dir.file("b/model.safetensors")))
        #expect(try SHA256.hexDigest(ofFile: dir.file("a/model.safetensors")) != SHA256.hexDigest(ofFile: dir.file("c/model.safetensors")))
        let loaded = try ModelLoader.load(dir.file("a"))
        #expect(loaded.configuration == tiny.configuration)
        let up = loaded.weights[ProjectionID(layer: 1, kind: .up)]
        #expect(up.rows == tiny.configuration.intermediateSize && up.columns == tiny.configuration.hiddenSize)
        let values = up.storage.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
        // 6144 uniform draws: the sample standard deviation is within 3% of 0.02 (its own s.d. is ~0.6%).
        #expect(abs(std - 0.02) < 0.0006, "std \(std)")
        #expect(abs(mean) < 0.001)
        #expect(values.allSatisfy { abs($0) <= 0.02 * 3.0.squareRoot() + 1e-4 })
        #expect(loaded.weights.layers[0].attentionNorm.allSatisfy { $0 == 1 })
    }

    /// `--dtype bf16`: the same draws rounded to bfloat16, stored as BF16 (what `--weights bf16`
    /// then runs in place from the file).
    @Test func aBFloat16SyntheticModelHoldsTheSameDrawsRoundedToBFloat16() throws {
        let tiny = TinyLlama(seed: 3, tiedEmbeddings: false)
        let dir = TemporaryDirectory()
        try SyntheticCheckpoint.write(tiny.configuration, seed: 9, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("f16"))
        try SyntheticCheckpoint.write(tiny.configuration, seed: 9, precision: .bfloat16, tokenizer: try tiny.tokenizer(), chatTemplate: nil,
                                      to: dir.file("bf16"))
        let half = try ModelLoader.load(dir.file("f16")), brain = try ModelLoader.load(dir.file("bf16"))
        #expect(brain.source.tensorTypes.keys.sorted { $0.rawValue < $1.rawValue } == [.bf16])
        let a = half.weights[ProjectionID(layer: 1, kind: .down)].storage, b = brain.weights[ProjectionID(layer: 1, kind: .down)].storage
        // Both round one draw: the F16 value (11 significant bits) is within bfloat16's half-ulp (2⁻⁸ relative) of the BF16 one.
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= abs(x) * 0x1p-8 + 1e-9) }
        #expect(a != b)
        let mapped = try ModelLoader.load(dir.file("bf16"), options: LoadOptions(halfPrecision: .bfloat16))
        #expect(mapped.weights.halfPrecision.values.allSatisfy(\.isMapped) && mapped.weights.halfPrecision.count == 7 * 2 + 2)
    }
}
