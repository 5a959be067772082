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
}
