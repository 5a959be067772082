import Foundation
import Gradients
import LinearAlgebra
import Llama

/// Adam's settings for healing (defaults: Kingma & Ba's β₁, β₂, ε).
public struct HealingOptions: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }
}

public enum HealingError: Error, Equatable, CustomStringConvertible, Sendable {
    case notCompressed
    case teacherNotDense
    case halfPrecision(String)
    case teacherShape(String)
    case nonFinite(step: Int, values: Int)

    public var description: String {
        switch self {
        case .notCompressed: "the student has no low-rank factors to heal; pass a checkpoint written by lowrank compress"
        case .teacherNotDense: "the teacher is compressed; pass the dense model the checkpoint was compressed from"
        case .halfPrecision(let which): "the \(which) has half-precision weights; healing needs Float32 (load it without --weights f16|bf16)"
        case .teacherShape(let m): "the teacher does not match the student: \(m)"
        case .nonFinite(let step, let values):
            "step \(step): \(values) non-finite factor gradients (the loss diverged); lower --learning-rate"
        }
    }
}

/// Healing a compressed model by distillation from the dense model it came from: the low-rank
/// factors are trained with Adam to lower the KL divergence of the student's next-token
/// distributions from the teacher's (`DistillationOp`) on calibration windows. This is the
/// training-based recovery of SVD-LLM's full recipe (`../shared/research/algorithms.md` §1.6: there
/// LoRA on one factor, then the other, on Alpaca), made ours in two ways, both documented choices:
/// - both factors of every projection are trained together, in place (no adapter: the parameter
///   count and every form, skipped or shared, stay as compressed);
/// - the target is the dense teacher's distribution, not the corpus's next token, so the student
///   is pulled back toward the model it approximates and does not learn the calibration corpus
///   (healing the dense model toward itself has zero gradient).
/// Norms, embeddings, the head and projections the checkpoint keeps dense stay frozen.
///
/// How the gradient reaches the factors: the backward pass differentiates dense projections, so
/// the student runs as its exact dense reconstructions `W_p = B_p · R` and hands `G_p = ∂L/∂W_p`.
/// Then `∂L/∂B_p = G_p · Rᵀ` and `∂L/∂R = Σ_p B_pᵀ · G_p` over the projections that share `R` (a
/// Cat group's members, a shared basis's layers); a skipped `R = [I | A′]` (channels permuted) takes
/// the `rest` columns of that sum as `∂L/∂A′` (its identity block is not a parameter).
public final class FactorHealer {
    /// A trainable tensor and Adam's moments.
    final class Parameter {
        var values: [Float]
        var gradient: [Float]
        var first: [Float]
        var second: [Float]

        init(_ values: [Float]) {
            self.values = values
            gradient = [Float](repeating: 0, count: values.count)
            first = gradient
            second = gradient
        }
    }

    /// A right factor: its parameter (`A` `[rank × inputs]`, or `A′` `[rank × (inputs − rank)]`
    /// when skipped) and how it widens to the dense `[rank × inputs]` R.
    struct Right {
        let parameter: Parameter
        let rank: Int
        let inputs: Int
        let skipped: (selected: [Int], rest: [Int])?

        /// R `[rank × inputs]` in the original channel order (the identity block written in).
        func dense() -> [Float] { factor(parameter.values).matrix(activeRank: rank).storage }

        /// The parameter's gradient from ∂L/∂R `[rank × inputs]`.
        func setGradient(fromDense d: [Float]) {
            guard let skipped else { return parameter.gradient = d }
            let n = skipped.rest.count
            for j in 0..<rank { for (k, channel) in skipped.rest.enumerated() { parameter.gradient[j * n + k] = d[j * inputs + channel] } }
        }

        /// The factor with `values` as its parameter (its channel selection kept).
        func factor(_ values: [Float]) -> RightFactor {
            guard let skipped else { return .plain(WeightMatrix(Matrix(rows: rank, columns: inputs, storage: values))) }
            let remainder = WeightMatrix(Matrix(rows: rank, columns: skipped.rest.count, storage: values))
            return .skipped(SkippedRightFactor(inputs: inputs, selected: skipped.selected, remainder: remainder))
        }
    }

    /// One factored projection: its left factor B `[outputs × rank]` and its right factor.
    struct Factored {
        let id: ProjectionID
        let left: Parameter
        let right: Int  // index into `rights`
        let basis: SharedBasisID?
    }

    public let configuration: LlamaConfiguration
    private let student: GradientPass
    private let teacher: GradientPass
    private let source: [GroupID: ProjectionGroup]
    private let rights: [Right]
    private let factored: [Factored]
    private let byID: [ProjectionID: Int]
    private var gradientSums: [ProjectionID: [Float]] = [:]
    private var accumulatedWindows = 0
    public private(set) var steps = 0
    public let options: HealingOptions

    /// Values trained: every factor's stored values (the projection parameters less those of the
    /// projections kept dense).
    public var trainedParameterCount: Int {
        factored.reduce(0) { $0 + $1.left.values.count } + rights.reduce(0) { $0 + $1.parameter.values.count }
    }

    /// - Parameters:
    ///   - student: the compressed model's weights (Float32 factors, at their stored ranks).
    ///   - teacher: the dense model's weights (Float32), the same configuration.
    public init(configuration c: LlamaConfiguration, student: LlamaWeights, teacher: LlamaWeights, options: HealingOptions) throws(HealingError) {
        guard !student.compressedGroups.isEmpty else { throw .notCompressed }
        guard teacher.isDense else { throw .teacherNotDense }
        guard student.halfPrecision.isEmpty else { throw .halfPrecision("student") }
        guard teacher.halfPrecision.isEmpty else { throw .halfPrecision("teacher") }
        guard teacher.layers.count == c.layerCount, teacher.tokenEmbedding.rows == c.vocabularySize else {
            throw .teacherShape("\(teacher.layers.count) layers and a vocabulary of \(teacher.tokenEmbedding.rows), expected \(c.layerCount) and \(c.vocabularySize)")
        }
        // The student's head turns the teacher's hidden states into its logits (compression never
        // changes the head), so the two must share it.
        guard (teacher.outputHead ?? teacher.tokenEmbedding) == (student.outputHead ?? student.tokenEmbedding) else {
            throw .teacherShape("the output heads differ, so the teacher is not the model the student was compressed from")
        }
        configuration = c
        self.options = options
        source = student.compressedGroups
        var basisRights: [SharedBasisID: Int] = [:]
        var rights: [Right] = [], factored: [Factored] = []
        func addRight(_ r: RightFactor, basis: SharedBasisID?) -> Int {
            if let basis, let i = basisRights[basis] { return i }
            let right: Right
            switch r {
            case .plain(let a): right = Right(parameter: Parameter(a.matrix.storage), rank: a.rows, inputs: a.columns, skipped: nil)
            case .skipped(let s):
                right = Right(parameter: Parameter(s.remainder.matrix.storage), rank: s.rank, inputs: s.inputs, skipped: (s.selected, s.rest))
            }
            rights.append(right)
            if let basis { basisRights[basis] = rights.count - 1 }
            return rights.count - 1
        }
        for id in source.keys.sorted() {
            let group = source[id]!
            let kinds = id.site.projections
            switch group.layout {
            case .separate(let members):
                for (kind, member) in zip(kinds, members) {
                    guard case .lowRank(let l) = member else { continue }
                    precondition(l.activeRank == l.rank, "heal a checkpoint at its stored ranks")
                    let right = addRight(l.right, basis: l.basis)
                    factored.append(Factored(id: ProjectionID(layer: id.layer, kind: kind), left: Parameter(l.left.matrix.storage), right: right, basis: l.basis))
                }
            case .sharedRight(let shared):
                precondition(shared.activeRank == shared.rank, "heal a checkpoint at its stored ranks")
                let right = addRight(shared.right, basis: nil)
                for (kind, left) in zip(kinds, shared.lefts) {
                    factored.append(Factored(id: ProjectionID(layer: id.layer, kind: kind), left: Parameter(left.matrix.storage), right: right, basis: nil))
                }
            }
        }
        self.rights = rights
        self.factored = factored
        byID = Dictionary(uniqueKeysWithValues: factored.enumerated().map { ($1.id, $0) })
        // The student as dense reconstructions (exactly what its factors compute, up to rounding):
        // the stored dense projections, a compressed group's dense members, and W = B·R.
        var stored: [ProjectionID: Matrix<Float>] = [:]
        for (id, group) in source {
            for (kind, member) in zip(id.site.projections, group.members) {
                if case .dense(let d) = member { stored[ProjectionID(layer: id.layer, kind: kind)] = d.matrix }
            }
        }
        for (id, w) in Self.reconstructions(factored, rights, c) { stored[id] = w }
        var dense = student
        dense.compressedGroups = [:]
        dense.layers = (0..<c.layerCount).map { l in
            LlamaLayerWeights(attentionNorm: student.layers[l].attentionNorm, mlpNorm: student.layers[l].mlpNorm) { kind in
                student.layers[l].dense(kind) ?? stored[ProjectionID(layer: l, kind: kind)]!
            }
        }
        self.student = GradientPass(configuration: c, weights: dense)
        self.teacher = GradientPass(configuration: c, weights: teacher)
    }

    /// W_p = B_p · R `[outputs × inputs]`, from R widened (`Right.dense()`).
    private static func reconstruct(_ f: Factored, rank r: Int, widened: [Float], _ c: LlamaConfiguration) -> Matrix<Float> {
        let s = c.shape(of: f.id.kind)
        var w = [Float](repeating: 0, count: s.outputs * s.inputs)
        f.left.values.withUnsafeBufferPointer { b in
            widened.withUnsafeBufferPointer { rr in
                w.withUnsafeMutableBufferPointer { w in
                    let (b, rr, w) = (b.baseAddress!, rr.baseAddress!, w.baseAddress!)
                    inRowBlocks(s.outputs, minimum: 64) { rows in  // disjoint rows of W
                        BLAS.gemmNN(m: rows.count, n: s.inputs, k: r, a: b + rows.lowerBound * r, lda: r, b: rr, ldb: s.inputs,
                                    c: w + rows.lowerBound * s.inputs, ldc: s.inputs)
                    }
                }
            }
        }
        return Matrix(rows: s.outputs, columns: s.inputs, storage: w)
    }

    /// `body(rows)` for disjoint blocks of `0..<count`, one per worker (each writes only its rows).
    private static func inRowBlocks(_ count: Int, minimum: Int, _ body: (Range<Int>) -> Void) {
        let parts = Parallel.partCount(count, minimum: minimum)
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendableBox(body)
            Parallel.forEach(parts) { p in box.value(Parallel.part(p, of: parts, count: count)) }
        }
    }

    /// Every factored projection's W = B·R from the current factors, each shared R widened once.
    private static func reconstructions(_ factored: [Factored], _ rights: [Right], _ c: LlamaConfiguration) -> [(ProjectionID, Matrix<Float>)] {
        let widened = rights.map { $0.dense() }
        return factored.map { ($0.id, reconstruct($0, rank: rights[$0.right].rank, widened: widened[$0.right], c)) }
    }

    /// The mean KL divergence of the student from the teacher on `window`, forward only.
    public func divergence(_ window: [Int]) -> Double {
        student.loss(window, distillingFrom: teacher.finalHidden(window))
    }

    /// Adds one window's factor gradients to the step being gathered; returns its mean KL divergence
    /// (before the step).
    @discardableResult
    public func accumulate(_ window: [Int]) -> Double {
        let hidden = teacher.finalHidden(window)
        let loss = student.lossAndGradients(window, distillingFrom: hidden) { id, g in
            guard byID[id] != nil else { return }
            if gradientSums[id] == nil {
                gradientSums[id] = Array(g)
            } else {
                gradientSums[id]!.withUnsafeMutableBufferPointer { VectorMath.add(g.baseAddress!, into: $0.baseAddress!, count: g.count) }
            }
        }
        accumulatedWindows += 1
        return loss
    }

    /// One Adam step on the mean of the gathered windows' gradients; the student's dense
    /// reconstructions follow. Throws (and changes no factor) when a gradient is not finite.
    public func step() throws(HealingError) {
        let nonFinite = computeGradients()
        gradientSums = [:]
        accumulatedWindows = 0
        guard nonFinite == 0 else { throw .nonFinite(step: steps + 1, values: nonFinite) }
        steps += 1
        let o = options
        let correction1 = 1 - pow(o.beta1, Float(steps)), correction2 = 1 - pow(o.beta2, Float(steps))
        for p in parameters { Self.adam(p, o, correction1: correction1, correction2: correction2) }
        for (id, w) in Self.reconstructions(factored, rights, configuration) { student.replaceWeight(id, with: w) }
    }

    /// The gradient of the mean divergence of the gathered windows with respect to every factor,
    /// in the checkpoint's forms (a left factor holds ∂L/∂B, a right one ∂L/∂A, or ∂L/∂A′ when
    /// skipped; dense members as they are). The windows stay gathered for `step()`.
    public func gradientGroups() -> [GroupID: ProjectionGroup] {
        _ = computeGradients()
        return groups { $0.gradient }
    }

    private var parameters: [Parameter] { factored.map(\.left) + rights.map(\.parameter) }

    /// Fills every parameter's gradient (of the mean over the gathered windows); returns how many
    /// are not finite.
    private func computeGradients() -> Int {
        precondition(accumulatedWindows > 0, "accumulate at least one window first")
        let c = configuration
        let widened = rights.map { $0.dense() }
        var rGradients = rights.map { [Float](repeating: 0, count: $0.rank * $0.inputs) }
        for f in factored {
            let s = c.shape(of: f.id.kind), r = rights[f.right].rank
            guard let g = gradientSums[f.id] else {
                f.left.gradient = [Float](repeating: 0, count: s.outputs * r)
                continue
            }
            g.withUnsafeBufferPointer { g in
                // ∂L/∂B = G · Rᵀ [outputs × rank]: a linear layer with weight R applied to G's rows.
                widened[f.right].withUnsafeBufferPointer { rr in
                    LinearOp.forward(g.baseAddress!, rows: s.outputs, weight: rr.baseAddress!, outputs: r, inputs: s.inputs, into: &f.left.gradient)
                }
                // ∂L/∂R += Bᵀ · G [rank × inputs], summed over the projections sharing R.
                f.left.values.withUnsafeBufferPointer { b in
                    rGradients[f.right].withUnsafeMutableBufferPointer { dr in
                        let (g, b, dr) = (g.baseAddress!, b.baseAddress!, dr.baseAddress!)
                        Self.inRowBlocks(r, minimum: 32) { rows in  // disjoint rows of ∂L/∂R
                            BLAS.gemmTN(m: rows.count, n: s.inputs, k: s.outputs, a: b + rows.lowerBound, lda: r, b: g, ldb: s.inputs,
                                        beta: 1, c: dr + rows.lowerBound * s.inputs, ldc: s.inputs)
                        }
                    }
                }
            }
        }
        for (right, d) in zip(rights, rGradients) { right.setGradient(fromDense: d) }
        // The sums are over windows; the step follows their mean.
        let scale = 1 / Float(accumulatedWindows)
        var nonFinite = 0
        for p in parameters {
            for i in p.gradient.indices {
                p.gradient[i] *= scale
                if !p.gradient[i].isFinite { nonFinite += 1 }
            }
        }
        return nonFinite
    }

    /// Adam (Kingma & Ba, Algorithm 1) on one tensor.
    static func adam(_ p: Parameter, _ o: HealingOptions, correction1: Float, correction2: Float) {
        let step = o.learningRate / correction1
        let root2 = correction2.squareRoot()
        for i in p.values.indices {
            let g = p.gradient[i]
            let m = o.beta1 * p.first[i] + (1 - o.beta1) * g
            let v = o.beta2 * p.second[i] + (1 - o.beta2) * g * g
            p.first[i] = m
            p.second[i] = v
            p.values[i] -= step * m / (v.squareRoot() / root2 + o.epsilon)
        }
    }

    /// The compressed groups with the healed factors, in the source's forms (dense members as they were).
    public func healedGroups() -> [GroupID: ProjectionGroup] { groups { $0.values } }

    /// The source's groups with every factor's values taken from `values` (dense members as they were).
    private func groups(_ values: (Parameter) -> [Float]) -> [GroupID: ProjectionGroup] {
        var out: [GroupID: ProjectionGroup] = [:]
        func left(_ f: Factored) -> LeftFactor {
            LeftFactor(Matrix(rows: configuration.shape(of: f.id.kind).outputs, columns: rights[f.right].rank, storage: values(f.left)))
        }
        func right(_ i: Int) -> RightFactor { rights[i].factor(values(rights[i].parameter)) }
        for (id, group) in source {
            let kinds = id.site.projections
            switch group.layout {
            case .separate(let members):
                let healed: [Linear] = zip(kinds, members).map { kind, member in
                    guard case .lowRank = member, let i = byID[ProjectionID(layer: id.layer, kind: kind)] else { return member }
                    let f = factored[i]
                    return .lowRank(LowRankLinear(left: left(f), right: right(f.right), basis: f.basis))
                }
                out[id] = ProjectionGroup(site: id.site, layout: .separate(healed))
            case .sharedRight:
                let members = kinds.map { factored[byID[ProjectionID(layer: id.layer, kind: $0)]!] }
                let shared = SharedRightGroup(right: right(members[0].right), lefts: members.map(left))
                out[id] = ProjectionGroup(site: id.site, layout: .sharedRight(shared))
            }
        }
        return out
    }
}
