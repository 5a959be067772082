import Foundation
import Testing
import Gradients
import LinearAlgebra
import Llama
import LowRank
import ModelFormats
import TestSupport

/// Healing (`FactorHealer`): the factor gradients it derives from the dense backward pass, what a
/// few steps do, and that the healed factors are what a checkpoint then stores and runs.
@Suite("Healing by distillation")
struct HealingTests {
    static let tiny = TinyLlama(seed: 43, tiedEmbeddings: false)
    static let tokens = (0..<96).map { ($0 * 53 + 5) % 250 }
    static let calibration = try! CalibrationSet(tokens: tokens, starts: [0, 20, 48, 70], length: 24)
    static let windows = [Array(tokens[3..<27]), Array(tokens[50..<74])]

    /// The tiny model compressed by `method` at 30%, through a checkpoint (as `lowrank heal` loads it).
    static func compressed(_ method: CompressionMethod) throws -> (LlamaWeights, TemporaryDirectory) {
        let recipe = CompressionRecipe(method: method, removedFraction: 0.3)
        let (model, _) = try Compressor.compress(LlamaModel(configuration: tiny.configuration, weights: tiny.weights), weights: tiny.weights,
                                                 recipe: recipe, calibration: calibration)
        let dir = TemporaryDirectory()
        try Checkpoint.write(model, tokenizer: try tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        return (try ModelLoader.load(dir.file("ck")).weights, dir)
    }

    static func divergence(_ student: LlamaWeights) throws -> Double {
        let healer = try FactorHealer(configuration: tiny.configuration, student: student, teacher: tiny.weights, options: HealingOptions(learningRate: 1e-3))
        return windows.map { healer.divergence($0) }.reduce(0, +) / Double(windows.count)
    }

    /// Every stored factor value in a fixed order (groups by ID, then each group's `mapWeights` order).
    static func visit(_ groups: [GroupID: ProjectionGroup], _ body: (WeightMatrix) -> WeightMatrix) -> [GroupID: ProjectionGroup] {
        var out: [GroupID: ProjectionGroup] = [:]
        for id in groups.keys.sorted() { out[id] = groups[id]!.mapWeights(body) }
        return out
    }

    /// ∂(mean divergence)/∂(every factor) along a random direction equals the central difference
    /// of the divergence (Float32 forward, ε = 1e-3; the difference quotient's error is far below
    /// the 1e-2 relative tolerance, and a wrong transpose, a missing member's share of a shared
    /// right factor or the identity block counted as a parameter each miss it by far more).
    @Test(arguments: [CompressionMethod.svdLLM, .cat, .skip, .skipCat])
    func theFactorGradientsAreTheDerivativeOfTheDivergence(method: CompressionMethod) throws {
        let (student, _) = try Self.compressed(method)
        let healer = try FactorHealer(configuration: Self.tiny.configuration, student: student, teacher: Self.tiny.weights,
                                      options: HealingOptions(learningRate: 1e-3))
        for w in Self.windows { healer.accumulate(w) }
        let gradients = healer.gradientGroups()
        var rng = SeededGenerator(seed: 5)
        var directions: [[Float]] = []
        var analytic = 0.0
        _ = Self.visit(gradients) { g in
            let d = rng.floats(g.count, scale: 1)
            directions.append(d)
            analytic += zip(g.matrix.storage, d).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            return g
        }
        // Per layer: q/k/v and gate/up as one right factor and a left per member (4 + 3), or a pair per projection; o and down a pair each.
        #expect(directions.count == 2 * (method.stacksSharedInput ? 4 + 2 + 3 + 2 : 7 * 2))
        let epsilon: Float = 1e-3
        func shifted(_ sign: Float) throws -> Double {
            var k = 0
            var moved = student
            moved.compressedGroups = Self.visit(student.compressedGroups) { w in
                let m = w.matrix
                defer { k += 1 }
                return WeightMatrix(Matrix(rows: m.rows, columns: m.columns, storage: zip(m.storage, directions[k]).map { $0 + sign * epsilon * $1 }))
            }
            return try Self.divergence(moved)
        }
        let numerical = (try shifted(1) - shifted(-1)) / (2 * Double(epsilon))
        #expect(abs(analytic) > 1e-3, "the student differs from the teacher, so the gradient is not zero")
        #expect(abs(numerical - analytic) / abs(numerical) < 1e-2, "analytic \(analytic), numerical \(numerical)")
    }

    /// A few Adam steps lower the divergence; the healed groups keep every form (ranks, skipped
    /// channels, shared right factors and bases) and the parameter count; and the checkpoint they
    /// make runs exactly the model the healer trained.
    @Test(arguments: [CompressionMethod.svdLLM, .skipCat, .basisSharing])
    func healingLowersTheDivergenceAndKeepsEveryForm(method: CompressionMethod) throws {
        let c = Self.tiny.configuration
        let (student, _) = try Self.compressed(method)
        let healer = try FactorHealer(configuration: c, student: student, teacher: Self.tiny.weights, options: HealingOptions(learningRate: 3e-3))
        let before = try Self.divergence(student)
        for _ in 0..<12 {
            for w in Self.windows { healer.accumulate(w) }
            try healer.step()
        }
        let trained = Self.windows.map { healer.divergence($0) }.reduce(0, +) / Double(Self.windows.count)
        #expect(trained < 0.85 * before, "divergence \(before) → \(trained)")
        #expect(healer.steps == 12)

        var healed = student
        healed.compressedGroups = healer.healedGroups()
        let before_ = ParameterCount(configuration: c, compressedGroups: student.compressedGroups)
        let after_ = ParameterCount(configuration: c, compressedGroups: healed.compressedGroups)
        #expect(after_.projectionTotal == before_.projectionTotal && healer.trainedParameterCount <= after_.projectionTotal)
        for (id, group) in student.compressedGroups {
            let new = try #require(healed.compressedGroups[id])
            for (old, member) in zip(group.members, new.members) {
                let o = try #require(old.lowRank), n = try #require(member.lowRank)
                #expect(o.rank == n.rank && o.basis == n.basis && o.left != n.left, "\(id)")
                switch (o.right, n.right) {
                case (.skipped(let a), .skipped(let b)): #expect(a.selected == b.selected && a.remainder != b.remainder)
                case (.plain(let a), .plain(let b)): #expect(a != b)
                default: Issue.record("\(id): the right factor changed form")
                }
            }
            switch (group.layout, new.layout) {
            case (.sharedRight, .sharedRight), (.separate, .separate): break
            default: Issue.record("\(id): the group layout changed")
            }
        }
        // Written and reloaded: the divergence the healer reached, and one stored basis per group.
        let dir = TemporaryDirectory()
        try Checkpoint.write(LlamaModel(configuration: c, weights: healed), tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("healed"))
        let reloaded = try ModelLoader.load(dir.file("healed")).weights
        #expect(abs(try Self.divergence(reloaded) - trained) < 1e-6 * max(trained, 1))
        if method == .basisSharing {
            let q0 = try #require(reloaded.factored[ProjectionID(layer: 0, kind: .query)]), q1 = try #require(reloaded.factored[ProjectionID(layer: 1, kind: .query)])
            #expect(q0.basis != nil && q0.right == q1.right && q0.left != q1.left)
        }
    }

    /// What the healer refuses: a dense student, a compressed teacher, a teacher with another head.
    @Test func healingRefusesADenseStudentACompressedTeacherAndAStranger() throws {
        let c = Self.tiny.configuration
        let options = HealingOptions(learningRate: 1e-3)
        #expect(throws: HealingError.notCompressed) { try FactorHealer(configuration: c, student: Self.tiny.weights, teacher: Self.tiny.weights, options: options) }
        let (student, _) = try Self.compressed(.svdLLM)
        #expect(throws: HealingError.teacherNotDense) { try FactorHealer(configuration: c, student: student, teacher: student, options: options) }
        let stranger = TinyLlama(seed: 44, tiedEmbeddings: false).weights
        #expect(throws: HealingError.self) { try FactorHealer(configuration: c, student: student, teacher: stranger, options: options) }
    }
}
