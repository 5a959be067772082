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

    /// The probes do not depend on the budget: a 40% run that reuses a 30% run's probes chooses the
    /// ranks a fresh 40% run chooses, measures nothing, and names the record it read.
    @Test func reusedProbesGiveTheRanksOfAFreshSearchAtAnotherBudget() throws {
        let (tiny, model, calibration) = try Self.tinyRun()
        let recipe = CompressionRecipe(method: .asvd, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 2)
        let (_, first) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        let record = Self.record(recipe, first)
        var wider = recipe
        wider.removedFraction = 0.4
        let (_, fresh) = try Compressor.compress(model, weights: tiny.weights, recipe: wider, calibration: calibration)
        let saved = try SavedSensitivity(record: record, path: "ck/compression.json", sha256: "cafe", configuration: tiny.configuration,
                                         matching: wider, sourceSHA256: "abc", calibrationSHA256: "def")
        wider.sensitivitySource = saved.source
        let (_, reused) = try Compressor.compress(model, weights: tiny.weights, recipe: wider, calibration: calibration, savedSensitivity: saved)
        #expect(reused.projections.map(\.rank) == fresh.projections.map(\.rank))
        #expect(reused.projections.map(\.rank) != first.projections.map(\.rank), "the budgets must lead to different ranks")
        #expect(reused.allocationSeconds == nil)
        #expect(wider.sensitivitySource == SensitivitySource(path: "ck/compression.json", sha256: "cafe"))
    }

    /// skipcat probes one list per unit (a Cat group under its first member): those records are
    /// reused too, and one for another method's units is refused.
    @Test func probesOfCatGroupsAreReusedPerGroup() throws {
        let (tiny, model, calibration) = try Self.tinyRun()
        let recipe = CompressionRecipe(method: .skipCat, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 1)
        let (_, first) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        #expect(first.projections.count == 4 * tiny.configuration.layerCount)
        var wider = recipe
        wider.removedFraction = 0.4
        let (_, fresh) = try Compressor.compress(model, weights: tiny.weights, recipe: wider, calibration: calibration)
        let saved = try SavedSensitivity(record: Self.record(recipe, first), path: "p", sha256: "s", configuration: tiny.configuration,
                                         matching: wider, sourceSHA256: "abc", calibrationSHA256: "def")
        wider.sensitivitySource = saved.source
        let (_, reused) = try Compressor.compress(model, weights: tiny.weights, recipe: wider, calibration: calibration, savedSensitivity: saved)
        #expect(reused.projections.map(\.rank) == fresh.projections.map(\.rank))
        // The same probes offered to a skip run (seven units per layer, not four).
        var skip = Self.record(recipe, first)
        skip.recipe.method = .skip
        var skipRecipe = recipe
        skipRecipe.method = .skip
        do {
            _ = try SavedSensitivity(record: skip, path: "p", sha256: "s", configuration: tiny.configuration, matching: skipRecipe,
                                     sourceSHA256: "abc", calibrationSHA256: "def")
            Issue.record("a record of skipcat units must not serve a skip run")
        } catch {
            guard case .sensitivityRecordIncomplete(_, let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("0.k_proj has no probes"), "\(reason)")
        }
    }

    /// With reused probes the search needs nothing but them and the shapes, so the ranks are fixed
    /// before the first layer: a run calibrated on the compressed prefix takes the dense run's ranks
    /// and gives exactly the model a sequential run at those fixed ranks gives, and records the
    /// probes again (so it can be reused in turn).
    @Test func reusedProbesFixTheRanksFirstSoTheLayersMayBeCalibratedOnTheCompressedPrefix() throws {
        let (tiny, model, calibration) = try Self.tinyRun()
        let recipe = CompressionRecipe(method: .svdLLM, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 2)
        let (denseCalibrated, first) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        var sequential = recipe
        sequential.calibrateOn = .compressed
        #expect(throws: AllocationError.needsDenseCalibration(.asvdSearch)) {
            try Compressor.compress(model, weights: tiny.weights, recipe: sequential, calibration: calibration)
        }
        #expect(Compressor.resumeObstacle(sequential)?.contains("--sensitivity-from DIR") == true, "the obstacle names the way round it")
        let saved = try SavedSensitivity(record: Self.record(recipe, first), path: "ck/compression.json", sha256: "cafe",
                                         configuration: tiny.configuration, matching: sequential, sourceSHA256: "abc", calibrationSHA256: "def")
        sequential.sensitivitySource = saved.source
        #expect(Compressor.resumeObstacle(sequential) == nil, "fixed ranks: each layer is final at once")
        let (reused, report) = try Compressor.compress(model, weights: tiny.weights, recipe: sequential, calibration: calibration, savedSensitivity: saved)
        #expect(report.projections.map(\.rank) == first.projections.map(\.rank))
        #expect(first.projections.contains { $0.rank == nil } && first.projections.contains { $0.rank != nil }, "the search must keep some dense and factor others")
        #expect(report.projections.map(\.sensitivity) == first.projections.map(\.sensitivity))

        /// The dense run's plan handed over as a fixed one.
        struct Fixed: RankAllocator {
            var plan: RankPlan
            var input: AllocationInput { .shapes }
            func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan { plan }
        }
        var ranks: [ProjectionID: Int] = [:]
        for p in first.projections {
            let kind = try #require(ProjectionKind.allCases.first { $0.shortName == p.projection })
            ranks[ProjectionID(layer: p.layer, kind: kind)] = p.rank ?? min(p.outputs, p.inputs)
        }
        var fixedRecipe = recipe
        fixedRecipe.calibrateOn = .compressed
        let (fixed, _) = try Compressor.compress(model, weights: tiny.weights, recipe: fixedRecipe, allocator: Fixed(plan: RankPlan(ranks: ranks)),
                                                 calibration: calibration)
        #expect(reused.layers == fixed.layers, "the same ranks and the same sequential calibration: the same factors")
        #expect(reused.layers != denseCalibrated.layers, "calibrating on the compressed prefix must change later layers")
    }

    /// Reuse is refused, naming the field, when the record differs in anything but the budget, was
    /// not an asvd-search run, or lacks a projection's probes.
    @Test func probesAreRefusedFromARunThatDiffersInMoreThanTheBudget() throws {
        let (tiny, model, calibration) = try Self.tinyRun()
        let recipe = CompressionRecipe(method: .asvd, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 2)
        let (_, report) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        let record = Self.record(recipe, report)
        func refusal(_ record: CompressionRecord, _ wanted: CompressionRecipe, source: String = "abc") -> AllocationError? {
            do {
                _ = try SavedSensitivity(record: record, path: "p", sha256: "s", configuration: tiny.configuration, matching: wanted,
                                         sourceSHA256: source, calibrationSHA256: "def")
                return nil
            } catch { return error }
        }
        var alpha = recipe
        alpha.asvdAlpha = 0.6
        #expect(refusal(record, alpha) == .sensitivityRecordMismatch(path: "p", field: "recipe.asvdAlpha", recorded: "0.5", wanted: "0.6"))
        var windows = recipe
        windows.searchSamples = 1
        #expect(refusal(record, windows) == .sensitivityRecordMismatch(path: "p", field: "recipe.searchSamples", recorded: "2", wanted: "1"))
        #expect(refusal(record, recipe, source: "other") == .sensitivityRecordMismatch(path: "p", field: "source_sha256", recorded: "abc", wanted: "other"))
        var fisher = recipe
        fisher.allocation = .fisher
        #expect(refusal(Self.record(fisher, report), recipe)
                == .sensitivityRecordMismatch(path: "p", field: "allocation", recorded: "fisher", wanted: "asvd-search or asvd-knapsack"))
        var partial = report
        partial.projections[3].sensitivity = nil
        guard case .sensitivityRecordIncomplete(_, let reason)? = refusal(Self.record(recipe, partial), recipe) else {
            Issue.record("a record without one projection's probes must be refused")
            return
        }
        #expect(reason.contains("has no probes"), "\(reason)")
        var budget = recipe
        budget.removedFraction = 0.5
        #expect(refusal(record, budget) == nil, "the budget alone may differ")
    }

    static func tinyRun() throws -> (TinyLlama, LlamaModel, CalibrationSet) {
        let tiny = TinyLlama(seed: 44, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        return (tiny, model, calibration)
    }

    static func record(_ recipe: CompressionRecipe, _ report: CompressionReport) -> CompressionRecord {
        CompressionRecord(lowrank_version: "test", source_model: "tiny", source_sha256: "abc", recipe: recipe, calibration_file: "c.txt",
                          calibration_sha256: "def", calibration_tokens: 16, report: report, total_seconds: 0, peak_rss_bytes: 0, blas: nil)
    }
}
