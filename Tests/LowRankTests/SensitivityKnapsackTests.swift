import Foundation
import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

@Suite("Sensitivity knapsack allocation")
struct SensitivityKnapsackTests {
    static func profile(_ layer: Int, outputs: Int = 100, inputs: Int = 100, baseline: Double = 3, _ deltas: [(Double, Double)]) -> ProjectionProfile {
        var p = ProjectionProfile(id: ProjectionID(layer: layer, kind: .up), outputs: outputs, inputs: inputs,
                                  sensitivity: deltas.map { SensitivityPoint(keptFraction: $0.0, loss: baseline + $0.1) })
        p.sensitivityBaseline = baseline
        return p
    }

    /// A [100 × 100] loses 0.05 at 0.4 (rank 20, 4,000 parameters) and 0.01 at 0.9 (rank 45, 9,000);
    /// B [100 × 400] loses 0.06 at 0.4 (rank 32, 16,000) and 0.02 at 0.9 (rank 72, 36,000). Keeping
    /// half (25,000) B must take 0.4, and then A fits at 0.9: Σ Δ = 0.07. ASVD's threshold search
    /// applies probes in loss order (B0.4, A0.4, B0.9, A0.9) and stops with both at 0.4: Σ Δ = 0.11.
    @Test func theKnapsackWeighsEachLossAgainstTheParametersItFrees() throws {
        let profiles = [Self.profile(0, [(0.4, 0.05), (0.9, 0.01)]), Self.profile(1, inputs: 400, [(0.4, 0.06), (0.9, 0.02)])]
        let knapsack = try SensitivityKnapsackAllocator().allocate(profiles, keptFraction: 0.5)
        #expect(profiles.map { knapsack[$0.id]! } == [45, 32])
        #expect(knapsack.parameters(profiles) == 25_000)
        let threshold = try SensitivitySearchAllocator().allocate(profiles, keptFraction: 0.5)
        #expect(profiles.map { threshold[$0.id]! } == [20, 32], "the example must separate the two rules")
    }

    /// A probe that scored below the dense loss is noise, not a free saving. A's probe at 0.4 reads
    /// −0.01 and at 0.9 +0.05; B's +0.03 and 0. Keeping 70% (14,000 of 20,000), taken at face value
    /// A at 0.4 and B dense would "gain" 0.01; under the monotone envelope A at 0.4 costs 0.05, so A
    /// stays dense and B takes 0.4 (0.03).
    @Test func aProbeBelowTheDenseLossIsReadAsNoise() throws {
        let profiles = [Self.profile(0, [(0.4, -0.01), (0.9, 0.05)]), Self.profile(1, [(0.4, 0.03), (0.9, 0)])]
        let plan = try SensitivityKnapsackAllocator().allocate(profiles, keptFraction: 0.7)
        #expect(profiles.map { plan[$0.id]! } == [100, 20])
    }

    /// On seeded random probes over units of several shapes, the plan meets the budget and its Σ Δ
    /// (under the monotone envelope) equals the best of every combination of options, found by
    /// enumerating them all; ASVD's threshold plan is never better.
    @Test func thePlanIsTheBestOfEveryCombinationOnRandomProbes() throws {
        var rng = SeededGenerator(seed: 17)
        let shapes = [(40, 40), (40, 120), (120, 40), (60, 90)]
        for trial in 0..<25 {
            let profiles = shapes.enumerated().map { i, shape in
                // Losses that mostly fall with the kept fraction, with noise that sometimes breaks it.
                let scale = Double(abs(rng.uniform(1))) + 0.01
                let deltas = SensitivitySearchAllocator.candidates.map { f in
                    (f, scale * (1 - f) * (1 - f) + 0.02 * Double(rng.uniform(1)))
                }
                return Self.profile(i, outputs: shape.0, inputs: shape.1, deltas)
            }
            let keep = 0.45 + 0.5 * Double(trial) / 25
            let plan = try SensitivityKnapsackAllocator().allocate(profiles, keptFraction: keep)
            let budget = keep * Double(profiles.reduce(0) { $0 + $1.denseParameters })
            #expect(Double(plan.parameters(profiles)) <= budget + 1e-6)
            // Every combination of the seven options per unit (7⁴ = 2401).
            let options = profiles.map { p in
                SensitivitySearchAllocator.candidates.map { p.uniformRank(keptFraction: $0) } + [min(p.outputs, p.inputs)]
            }
            var bestDelta = Double.infinity
            for code in 0..<2401 {
                var c = code
                var ranks: [ProjectionID: Int] = [:]
                for (u, p) in profiles.enumerated() {
                    ranks[p.id] = options[u][c % 7]
                    c /= 7
                }
                let candidate = RankPlan(ranks: ranks)
                guard Double(candidate.parameters(profiles)) <= budget + 1e-6 else { continue }
                bestDelta = min(bestDelta, Self.envelopeDelta(candidate, profiles))
            }
            #expect(abs(Self.envelopeDelta(plan, profiles) - bestDelta) < 1e-12, "trial \(trial)")
            let threshold = try SensitivitySearchAllocator().allocate(profiles, keptFraction: keep)
            #expect(Self.envelopeDelta(plan, profiles) <= Self.envelopeDelta(threshold, profiles) + 1e-12, "trial \(trial)")
        }
    }

    /// Σ Δ of a plan under the monotone envelope, written out plainly (the reference the allocator is
    /// checked against): a unit at rank r is at the candidate whose uniform rank is r, or dense.
    static func envelopeDelta(_ plan: RankPlan, _ profiles: [ProjectionProfile]) -> Double {
        var total = 0.0
        for p in profiles {
            let points = p.sensitivity!
            guard let at = points.firstIndex(where: { p.uniformRank(keptFraction: $0.keptFraction) == plan[p.id] }) else { continue }  // dense: 0
            total += max(0, points[at...].map { $0.loss - p.sensitivityBaseline! }.max()!)
        }
        return total
    }

    /// The allocator refuses, naming the unit, probes without the dense loss they are compared
    /// with, and a budget below every unit's smallest candidate.
    @Test func missingBaselinesAndUnreachableBudgetsAreRefused() throws {
        var bare = Self.profile(0, [(0.4, 0.1), (0.9, 0)])
        bare.sensitivityBaseline = nil
        #expect(throws: AllocationError.missingSensitivityBaseline(bare.id)) {
            try SensitivityKnapsackAllocator().allocate([bare], keptFraction: 0.5)
        }
        #expect(throws: AllocationError.searchCannotReachBudget(smallestKeptFraction: 0.4, keep: 0.3)) {
            try SensitivityKnapsackAllocator().allocate([Self.profile(0, [(0.4, 0.1), (0.9, 0)])], keptFraction: 0.3)
        }
    }

    /// End to end on the tiny model: a fresh asvd-knapsack run records the dense loss of its probe
    /// windows; an asvd-search record (with or without that loss) serves it at another budget with
    /// the ranks a fresh knapsack run chooses there.
    @Test func aKnapsackRunRecordsItsDenseLossAndReusesAnASVDSearchRecordsProbes() throws {
        let (tiny, model, calibration) = try SensitivitySearchTests.tinyRun()
        let search = CompressionRecipe(method: .skipCat, removedFraction: 0.3, allocation: .asvdSearch, searchSamples: 2)
        let (_, searched) = try Compressor.compress(model, weights: tiny.weights, recipe: search, calibration: calibration)
        let denseLoss = SensitivityProbe(model: model, windows: Array(calibration.windows.prefix(2))).denseLoss()
        #expect(searched.sensitivityBaseline == denseLoss)
        var knapsack = search
        knapsack.allocation = .asvdKnapsack
        knapsack.removedFraction = 0.4
        let (_, fresh) = try Compressor.compress(model, weights: tiny.weights, recipe: knapsack, calibration: calibration)
        #expect(fresh.sensitivityBaseline == denseLoss)
        #expect(Double(fresh.projectionParametersAfter) <= 0.6 * Double(fresh.projectionParametersBefore) + 1e-6)
        #expect(fresh.projections.map(\.sensitivity) == searched.projections.map(\.sensitivity), "the same probes")
        var older = searched
        older.sensitivityBaseline = nil  // a record made before the dense loss was kept: scored again
        let scored = calibration.windows.prefix(2).map { model.score($0).meanNLL }.reduce(0, +) / 2
        #expect(abs(scored - denseLoss) < 1e-6, "scoring and the probe agree on the dense loss")
        for (report, expected) in [(searched, denseLoss), (older, scored)] {
            let saved = try SavedSensitivity(record: SensitivitySearchTests.record(search, report), path: "p", sha256: "s",
                                             configuration: tiny.configuration, matching: knapsack, sourceSHA256: "abc", calibrationSHA256: "def")
            var reusing = knapsack
            reusing.sensitivitySource = saved.source
            let (_, reused) = try Compressor.compress(model, weights: tiny.weights, recipe: reusing, calibration: calibration, savedSensitivity: saved)
            #expect(reused.projections.map(\.rank) == fresh.projections.map(\.rank))
            #expect(reused.sensitivityBaseline == expected)
        }
    }
}
