import Foundation
import Testing
import Gradients
import LinearAlgebra
import Llama
import LowRank
import TestSupport

/// Uniform ranks from shapes, but asking for spectra: drives the compressor's profile-then-truncate
/// path with ranks the streaming path also produces.
struct UniformAfterProfiling: RankAllocator {
    var input: AllocationInput { .spectra }
    func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan {
        #expect(profiles.allSatisfy { $0.singularValues?.count == min($0.outputs, $0.inputs) })
        return try UniformAllocator().allocate(profiles, keptFraction: keptFraction)
    }
}

@Suite("Rank allocation")
struct AllocationTests {
    /// SmolLM2's projection shapes (grouped-query attention: k and v are 192 × 576), 30 layers, with
    /// seeded spectra of varied decay over a power-law floor (so every truncation loss is above 1,
    /// as whitened weights' are), seeded importances and seeded sensitivity probes.
    static func smolProfiles(seed: UInt64) -> [ProjectionProfile] {
        let c = LlamaConfiguration(hiddenSize: 576, intermediateSize: 1536, layerCount: 30, attentionHeads: 9, keyValueHeads: 3,
                                   vocabularySize: 16, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, contextLength: 64, tiedEmbeddings: true)
        var rng = SeededGenerator(seed: seed)
        return ProjectionProfile.shapes(of: c).map { p in
            var p = p
            let decay = 0.9 + 0.099 * Double(rng.uniform(1) + 1) / 2  // 0.9 ... 0.999
            p.singularValues = (0..<min(p.outputs, p.inputs)).map { 1e6 * pow(decay, Double($0)) + 1e3 / Double($0 + 1) }
            // Importances spread over four orders of magnitude, as SmolLM2's α.
            let fisher = exp(9 * Double(rng.uniform(1))), weight = 1 + Double(rng.uniform(0.5)), gradient = exp(5 * Double(rng.uniform(1)))
            p.fisher = FisherImportance.Entry(fisher: fisher, weightOnly: weight, gradientOnly: gradient, firstWindowGradientNorm: 0)
            // Losses that fall as more is kept, at a seeded per-matrix sensitivity.
            let sensitivity = exp(3 * Double(rng.uniform(1)))
            p.sensitivity = SensitivitySearchAllocator.candidates.map { SensitivityPoint(keptFraction: $0, loss: 3 + sensitivity * (1 - $0)) }
            return p
        }
    }

    @Test(arguments: [0.9, 0.8, 0.7, 0.6])
    func everyAllocatorMeetsItsParameterBudget(keep: Double) throws {
        let profiles = Self.smolProfiles(seed: 7)
        let dense = profiles.reduce(0) { $0 + $1.denseParameters }
        for allocator in [UniformAllocator(), EffectiveRankAllocator(beta: 0), EffectiveRankAllocator(beta: 0.3),
                          EffectiveRankAllocator(beta: 0.3, uniformFallback: true), FisherAllocator(variant: .fisher),
                          FisherAllocator(variant: .weightOnly), FisherAllocator(variant: .gradientOnly),
                          FisherAllocator(variant: .fisher, cap: .fullRank), TruncationLossAllocator(),
                          SensitivitySearchAllocator()] as [any RankAllocator] {
            let plan = try allocator.allocate(profiles, keptFraction: keep)
            #expect(plan.ranks.count == profiles.count)
            let cost = plan.parameters(profiles)
            #expect(Double(cost) <= keep * Double(dense), "\(allocator) at keep \(keep): \(cost) of \(dense)")
            // Within one rank step of the largest matrix below the budget.
            #expect(keep * Double(dense) - Double(cost) < Double(profiles.count * 2112), "\(allocator) leaves too much unspent")
        }
    }

    /// Effective-rank allocation repairs each pool to its own budget, to within one rank step.
    @Test func effectiveRankRepairsEachPoolToItsBudget() throws {
        let profiles = Self.smolProfiles(seed: 8)
        let plan = try EffectiveRankAllocator(beta: 0.3).allocate(profiles, keptFraction: 0.8)
        for pool in [[ProjectionKind.query, .key, .value], [.output], [.gate], [.up], [.down]] {
            let members = profiles.filter { pool.contains($0.id.kind) }
            let budget = Int((0.8 * Double(members.reduce(0) { $0 + $1.denseParameters }) + 1e-6).rounded(.down))
            let cost = members.reduce(0) { $0 + $1.perRank * plan[$1.id]! }
            #expect(cost <= budget, "\(pool)")
            let open = members.filter { plan[$0.id]! < $0.largestSavingRank }
            #expect(open.allSatisfy { cost + $0.perRank > budget }, "\(pool): one more rank would still fit")
        }
    }

    /// Hand-derived: two layers of one type, σ² flat over 4 and over 16 values (effective ranks 4
    /// and 16). Their total rank 30 is split in proportion to √4 : √16 = 1 : 2, so 10 and 20.
    @Test func effectiveRankSplitsATypesRankInProportionToTheRootOfTheEffectiveRank() throws {
        func profile(_ layer: Int, flatOver count: Int) -> ProjectionProfile {
            ProjectionProfile(id: ProjectionID(layer: layer, kind: .output), outputs: 64, inputs: 64,
                              singularValues: (0..<64).map { $0 < count ? 1 : 0 })
        }
        let profiles = [profile(0, flatOver: 4), profile(1, flatOver: 16)]
        #expect(abs(EffectiveRank.energy(profiles[0].singularValues!) - 4) < 1e-9)
        // Budget: keep · 2 · 64² = 30 · (64 + 64) → keep = 0.46875.
        let plan = try EffectiveRankAllocator(beta: 0).allocate(profiles, keptFraction: 0.46875)
        #expect(plan[profiles[0].id] == 10)
        #expect(plan[profiles[1].id] == 20)
    }

    /// The Q/K → V transfer moves parameters, not rank units: under grouped-query attention a v rank
    /// costs less than a q rank, so v gains more ranks than q and k lose, at the same total.
    @Test func theQueryKeyToValueTransferIsCountedInParameters() throws {
        let profiles = Self.smolProfiles(seed: 9).filter { $0.id.layer < 4 && [.query, .key, .value].contains($0.id.kind) }
        let without = try EffectiveRankAllocator(beta: 0).allocate(profiles, keptFraction: 0.5)
        let with = try EffectiveRankAllocator(beta: 0.3).allocate(profiles, keptFraction: 0.5)
        func total(_ plan: RankPlan, _ kind: ProjectionKind) -> Int { profiles.filter { $0.id.kind == kind }.reduce(0) { $0 + plan[$1.id]! } }
        #expect(total(with, .query) < total(without, .query))
        #expect(total(with, .key) < total(without, .key))
        #expect(total(with, .value) > total(without, .value))
        let lost = (total(without, .query) - total(with, .query)) * 1152 + (total(without, .key) - total(with, .key)) * 768
        let gained = (total(with, .value) - total(without, .value)) * 768
        #expect(abs(lost - gained) <= 2 * 1152, "parameters moved: \(lost) lost, \(gained) gained")
        #expect(total(with, .value) - total(without, .value) > (total(without, .query) - total(with, .query)))
    }

    /// The released code's fallback, hand-built (σ² flat over 4 and over 16 values): gate keeps
    /// uniform ranks although the dynamic ones would differ; o keeps its dynamic ranks because they
    /// lower the error (10/20 leave nothing, uniform 15/15 leaves one σ² of the second matrix).
    @Test func theUniformFallbackKeepsGateUniformAndOthersUnlessTheErrorDrops() throws {
        func profile(_ layer: Int, _ kind: ProjectionKind, flatOver count: Int) -> ProjectionProfile {
            ProjectionProfile(id: ProjectionID(layer: layer, kind: kind), outputs: 64, inputs: 64,
                              singularValues: (0..<64).map { $0 < count ? 1 : 0 })
        }
        let profiles = [profile(0, .gate, flatOver: 4), profile(1, .gate, flatOver: 16), profile(0, .output, flatOver: 4), profile(1, .output, flatOver: 16)]
        let keep = 0.46875  // 15 ranks of (64 + 64) per matrix
        let dynamic = try EffectiveRankAllocator(beta: 0).allocate(profiles, keptFraction: keep)
        #expect(dynamic[profiles[0].id] == 10 && dynamic[profiles[1].id] == 20)
        let fallback = try EffectiveRankAllocator(beta: 0, uniformFallback: true).allocate(profiles, keptFraction: keep)
        #expect(fallback[profiles[0].id] == 15 && fallback[profiles[1].id] == 15, "gate stays uniform")
        // o: dynamic 10/20 leaves no error (4 ≤ 10, 16 ≤ 20); uniform 15/15 leaves 1 of the second: dynamic wins.
        #expect(fallback[profiles[2].id] == 10 && fallback[profiles[3].id] == 20)
    }

    @Test func anAllocatorThatNeedsSpectraRejectsProfilesWithout() {
        let profile = ProjectionProfile(id: ProjectionID(layer: 0, kind: .up), outputs: 8, inputs: 4)
        #expect(throws: AllocationError.missingSpectrum(profile.id)) {
            try EffectiveRankAllocator().allocate([profile], keptFraction: 0.5)
        }
    }

    /// Profiling keeps full-rank factors and truncates them to the plan; the result must be the
    /// factorisation at that rank made directly (the streaming path), in every method.
    @Test(arguments: [CompressionMethod.svd, .asvd, .svdLLM])
    func truncatingProfiledFactorsEqualsFactorisingAtThePlannedRank(method: CompressionMethod) throws {
        let tiny = TinyLlama(seed: 41, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        let recipe = CompressionRecipe(method: method, removedFraction: 0.3)
        let data = method.needsCalibration ? calibration : nil
        let (streamed, streamedReport) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: data)
        let (profiled, profiledReport) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, allocator: UniformAfterProfiling(),
                                                                 calibration: data)
        #expect(profiledReport.projectionParametersAfter == streamedReport.projectionParametersAfter)
        for layer in 0..<tiny.configuration.layerCount {
            for kind in ProjectionKind.allCases {
                let id = ProjectionID(layer: layer, kind: kind)
                let a = streamed[id].reconstruction, b = profiled[id].reconstruction
                let scale = a.storage.map { abs($0) }.max()!
                let worst = zip(a.storage, b.storage).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-5 * scale, "\(method) \(id): worst difference \(worst) of \(scale)")
            }
        }
        let a = streamedReport.projections.map { ($0.rank, $0.relativeTruncationError) }, b = profiledReport.projections.map { ($0.rank, $0.relativeTruncationError) }
        #expect(a.map(\.0) == b.map(\.0))
        for (x, y) in zip(a, b) { #expect(abs((x.1 ?? 0) - (y.1 ?? 0)) < 1e-9) }
    }

    /// An effective-rank checkpoint of the tiny model: the budget holds, every projection reports
    /// its effective rank, and the parameter count of the saved tensors is the report's.
    @Test func anEffectiveRankCheckpointStoresWhatItsReportCounts() throws {
        let tiny = TinyLlama(seed: 41, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try CalibrationSet(tokens: [1, 5, 9, 200, 31, 7, 64, 12, 250, 3, 3, 90, 17, 44, 8, 2], starts: [0, 8], length: 8)
        let recipe = CompressionRecipe(method: .svdLLM, removedFraction: 0.3, allocation: .effectiveRank)
        let (compressed, report) = try Compressor.compress(model, weights: tiny.weights, recipe: recipe, calibration: calibration)
        #expect(Double(report.projectionParametersAfter) <= 0.7 * Double(report.projectionParametersBefore) + 1e-6)
        #expect(report.projections.allSatisfy { $0.effectiveRank != nil })
        let dir = TemporaryDirectory()
        try Checkpoint.write(compressed, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        let counts = ParameterCount(configuration: loaded.configuration, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == report.projectionParametersAfter)
        #expect(LlamaModel(configuration: loaded.configuration, weights: loaded.weights).projectionParameters == report.projectionParametersAfter)
    }

    /// A plan that gives a projection its full rank min(m, n) (no saving) keeps it dense and says so:
    /// a full rank from a plan is not the same as "no plan yet".
    @Test func aPlannedFullRankKeepsTheProjectionDense() throws {
        struct FullRank: RankAllocator {
            var input: AllocationInput { .shapes }
            func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan {
                RankPlan(ranks: Dictionary(uniqueKeysWithValues: profiles.map { ($0.id, min($0.outputs, $0.inputs)) }))
            }
        }
        let tiny = TinyLlama(seed: 41, tiedEmbeddings: false)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let (compressed, report) = try Compressor.compress(model, weights: tiny.weights, recipe: CompressionRecipe(method: .svd, removedFraction: 0.3),
                                                           allocator: FullRank(), calibration: nil)
        #expect(report.projections.count == 7 * tiny.configuration.layerCount)
        #expect(report.projections.allSatisfy { $0.rank == nil && $0.note?.contains("would not save parameters") == true })
        #expect(report.projectionParametersAfter == report.projectionParametersBefore)
        #expect(compressed.layers == model.layers)
    }

    /// compression.json written before allocation existed still reads, as uniform.
    @Test func aRecipeWithoutAnAllocationReadsAsUniform() throws {
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(CompressionRecipe(method: .svdLLM, removedFraction: 0.2))) as! [String: Any]
        json["allocation"] = nil
        json["beta"] = nil
        let recipe = try JSONDecoder().decode(CompressionRecipe.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(recipe.allocation == .uniform)
        #expect(recipe == CompressionRecipe(method: .svdLLM, removedFraction: 0.2))
    }
}
