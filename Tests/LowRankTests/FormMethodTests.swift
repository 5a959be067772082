import Foundation
import Testing
import LinearAlgebra
import Llama
import LowRank
import ModelFormats
import TestSupport

/// SkipCat's cat, skip and skipcat and Basis Sharing as compression methods: the ranks their
/// budgets give, the parameters each unit stores, the factorisation each unit is (against a
/// reference built here from the Gram matrices), checkpoints, and allocators on units.
@Suite("Compression forms")
struct FormMethodTests {
    static let tiny = TinyLlama(seed: 43, tiedEmbeddings: false)
    static let calibration = try! CalibrationSet(tokens: (0..<96).map { ($0 * 53 + 5) % 250 }, starts: [0, 20, 48, 70], length: 24)
    static let formMethods: [CompressionMethod] = [.svdLLM, .cat, .skip, .skipCat, .basisSharing]

    static func compress(_ method: CompressionMethod, remove: Double = 0.3, allocation: AllocationMethod = .uniform)
        throws -> (LlamaModel, CompressionReport) {
        let recipe = CompressionRecipe(method: method, removedFraction: remove, allocation: allocation, searchSamples: 2)
        return try Compressor.compress(LlamaModel(configuration: tiny.configuration, weights: tiny.weights), weights: tiny.weights,
                                       recipe: recipe, calibration: calibration)
    }

    /// The rank examples of algorithms.md §7.2, SmolLM2 shapes at 20% removed, derived by hand from
    /// r·(d_in + D_out) = 0.8·d_in·D_out (Cat) and r·(d_in + D_out − r) = 0.8·d_in·D_out (Skip).
    @Test func uniformRanksOfEachFormAreTheSpecsWorkedExamples() {
        let q = ProjectionID(layer: 0, kind: .query), gate = ProjectionID(layer: 0, kind: .gate), down = ProjectionID(layer: 0, kind: .down)
        func rank(_ id: ProjectionID, outputs: Int, inputs: Int, skipped: Bool) -> Int {
            ProjectionProfile(id: id, outputs: outputs, inputs: inputs, members: [id], skipped: skipped).uniformRank(keptFraction: 0.8)
        }
        #expect(rank(q, outputs: 960, inputs: 576, skipped: false) == 288)  // Cat q/k/v
        #expect(rank(q, outputs: 960, inputs: 576, skipped: true) == 384)  // Cat + Skip
        #expect(rank(gate, outputs: 3072, inputs: 576, skipped: false) == 388)  // Cat gate/up
        #expect(rank(gate, outputs: 3072, inputs: 576, skipped: true) == 441)
        #expect(rank(down, outputs: 576, inputs: 1536, skipped: true) == 417)  // Skip alone
        #expect(rank(down, outputs: 576, inputs: 1536, skipped: false) == 335)  // SVD-LLM
        // A skipped factorisation saves parameters at every rank below min(m, n).
        let p = ProjectionProfile(id: down, outputs: 576, inputs: 1536, skipped: true)
        #expect(p.largestSavingRank == 575 && p.cost(rank: 575) < 576 * 1536 && p.factorCost(rank: 576) == 576 * 1536)
    }

    /// Each method's units store what its formula says (plain r·(d_in + Σ d_out), skipped
    /// r·(d_in + Σ d_out − r), a basis r·(d_in + n·d_out)) at the largest rank within the budget,
    /// the checkpoint's tensors hold exactly that many values, and the reloaded model gives the
    /// same logits.
    @Test(arguments: formMethods)
    func everyMethodStoresItsFormulasParametersWithinTheBudget(method: CompressionMethod) throws {
        let c = Self.tiny.configuration
        let (model, report) = try Self.compress(method)
        let units = FactorizationUnit.units(method: method, configuration: c, groupSize: method == .basisSharing ? 2 : 1)
        #expect(report.projections.count == units.count)
        #expect(units.count == ["svd-llm": 14, "cat": 8, "skip": 14, "skipcat": 8, "basis-sharing": 9][method.rawValue])
        for (entry, unit) in zip(report.projections, units) {
            let profile = unit.profile(c)
            let r = try #require(entry.rank, "\(unit.id) kept dense")
            #expect(r == profile.uniformRank(keptFraction: 0.7), "\(unit.id)")
            let d = profile.inputs, outputs = profile.outputs
            #expect(entry.outputs == outputs && entry.inputs == d)
            #expect(entry.parametersAfter == (unit.skipped ? r * (d + outputs - r) : r * (d + outputs)), "\(unit.id)")
            #expect(entry.parametersAfter <= Int(0.7 * Double(d * outputs)) && profile.factorCost(rank: r + 1) > Int(0.7 * Double(d * outputs)))
            #expect(entry.skipped == (unit.skipped ? true : nil))
            if unit.skipped { #expect((entry.maxAbsRemainderPivoted ?? .nan).isFinite && entry.maxAbsRemainderLeading != nil) }
        }
        #expect(report.projectionParametersAfter <= Int(0.7 * Double(report.projectionParametersBefore)))
        // The forms: Cat groups share a right factor, Skip skips every one, Basis Sharing's layers share storage.
        let layer0 = model.layers[0], layer1 = model.layers[1]
        if case .sharedRight = layer0.attentionInput.layout { #expect(method.stacksSharedInput) } else { #expect(!method.stacksSharedInput) }
        if case .sharedRight = layer1.mlpInput.layout { #expect(method.stacksSharedInput) } else { #expect(!method.stacksSharedInput) }
        for kind in ProjectionKind.allCases {
            let f = try #require(layer0[kind].lowRank)
            if case .skipped = f.right { #expect(method.skips, "\(kind)") } else { #expect(!method.skips, "\(kind)") }
            let shared = method == .basisSharing && ![.output, .down].contains(kind)
            #expect((f.basis != nil) == shared, "\(kind)")
            if shared { #expect(layer1[kind].lowRank?.right == f.right && layer1[kind].lowRank?.left != f.left, "\(kind)") }
        }
        // Saved and reloaded: the count, the tensors and the logits.
        let dir = TemporaryDirectory()
        try Checkpoint.write(model, tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        let counts = ParameterCount(configuration: c, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == report.projectionParametersAfter)
        let file = try SafetensorsFile(path: dir.file("ck/model.safetensors"))
        let stored = file.tensors.filter { !$0.name.hasSuffix("_selection") && !$0.name.contains("norm") && !$0.name.contains("embed_tokens") && $0.name != "lm_head.weight" }
            .reduce(0) { $0 + $1.elementCount }
        #expect(stored == report.projectionParametersAfter)
        let reloaded = LlamaModel(configuration: loaded.configuration, weights: loaded.weights)
        let tokens = [3, 70, 12, 190, 41, 8]
        #expect(reloaded.score(tokens, keepLogitsAt: Set(tokens.indices)).logits == model.score(tokens, keepLogitsAt: Set(tokens.indices)).logits)
    }

    /// The reference twin of a unit's factorisation, built here: the Gram matrix of the members'
    /// input over the calibration windows (Basis Sharing: summed over the group's layers), its
    /// Cholesky whitening, and the truncated SVD of the stacked members. The compressed members
    /// reconstruct it (Float32 factors: 1e-4 relative).
    @Test(arguments: [(CompressionMethod.cat, InputSite.attentionInput), (.cat, .mlpInput), (.skipCat, .attentionInput),
                      (.basisSharing, .attentionInput), (.basisSharing, .mlpInput)])
    func aUnitIsTheWhitenedTruncatedSVDOfItsStackedMembers(method: CompressionMethod, site: InputSite) throws {
        let c = Self.tiny.configuration
        let dense = LlamaModel(configuration: c, weights: Self.tiny.weights)
        let (model, _) = try Self.compress(method)
        let statistics = ActivationStatistics(gram: true, absoluteMean: false)
        let layerwise = LayerwiseCalibration(model: dense, calibration: Self.calibration)
        for _ in 0..<c.layerCount { layerwise.run(dense, observer: statistics, advance: true) }
        // Cat: layer 1's members; Basis Sharing: one kind over layers 0 and 1.
        let members: [ProjectionID] = method == .basisSharing
            ? [0, 1].map { ProjectionID(layer: $0, kind: site.projections[0]) }
            : site.projections.map { ProjectionID(layer: 1, kind: $0) }
        var gram = try #require(statistics.symmetricGram(.init(layer: members.last!.layer, site: site)))
        if method == .basisSharing {
            let first = try #require(statistics.symmetricGram(.init(layer: 0, site: site)))
            for i in gram.storage.indices { gram.storage[i] += first.storage[i] }
        }
        let parts = members.map { Self.tiny.weights[$0] }
        let stacked = Matrix(rows: parts.reduce(0) { $0 + $1.rows }, columns: parts[0].columns, storage: parts.flatMap { $0.storage.map(Double.init) })
        let profile = ProjectionProfile(id: members[0], outputs: stacked.rows, inputs: stacked.columns, members: members, skipped: method.skips)
        let rank = profile.uniformRank(keptFraction: 0.7)
        let reference = try ScaledSVD.factorize(stacked, rank: rank, scaling: .cholesky(try Whitening.cholesky(gram: gram).s)).product
        let reconstructed = members.flatMap { model[$0].reconstruction.storage.map(Double.init) }
        var error = 0.0, norm = 0.0
        for (a, b) in zip(reconstructed, reference.storage) {
            error += (a - b) * (a - b)
            norm += b * b
        }
        #expect((error / norm).squareRoot() < 1e-4, "\(method) \(site): \((error / norm).squareRoot())")
        for id in members { #expect(model[id].lowRank?.rank == rank) }
    }

    /// Every allocator chooses one rank per unit on skipcat's groups and meets the budget.
    @Test(arguments: [AllocationMethod.effectiveRank, .fisher, .asvdSearch])
    func everyAllocatorMeetsTheBudgetOnSkipcatUnits(allocation: AllocationMethod) throws {
        let (model, report) = try Self.compress(.skipCat, remove: 0.4, allocation: allocation)
        #expect(report.projections.count == 8)
        #expect(report.projectionParametersAfter <= Int(0.6 * Double(report.projectionParametersBefore)))
        #expect(report.projectionParametersAfter >= Int(0.5 * Double(report.projectionParametersBefore)), "the budget is used: \(report.projectionParametersAfter)")
        let counts = ParameterCount(configuration: model.configuration, compressedGroups: Dictionary(uniqueKeysWithValues: (0..<2).flatMap { l in
            InputSite.allCases.map { (GroupID(layer: l, site: $0), model[GroupID(layer: l, site: $0)]) }
        }))
        #expect(counts.projectionTotal == report.projectionParametersAfter)
    }

    /// An allocator that returns fixed ranks (what a plain-cost rule decided).
    struct FixedAllocator: RankAllocator {
        var ranks: [ProjectionID: Int]
        var input: AllocationInput { .shapes }
        func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan {
            #expect(profiles.allSatisfy { !$0.skipped }, "parameter-share allocation shows plain costs")
            return RankPlan(ranks: ranks)
        }
    }

    /// With parameter-share allocation a skipped unit takes the largest skipped rank its plain share
    /// pays for, derived by hand for 100 × 100: plain rank 40 is 8000 parameters, and
    /// r·(200 − r) ≤ 8000 gives r = ⌊100 − √2000⌋ = 55; plain 49 (the last saving rank) gives
    /// ⌊100 − √200⌋ = 85; plain 50 saves nothing, so the unit stays dense (rank 100); a plain unit
    /// keeps its rank.
    @Test func aSkippedUnitBuysTheLargestRankItsPlainShareAffords() throws {
        let ids = (0..<4).map { ProjectionID(layer: $0, kind: .output) }
        let profiles = ids.enumerated().map { ProjectionProfile(id: $1, outputs: 100, inputs: 100, skipped: $0 < 3) }
        let allocator = FixedAllocator(ranks: [ids[0]: 40, ids[1]: 49, ids[2]: 50, ids[3]: 30])
        let shared = try Compressor.allocate(allocator, profiles, recipe: CompressionRecipe(method: .skip, removedFraction: 0.2))
        #expect(ids.map { shared[$0] } == [55, 85, 100, 30])
        #expect(profiles[2].keptDenseNote(rank: 100) != nil)
        let exact = try Compressor.allocate(FixedAllocator(ranks: allocator.ranks).asExact(), profiles,
                                            recipe: CompressionRecipe(method: .skip, removedFraction: 0.2, skippedAllocation: .exactCost))
        #expect(ids.map { exact[$0] } == [40, 49, 50, 30])
    }

    /// A basis shared by more layers than the model has, or calibrated on the compressed prefix,
    /// is refused with the option named.
    @Test func basisSharingRejectsAnImpossibleGroupAndSequentialCalibration() throws {
        let dense = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        #expect(throws: CompressionError.invalidGroupSize(3, layers: 2)) {
            try Compressor.compress(dense, weights: Self.tiny.weights, recipe: CompressionRecipe(method: .basisSharing, removedFraction: 0.2, groupSize: 3),
                                    calibration: Self.calibration)
        }
        #expect(throws: CompressionError.sharedBasisNeedsDenseCalibration) {
            try Compressor.compress(dense, weights: Self.tiny.weights,
                                    recipe: CompressionRecipe(method: .basisSharing, removedFraction: 0.2, calibrateOn: .compressed),
                                    calibration: Self.calibration)
        }
        #expect(CompressionError.invalidGroupSize(3, layers: 2).description.contains("--group-size 3"))
    }
}

extension FormMethodTests.FixedAllocator {
    /// The same ranks for an exact-cost run (which shows skipped costs, so no check on them).
    func asExact() -> ExactFixedAllocator { ExactFixedAllocator(ranks: ranks) }
}

struct ExactFixedAllocator: RankAllocator {
    var ranks: [ProjectionID: Int]
    var input: AllocationInput { .shapes }
    func allocate(_ profiles: [ProjectionProfile], keptFraction: Double) throws -> RankPlan { RankPlan(ranks: ranks) }
}
