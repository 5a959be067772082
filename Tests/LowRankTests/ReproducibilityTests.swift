import Foundation
import Testing
import Llama
import LowRank
import ModelFormats
import TestSupport

/// The same recipe on the same machine writes a bit-identical checkpoint: the calibration
/// statistics, the factorisations (seven projections in parallel, each on its own) and the writer
/// depend on nothing but their inputs.
@Suite("Compression is reproducible")
struct ReproducibilityTests {
    @Test(arguments: [AllocationMethod.uniform, .effectiveRank, .fisher, .asvdSearch])
    func theSameRecipeWritesBitIdenticalFiles(allocation: AllocationMethod) throws {
        let tiny = TinyLlama(seed: 31, tiedEmbeddings: false)
        let calibration = try CalibrationSet(tokens: (0..<64).map { ($0 * 37 + 11) % 200 }, starts: [0, 16, 40], length: 16)
        let recipe = CompressionRecipe(method: .svdLLM, removedFraction: 0.3, allocation: allocation, searchSamples: 2)
        let dir = TemporaryDirectory()
        var digests: [[String: String]] = []
        for run in 0..<2 {
            let (compressed, _) = try Compressor.compress(LlamaModel(configuration: tiny.configuration, weights: tiny.weights), weights: tiny.weights,
                                                          recipe: recipe, calibration: calibration)
            let path = dir.file("run\(run)")
            try Checkpoint.write(compressed, tokenizer: try tiny.tokenizer(), chatTemplate: tiny.chatTemplate, to: path)
            let files = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            digests.append(Dictionary(uniqueKeysWithValues: try files.map { ($0, try SHA256.hexDigest(ofFile: path + "/" + $0)) }))
        }
        #expect(digests[0].keys.contains("model.safetensors") && digests[0].count >= 4)
        #expect(digests[0] == digests[1])
    }
}
