import Foundation
import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

@Suite("ASVD sensitivity search")
struct SensitivitySearchTests {
    /// Two 100 × 100 matrices; A's probes lose 10 (at 0.4) and 3 (at 0.9), B's 4 and 2. Sorted: A0.4,
    /// B0.4, A0.9, B0.9. At keep 0.65 (13,000 parameters) applying all but A0.4 gives A 0.9 (rank 45)
    /// and B 0.4 (rank 20): 13,000 exactly; applying fewer (A0.9, B0.9) costs 18,000.
    @Test func theMoreSensitiveMatrixKeepsMore() throws {
        func profile(_ layer: Int, _ points: [(Double, Double)]) -> ProjectionProfile {
            ProjectionProfile(id: ProjectionID(layer: layer, kind: .up), outputs: 100, inputs: 100,
                              sensitivity: points.map { SensitivityPoint(keptFraction: $0.0, loss: $0.1) })
        }
        let profiles = [profile(0, [(0.4, 10), (0.9, 3)]), profile(1, [(0.4, 4), (0.9, 2)])]
        let plan = try SensitivitySearchAllocator().allocate(profiles, keptFraction: 0.65)
        #expect(profiles.map { plan[$0.id]! } == [45, 20])
        #expect(plan.parameters(profiles) == 13_000)
        // Nothing cheaper than every matrix at 0.4 exists: a smaller budget is refused, naming the limit.
        #expect(throws: AllocationError.searchCannotReachBudget(smallestKeptFraction: 0.4, keep: 0.3)) {
            try SensitivitySearchAllocator().allocate(profiles, keptFraction: 0.3)
        }
    }

    /// Probing re-runs only the layers from the probed one on: that shortcut must give the loss of
    /// the whole modified model (and of the dense one when nothing changes).
    @Test func probingFromASavedStreamEqualsScoringTheWholeModifiedModel() throws {
        let tiny = TinyLlama(seed: 43)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let windows = [[1, 5, 9, 200, 31, 7, 64, 12, 77, 3], [250, 3, 3, 90, 17, 44, 8, 2, 19, 140]]
        let probe = SensitivityProbe(model: model, windows: windows)
        func fullLoss(_ m: LlamaModel) -> Double { windows.map { m.score($0).meanNLL }.reduce(0, +) / Double(windows.count) }
        #expect(abs(probe.denseLoss() - fullLoss(model)) < 1e-6)
        let id = ProjectionID(layer: 1, kind: .gate)
        var rng = SeededGenerator(seed: 3)
        let replacement = Linear.dense(DenseLinear(Matrix(rows: 96, columns: 64, storage: rng.floats(96 * 64, scale: 0.2))))
        var modified = model
        modified[id] = replacement
        #expect(abs(probe.loss(replacing: id, with: replacement) - fullLoss(modified)) < 1e-6)
        #expect(abs(probe.loss(replacing: id, with: replacement) - probe.denseLoss()) > 1e-3, "the replacement must matter")
    }

    /// End to end on the tiny model: six probes per projection recorded, the budget holds, and the
    /// saved tensors hold what the report counts.
    @Test func anASVDSearchCheckpointStoresWhatItsReportCounts() throws {
        let tiny = TinyLlama(seed: 44, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        let recipe = CompressionRecipe(method: .asvd, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 2)
        let (compressed, report) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        #expect(Double(report.projectionParametersAfter) <= 0.7 * Double(report.projectionParametersBefore) + 1e-6)
        #expect(report.projections.allSatisfy { $0.sensitivity?.map(\.keptFraction) == SensitivitySearchAllocator.candidates })
        #expect(report.allocationSeconds != nil)
        let dir = TemporaryDirectory()
        try Checkpoint.write(compressed, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        let counts = ParameterCount(configuration: loaded.configuration, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == report.projectionParametersAfter)
    }
}
