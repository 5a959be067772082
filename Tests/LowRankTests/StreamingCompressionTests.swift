import Foundation
import Testing
import Llama
import LowRank
import ModelFormats
import TestSupport

/// Streaming compression (issue 17): a source that stores its projections in F16/BF16 stays in its
/// memory map and is widened one layer at a time; each finished layer goes to the partial
/// directory and leaves memory; the checkpoint is assembled from the saved layers. None of this may
/// change a bit of the result: it must equal compressing the Float32 widening of the same weights
/// in memory and writing the model as a whole.
@Suite("Streaming compression")
struct StreamingCompressionTests {
    /// Source precision (f32: the F16 file read into Float32, nothing mapped), method, calibration.
    static let cases: [(WeightPrecision, CompressionMethod, CalibrationSource)] = [
        (.bfloat16, .svdLLM, .dense), (.float16, .skipCat, .compressed), (.bfloat16, .asvd, .dense), (.float32, .svdLLM, .dense),
        (.bfloat16, .skip, .compensated),
    ]

    @Test(arguments: cases)
    func aStreamingRunFromAMappedHalfSourceWritesTheInMemoryRunsCheckpoint(precision: WeightPrecision, method: CompressionMethod,
                                                                          calibrateOn: CalibrationSource) throws {
        let dir = TemporaryDirectory()
        let tiny = TinyLlama(seed: 5, tiedEmbeddings: false, layerCount: 3)
        let tokenizer = try tiny.tokenizer()
        try SyntheticCheckpoint.write(tiny.configuration, seed: 9, precision: precision == .float32 ? .float16 : precision, tokenizer: tokenizer,
                                      chatTemplate: nil, to: dir.file("source"))
        let widened = try ModelLoader.load(dir.file("source"))  // every tensor read into Float32
        let mapped = precision == .float32 ? widened : try ModelLoader.load(dir.file("source"), options: LoadOptions(mapsStoredHalfPrecision: true))
        let c = tiny.configuration
        #expect(mapped.weights.halfPrecision.count == (precision == .float32 ? 0 : 7 * c.layerCount + 2)
                && mapped.weights.halfPrecision.values.allSatisfy(\.isMapped), "every projection, the embedding and the head stay in the map")
        var generator = SeededGenerator(seed: 4)
        let tokens = (0..<400).map { _ in Int.random(in: 0..<c.vocabularySize, using: &generator) }
        let calibration = try CalibrationSet(tokens: tokens, count: 4, length: 16, seed: 1)
        let recipe = CompressionRecipe(method: method, removedFraction: 0.3, calibrateOn: calibrateOn)

        let (inMemory, held) = try Compressor.compress(LlamaModel(configuration: c, weights: widened.weights), weights: widened.weights,
                                                       recipe: recipe, calibration: calibration)
        try Checkpoint.write(inMemory, tokenizer: tokenizer, chatTemplate: nil, to: dir.file("memory"))

        let partial = PartialCompression(output: dir.file("stream"))
        let checkpoint = Compressor.LayerCheckpoint(resumeFrom: nil, restore: { try partial.groups(layer: $0, configuration: c) }) { layer, groups, done in
            try partial.save(layer: layer, groups: groups, done: done, version: "test", recipe: recipe, sourceSHA256: "s", calibrationSHA256: nil)
        }
        let source = LlamaModel(configuration: c, weights: mapped.weights, halfAsStored: true)
        let (streamed, report) = try Compressor.compress(source, weights: mapped.weights, recipe: recipe, calibration: calibration, checkpoint: checkpoint)
        #expect(streamed.layers.allSatisfy { $0.groups.allSatisfy { $0.members.allSatisfy { $0.lowRank == nil } } },
                "finished layers are not held: the returned model keeps the source's dense groups")
        try Checkpoint.write(streamed, savedLayers: try partial.savedLayers(), tokenizer: tokenizer, chatTemplate: nil, to: dir.file("stream"))
        for file in ["model.safetensors", "config.json"] {
            #expect(try FileBytes.read(dir.file("stream/" + file)) == FileBytes.read(dir.file("memory/" + file)), "\(file) differs")
        }

        let memory = try #require(report.memory)
        let layerBytes = ProjectionKind.allCases.reduce(0) { $0 + c.shape(of: $1).outputs * c.shape(of: $1).inputs * 4 }
        #expect(memory.streaming && memory.peakRSSAfterLayer.count == c.layerCount && memory.heldFactorsBytes == 0)
        let embeddingAndHead = 2 * c.vocabularySize * c.hiddenSize * 4
        if precision == .float32 {
            #expect(memory.mappedSourceBytes == 0 && memory.residentProjectionBytes == c.layerCount * layerBytes)
            #expect(memory.embeddingAndHeadBytes == embeddingAndHead && memory.layerWeightsBytes == 0)
        } else {
            #expect(memory.mappedSourceBytes == (c.layerCount * layerBytes + embeddingAndHead) / 2)
            #expect(memory.residentProjectionBytes == 0 && memory.embeddingAndHeadBytes == 0 && memory.layerWeightsBytes == layerBytes)
        }
        // Compensated calibration keeps the dense model's streams beside the compressed prefix's.
        let streams = calibrateOn == .compensated ? 2 : 1
        #expect(memory.layerFactorsBytes > 0 && memory.statisticsBytes > 0 && memory.calibrationStreamBytes == streams * 4 * 16 * c.hiddenSize * 4)
        // One whitening per input site: [hidden²] for three, [intermediate²] for down's (ASVD: vectors).
        // Compensated: one site at a time (its stage), each with its map beside the whitening.
        let whitening = method == .asvd ? (3 * c.hiddenSize + c.intermediateSize) * 8
            : calibrateOn == .compensated ? 2 * c.intermediateSize * c.intermediateSize * 8
            : (3 * c.hiddenSize * c.hiddenSize + c.intermediateSize * c.intermediateSize) * 8
        #expect(memory.whiteningBytes == whitening && memory.factorisationBytes > 0)
        let inMemoryReport = try #require(held.memory)
        #expect(!inMemoryReport.streaming && inMemoryReport.residentProjectionBytes == c.layerCount * layerBytes && inMemoryReport.heldFactorsBytes > 0)
    }
}
