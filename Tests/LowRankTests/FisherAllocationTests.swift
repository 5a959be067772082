import Foundation
import Testing
import Gradients
import Llama
import LowRank
import TestSupport

/// FLRC's proportional allocation, on hand-derived cases: three 100 × 100 matrices (a rank costs
/// 200 parameters, break-even ⌊100·100/200⌋ = 50).
@Suite("Fisher allocation")
struct FisherAllocationTests {
    static func square(_ importances: [Double]) -> [ProjectionProfile] {
        importances.enumerated().map { i, alpha in
            ProjectionProfile(id: ProjectionID(layer: i, kind: .query), outputs: 100, inputs: 100,
                              fisher: FisherImportance.Entry(fisher: alpha, weightOnly: 1, gradientOnly: 1, firstWindowGradientNorm: 0))
        }
    }

    /// α = 1 : 2 : 3 and a budget of 48 ranks (keep 0.32 of 30,000): r = round(α/6 · R) gives
    /// 8, 16, 24 for R in [48, 49.5); at R = 49.5 the second rounds up to 17 and passes the budget.
    @Test func ranksAreProportionalToTheImportance() throws {
        let profiles = Self.square([1, 2, 3])
        let plan = try FisherAllocator().allocate(profiles, keptFraction: 0.32)
        #expect(profiles.map { plan[$0.id]! } == [8, 16, 24])
        #expect(plan.parameters(profiles) == 9600)
    }

    /// α = 100 : 1 : 1 at keep 0.5 (15,000 parameters): the first would reach break-even, so it stays
    /// dense (10,000, planned as its full rank 100) and the other two share the remaining 5,000 in
    /// proportion: 12 each (13 each would cost 15,200).
    @Test func aMatrixReachingBreakEvenStaysDenseAndTheOthersTakeTheExcess() throws {
        let profiles = Self.square([100, 1, 1])
        let plan = try FisherAllocator(cap: .breakEven).allocate(profiles, keptFraction: 0.5)
        #expect(profiles.map { plan[$0.id]! } == [100, 12, 12])
        #expect(plan.parameters(profiles) == 10_000 + 2 * 12 * 200)
    }

    /// The other reading: capped at min(m, n) = 100 and paying r·(m+n) past break-even. The first
    /// matrix takes 73 ranks (14,600 parameters, more than its dense 10,000), the others the floor of 1.
    @Test func theFullRankReadingPaysForFactorsPastBreakEven() throws {
        let profiles = Self.square([100, 1, 1])
        let plan = try FisherAllocator(cap: .fullRank).allocate(profiles, keptFraction: 0.5)
        #expect(profiles.map { plan[$0.id]! } == [73, 1, 1])
        #expect(plan.factorsPastBreakEven)
        #expect(plan.parameters(profiles) == 75 * 200)
    }

    /// The ablations rank by their own statistic: weight-only with equal Σ W² is uniform.
    @Test func theAblationsReadTheirOwnStatistic() throws {
        var profiles = Self.square([1, 2, 3])
        profiles[2].fisher!.weightOnly = 1
        let plan = try FisherAllocator(variant: .weightOnly).allocate(profiles, keptFraction: 0.32)
        #expect(profiles.map { plan[$0.id]! } == [16, 16, 16])
        profiles[0].fisher!.gradientOnly = 4
        profiles[1].fisher!.gradientOnly = 1
        profiles[2].fisher!.gradientOnly = 1
        let byGradient = try FisherAllocator(variant: .gradientOnly).allocate(profiles, keptFraction: 0.32)
        #expect(profiles.map { byGradient[$0.id]! } == [32, 8, 8])
    }

    @Test func missingOrNonFiniteImportancesAreNamed() {
        var profiles = Self.square([1, 2, 3])
        profiles[1].fisher = nil
        #expect(throws: AllocationError.missingImportance(profiles[1].id)) { try FisherAllocator().allocate(profiles, keptFraction: 0.5) }
        profiles = Self.square([1, -2, 3])
        #expect(throws: AllocationError.nonFiniteImportance(profiles[1].id, -2)) { try FisherAllocator().allocate(profiles, keptFraction: 0.5) }
        profiles = Self.square([1, .infinity, 3])
        #expect(throws: AllocationError.nonFiniteImportance(profiles[1].id, .infinity)) { try FisherAllocator().allocate(profiles, keptFraction: 0.5) }
        #expect(throws: AllocationError.zeroImportance) { try FisherAllocator().allocate(Self.square([0, 0, 0]), keptFraction: 0.5) }
    }

    /// End to end on the tiny model: the backward pass runs on the calibration windows, every
    /// projection reports its α, the budget holds, and the saved tensors hold what the report counts.
    @Test(arguments: [FisherCap.breakEven, .fullRank])
    func aFisherCheckpointStoresWhatItsReportCounts(cap: FisherCap) throws {
        let tiny = TinyLlama(seed: 41, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        let recipe = CompressionRecipe(method: .svdLLM, removedFraction: 0.3, allocation: .fisher, fisherCap: cap)
        let (compressed, report) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        #expect(Double(report.projectionParametersAfter) <= 0.7 * Double(report.projectionParametersBefore) + 1e-6)
        #expect(report.projections.allSatisfy { ($0.importance ?? 0) > 0 })
        #expect(report.allocationSeconds != nil)
        let ranks = Set(report.projections.compactMap(\.rank))
        #expect(ranks.count > 2, "fisher ranks should differ between projections: \(ranks)")
        let dir = TemporaryDirectory()
        try Checkpoint.write(compressed, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        let counts = ParameterCount(configuration: loaded.configuration, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == report.projectionParametersAfter)
    }

    /// The same α as the backward pass gives directly: the compressor's allocation reads FLRC's α.
    @Test func theCompressorRanksByTheBackwardPassImportance() throws {
        let tiny = TinyLlama(seed: 42, tiedEmbeddings: false)
        let windows = [[1, 5, 9, 200, 31, 7, 64, 12], [250, 3, 3, 90, 17, 44, 8, 2]]
        let calibration = try CalibrationSet(tokens: windows.flatMap { $0 }, starts: [0, 8], length: 8)
        let expected = FisherImportance.measure(GradientPass(configuration: tiny.configuration, weights: tiny.weights), windows: windows,
                                                weights: tiny.weights)
        let (_, report) = try Compressor.compress(LlamaModel(configuration: tiny.configuration, weights: tiny.weights), weights: tiny.weights,
                                                  recipe: CompressionRecipe(method: .svd, removedFraction: 0.4, allocation: .fisher),
                                                  calibration: calibration)
        for p in report.projections {
            let id = ProjectionID(layer: p.layer, kind: ProjectionKind.allCases.first { $0.shortName == p.projection }!)
            #expect(p.importance == expected.entries[id]!.fisher)
        }
    }
}

/// SVD-LLM V2's loss-based ratios, on hand-derived spectra.
@Suite("Truncation-loss allocation (SVD-LLM V2)")
struct TruncationLossAllocationTests {
    /// Two 100 × 100 matrices of one type at keep 0.5 (uniform rank 25): truncation losses e and e³
    /// give ℓ = 1 and 1/3, removed fractions 2·0.5·(3/4) = 0.75 and 0.25, ranks ⌊0.25·50⌋ = 12 and
    /// ⌊0.75·50⌋ = 37: the matrix that loses more keeps more.
    @Test func aMatrixWithALargerTruncationLossKeepsMoreRank() throws {
        func profile(_ layer: Int, droppedSigma: Double) -> ProjectionProfile {
            ProjectionProfile(id: ProjectionID(layer: layer, kind: .query), outputs: 100, inputs: 100,
                              singularValues: Array(repeating: 10, count: 25) + [droppedSigma] + Array(repeating: 0, count: 74))
        }
        let profiles = [profile(0, droppedSigma: exp(1)), profile(1, droppedSigma: exp(3))]
        let plan = try TruncationLossAllocator().allocate(profiles, keptFraction: 0.5)
        #expect(profiles.map { plan[$0.id]! } == [12, 37])
    }

    @Test(arguments: [0.9, 0.8, 0.7, 0.6])
    func itMeetsEachTypesBudget(keep: Double) throws {
        // Power-law spectra σ_i = 10⁶/(i+1)^p, p from 0.5 to 1.5: losses well above 1, as whitened SmolLM2 weights.
        var rng = SeededGenerator(seed: 9)
        var profiles = AllocationTests.smolProfiles(seed: 9)
        for i in profiles.indices {
            let power = 1 + Double(rng.uniform(0.5))
            profiles[i].singularValues = (0..<profiles[i].singularValues!.count).map { 1e6 / pow(Double($0 + 1), power) }
        }
        let plan = try TruncationLossAllocator().allocate(profiles, keptFraction: keep)
        for kind in ProjectionKind.allCases {
            let ofKind = profiles.filter { $0.id.kind == kind }
            let dense = Double(ofKind.reduce(0) { $0 + $1.denseParameters })
            let cost = Double(plan.parameters(ofKind))
            #expect(cost <= keep * dense + 1e-6 && cost > keep * dense - Double(ofKind.count * ofKind[0].perRank), "\(kind) at \(keep)")
        }
    }

    @Test func aLossBelowOneIsNamed() {
        let p = ProjectionProfile(id: ProjectionID(layer: 3, kind: .up), outputs: 10, inputs: 10, singularValues: Array(repeating: 0.1, count: 10))
        let error = #expect(throws: AllocationError.self) { try TruncationLossAllocator().allocate([p], keptFraction: 0.8) }
        guard case .truncationLossBelowOne(let id, let loss) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(id == p.id && abs(loss - (6 * 0.01).squareRoot()) < 1e-12)  // uniform rank 4: six dropped values of 0.1
    }
}
