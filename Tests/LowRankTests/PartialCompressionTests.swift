import Foundation
import Testing
import Llama
import LowRank
import TestSupport

/// The state of an unfinished compression continues only the same run: the same lowrank build,
/// source, calibration file and recipe; each difference is named.
@Suite("Partial compression state")
struct PartialCompressionTests {
    static let recipe = CompressionRecipe(method: .svdLLM, removedFraction: 0.2)
    static let state = PartialCompression.State(lowrank_version: "1.0", recipe: recipe, source_sha256: "aa", calibration_sha256: "cc",
                                                layers_finished: 3, layer_files: [0, 2], reports: [], calibration_seconds: 1, factorisation_seconds: 2)

    @Test func onlyTheSameBuildSourceCalibrationAndRecipeMayContinue() {
        func why(version: String = "1.0", recipe: CompressionRecipe = PartialCompressionTests.recipe, source: String = "aa",
                 calibration: String? = "cc") -> String? {
            PartialCompression.mismatch(Self.state, version: version, recipe: recipe, sourceSHA256: source, calibrationSHA256: calibration)
        }
        #expect(why() == nil)
        #expect(why(version: "1.1")?.contains("lowrank 1.0, this is 1.1") == true)
        #expect(why(source: "ab")?.contains("source model differs") == true)
        #expect(why(calibration: nil)?.contains("calibration file differs") == true)
        var other = Self.recipe
        other.removedFraction = 0.3
        other.seed = 4
        #expect(why(recipe: other) == "the recipe differs: removedFraction was 0.2, now 0.3; seed was 3, now 4")
    }

    @Test func theStateRoundTripsThroughItsFile() throws {
        let dir = TemporaryDirectory()
        let partial = PartialCompression(output: dir.file("ck"))
        #expect(!partial.exists)
        #expect(try partial.readState() == nil)
        let tiny = TinyLlama(seed: 2)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let done = Compressor.FinishedLayers(count: 1, reports: [], calibrationSeconds: 1.5, factorisationSeconds: 0.5)
        try partial.save(layer: 0, groups: [:], done: done, version: "1.0", recipe: Self.recipe, sourceSHA256: "aa", calibrationSHA256: nil)
        let read = try #require(try partial.readState())
        #expect(read.layers_finished == 1 && read.recipe == Self.recipe && read.calibration_sha256 == nil && read.calibration_seconds == 1.5)
        let finished = try partial.finishedLayers(read, configuration: model.configuration)
        #expect(finished.count == 1 && read.layer_files.isEmpty, "a layer that stayed dense has no file")
        let groups = try partial.groups(layer: 0, configuration: model.configuration)
        #expect(try partial.savedLayers().isEmpty && groups.isEmpty)
        var missing = read
        missing.layer_files = [0]
        #expect(throws: (any Error).self, "a saved layer whose file is gone is an error, not a dense layer") {
            try partial.finishedLayers(missing, configuration: model.configuration)
        }
        try "not json".write(toFile: dir.file("ck.partial/state.json"), atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try partial.readState() }
    }
}
