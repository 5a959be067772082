import Foundation
import Testing
import LinearAlgebra
import Llama
import LowRank
import ModelFormats
import TestSupport

/// Every layer form in the engine against its dense reconstruction, the active rank against a
/// truncated checkpoint, block skipping against the factorisation it came from, and grouped
/// decoding against member-by-member products.
@Suite("Layer forms")
struct LayerFormTests {
    static let tiny = TinyLlama(seed: 57)
    static let tokens = [4, 90, 17, 200, 33, 61, 8, 150, 12, 99]

    /// Truncated-SVD factors of `w` at `rank` (Float32).
    static func factors(_ w: Matrix<Float>, rank: Int) throws -> (left: Matrix<Float>, right: Matrix<Float>) {
        let f = try ScaledSVD.factorize(Matrix(rows: w.rows, columns: w.columns, storage: w.storage.map(Double.init)), rank: rank, scaling: .identity)
        return (Matrix(rows: f.left.rows, columns: f.left.columns, storage: f.left.storage.map(Float.init)),
                Matrix(rows: f.right.rows, columns: f.right.columns, storage: f.right.storage.map(Float.init)))
    }

    /// The factors of the stacked members of a site (one shared right factor, one left block each).
    static func sharedFactors(_ ws: [Matrix<Float>], rank: Int) throws -> (lefts: [Matrix<Float>], right: Matrix<Float>) {
        let n = ws[0].columns
        let stacked = Matrix(rows: ws.reduce(0) { $0 + $1.rows }, columns: n, storage: ws.flatMap(\.storage))
        let (left, right) = try factors(stacked, rank: rank)
        var lefts: [Matrix<Float>] = [], row = 0
        for w in ws {
            lefts.append(Matrix(rows: w.rows, columns: rank, storage: Array(left.storage[(row * rank)..<((row + w.rows) * rank)])))
            row += w.rows
        }
        return (lefts, right)
    }

    /// A model with every form: layer 0 q/k/v share a skipped right factor, o is skipped, gate/up
    /// share a plain one, down is plain low-rank on a basis shared with layer 1's down; layer 1
    /// has separate low-rank q, dense k/v, and separate skipped gate.
    static func everyFormModel(precision: WeightPrecision = .float32) throws -> LlamaModel {
        let w = tiny.weights
        var model = LlamaModel(configuration: tiny.configuration, weights: w)
        let qkv = try sharedFactors([w.layers[0].query, w.layers[0].key, w.layers[0].value], rank: 20)
        let skippedQKV = try BlockSkipping.skip(left: Matrix(rows: 128, columns: 20, storage: qkv.lefts.flatMap(\.storage)), right: qkv.right)
        var lefts: [LeftFactor] = [], row = 0
        for l in qkv.lefts {
            lefts.append(LeftFactor(Matrix(rows: l.rows, columns: 20, storage: Array(skippedQKV.left.storage[(row * 20)..<((row + l.rows) * 20)]))))
            row += l.rows
        }
        model.layers[0].attentionInput = ProjectionGroup(site: .attentionInput,
                                                         layout: .sharedRight(SharedRightGroup(right: .skipped(skippedQKV.right), lefts: lefts)))
        let o = try factors(w.layers[0].output, rank: 24)
        let skippedO = try BlockSkipping.skip(left: o.left, right: o.right)
        model.layers[0][.output] = .lowRank(LowRankLinear(left: LeftFactor(skippedO.left), right: .skipped(skippedO.right)))
        let gu = try sharedFactors([w.layers[0].gate, w.layers[0].up], rank: 30)
        model.layers[0].mlpInput = ProjectionGroup(site: .mlpInput, layout: .sharedRight(SharedRightGroup(
            right: .plain(WeightMatrix(gu.right)), lefts: gu.lefts.map { LeftFactor($0) })))
        // Basis Sharing: one right basis for down of layers 0 and 1 (from [W_0; W_1], [128 × 96]),
        // per-layer coefficients: each layer's rows of the left factor.
        let stacked = Matrix(rows: 128, columns: 96, storage: w.layers[0].down.storage + w.layers[1].down.storage)
        let basisFactors = try factors(stacked, rank: 28)
        let basis = RightFactor.plain(WeightMatrix(basisFactors.right))
        let id = SharedBasisID(kind: .down, layers: 0..<2)
        for l in 0..<2 {
            let coefficients = Matrix(rows: 64, columns: 28, storage: Array(basisFactors.left.storage[(l * 64 * 28)..<((l + 1) * 64 * 28)]))
            model.layers[l][.down] = .lowRank(LowRankLinear(left: LeftFactor(coefficients), right: basis, basis: id))
        }
        let q1 = try factors(w.layers[1].query, rank: 16)
        model.layers[1][.query] = .lowRank(LowRankLinear(left: q1.left, right: q1.right))
        let g1 = try factors(w.layers[1].gate, rank: 40)
        let skippedG = try BlockSkipping.skip(left: g1.left, right: g1.right)
        model.layers[1][.gate] = .lowRank(LowRankLinear(left: LeftFactor(skippedG.left), right: .skipped(skippedG.right)))
        let o1 = try factors(w.layers[1].output, rank: 30)
        model.layers[1][.output] = .lowRank(LowRankLinear(left: o1.left, right: o1.right))
        return precision == .float32 ? model : model.converted(to: precision)
    }

    /// `x [t × n] · Wᵀ` in Float64.
    static func reference(_ x: [Float], rows t: Int, _ w: Matrix<Float>) -> [Double] {
        var y = [Double](repeating: 0, count: t * w.rows)
        for r in 0..<t { for i in 0..<w.rows { var s = 0.0; for j in 0..<w.columns { s += Double(x[r * w.columns + j]) * Double(w[i, j]) }; y[r * w.rows + i] = s } }
        return y
    }

    static func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += (Double(x) - y) * (Double(x) - y); den += y * y }
        return (num / den).squareRoot()
    }

    /// Runs `group` on `x [t × inputs]` and returns each member's output (through `given` scratch,
    /// or scratch of its own of `scratchCount` floats).
    static func run(_ group: ProjectionGroup, _ x: [Float], rows t: Int, scratch given: UnsafeMutablePointer<Float>? = nil) -> [[Float]] {
        let members = group.members
        var outputs = members.map { [Float](repeating: .nan, count: t * $0.outputs) }
        let owned = given == nil ? UnsafeMutablePointer<Float>.allocate(capacity: max(1, group.scratchCount(rows: t))) : nil
        defer { owned?.deallocate() }
        let scratch = given ?? owned!
        let pointers = outputs.indices.map { i in UnsafeMutablePointer<Float>.allocate(capacity: outputs[i].count) }
        defer { pointers.forEach { $0.deallocate() } }
        x.withUnsafeBufferPointer { xp in
            group.apply(xp.baseAddress!, rows: t, ldx: members[0].inputs, into: pointers, ldy: members.map(\.outputs), scratch: scratch)
        }
        for i in outputs.indices { outputs[i] = Array(UnsafeBufferPointer(start: pointers[i], count: outputs[i].count)) }
        return outputs
    }

    @Test(arguments: [WeightPrecision.float32, .float16, .bfloat16])
    func everyFormEqualsItsDenseReconstructionForOneRowAndMany(precision: WeightPrecision) throws {
        let model = try Self.everyFormModel(precision: precision)
        var rng = SeededGenerator(seed: 3)
        var checked = 0
        for layer in model.layers {
            for group in layer.groups {
                let n = group.members[0].inputs
                for t in [1, 3, 7, 12] {
                    let x = rng.floats(t * n, scale: 1)
                    for (member, y) in zip(group.members, Self.run(group, x, rows: t)) {
                        let error = Self.relativeError(y, Self.reference(x, rows: t, member.reconstruction))
                        #expect(error < 1e-5, "\(group.site) rows \(t) \(precision): relative error \(error)")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked == 4 * 2 * 7)
    }

    /// q `[320 × n]`, k `[keyRows × n]` and v `[288 × n]`, seeded: a q/k/v group's shapes, scaled down.
    static func attentionMatrices(_ rng: inout SeededGenerator, inputs n: Int, keyRows: Int) -> (Matrix<Float>, Matrix<Float>, Matrix<Float>) {
        (Matrix(rows: 320, columns: n, storage: rng.floats(320 * n, scale: 0.3)),
         Matrix(rows: keyRows, columns: n, storage: rng.floats(keyRows * n, scale: 0.3)),
         Matrix(rows: 288, columns: n, storage: rng.floats(288 * n, scale: 0.3)))
    }

    /// Groups wide enough to run on several workers (outputs ≥ 256; a separate group's members are
    /// one chunk each here, a shared group's rank is cut between the workers, each writing a partial
    /// output summed after the region), for one row, the four-row kernel's sizes and two kernel
    /// calls, against the dense reconstructions.
    @Test func aGroupSplitAcrossTheWorkersEqualsItsDenseReconstructionForAFewRows() throws {
        var rng = SeededGenerator(seed: 31)
        let n = 96
        let (q, k, v) = Self.attentionMatrices(&rng, inputs: n, keyRows: 64)
        let fq = try Self.factors(q, rank: 40), fv = try Self.factors(v, rank: 36)
        let skippedV = try BlockSkipping.skip(left: fv.left, right: fv.right)
        let separate = ProjectionGroup(site: .attentionInput, layout: .separate([
            .lowRank(LowRankLinear(left: fq.left, right: fq.right)), .dense(DenseLinear(k)),
            .lowRank(LowRankLinear(left: LeftFactor(skippedV.left), right: .skipped(skippedV.right)))]))
        let shared = try Self.sharedFactors([q, k, v], rank: 48)
        var sharedGroup = ProjectionGroup(site: .attentionInput, layout: .sharedRight(SharedRightGroup(
            right: .plain(WeightMatrix(shared.right)), lefts: shared.lefts.map { LeftFactor($0) })))
        sharedGroup.setActiveRank(fraction: 0.8)  // the rank shares are cut from the active rank
        #expect(Parallel.workers == 1 || Parallel.partCount(320, minimum: 128) >= 2, "the groups are wide enough to split")
        for group in [separate, sharedGroup, separate.converted(to: .float16)] {
            for t in [1, 2, 4, 7] {
                let x = rng.floats(t * n, scale: 1)
                for (member, y) in zip(group.members, Self.run(group, x, rows: t)) {
                    let error = Self.relativeError(y, Self.reference(x, rows: t, member.reconstruction))
                    #expect(error < 1e-5, "rows \(t): relative error \(error)")
                }
            }
        }
    }

    /// Low-rank members of several chunks each (`GroupChunks`: a chunk's ranks write the output or
    /// a partial output, summed in chunk order after the region) beside a dense member of several
    /// row chunks, and a group sharing one right factor of several chunks, against the dense
    /// reconstructions; and, since the workers claim chunks as they finish, the same bits on every
    /// call whichever worker ran which chunk.
    @Test func aGroupOfManyChunksEqualsItsDenseReconstructionAndRepeatsBitForBit() throws {
        var rng = SeededGenerator(seed: 37)
        let n = 256
        let (q, k, v) = Self.attentionMatrices(&rng, inputs: n, keyRows: 192)
        let fq = try Self.factors(q, rank: 200), fv = try Self.factors(v, rank: 160)
        let group = ProjectionGroup(site: .attentionInput, layout: .separate([
            .lowRank(LowRankLinear(left: fq.left, right: fq.right)), .dense(DenseLinear(k)),
            .lowRank(LowRankLinear(left: fv.left, right: fv.right))]))
        // q: 200 ranks of (256 + 320) · 4 bytes, 460 KB: 4 chunks of 64 ranks (the last of 8).
        let chunks = GroupChunks(members: [GroupChunks.Member(units: 200, unitBytes: 4 * (256 + 320), lowRank: true)])
        #expect(chunks.slots == [4])
        // Shared by q/k/v: 200 ranks of (256 + 320 + 192 + 288) · 4 bytes, 845 KB: also 4 chunks.
        let shared = try Self.sharedFactors([q, k, v], rank: 200)
        let sharedGroup = ProjectionGroup(site: .attentionInput, layout: .sharedRight(SharedRightGroup(
            right: .plain(WeightMatrix(shared.right)), lefts: shared.lefts.map { LeftFactor($0) })))
        #expect(GroupChunks(members: [GroupChunks.Member(units: 200, unitBytes: 4 * 1056, lowRank: true)]).slots == [4])
        for g in [group, sharedGroup] {
            for t in [1, 3] {
                let x = rng.floats(t * n, scale: 1)
                let first = Self.run(g, x, rows: t)
                for (member, y) in zip(g.members, first) {
                    let error = Self.relativeError(y, Self.reference(x, rows: t, member.reconstruction))
                    #expect(error < 1e-5, "rows \(t): relative error \(error)")
                }
                for _ in 0..<50 { #expect(Self.run(g, x, rows: t) == first, "rows \(t)") }
            }
        }
    }

    /// A decode region places each low-rank member's z, gathered inputs and partial output rows on
    /// cache lines of their own (`ProjectionGroup.lines`), so ranks, gathered widths and outputs that
    /// are not multiples of 16 floats need the padding `scratchCount` adds: a region writes nothing
    /// past it, and its products stay exact. q has 1000 outputs at rank 340, in Float32 the most
    /// chunks a member gets (8), so with dense k and v every partial output `scratchCount` sets aside
    /// is used and the padding is all that separates the region from the guard; then the same q
    /// beside a skipped v of 150 at rank 117 gathering 483 inputs, and a shared group at rank 203.
    @Test func aDecodeRegionWritesNothingPastTheScratchItsGroupAsksFor() throws {
        var rng = SeededGenerator(seed: 41)
        let n = 600
        let q = Matrix(rows: 1000, columns: n, storage: rng.floats(1000 * n, scale: 0.3))
        let k = Matrix(rows: 100, columns: n, storage: rng.floats(100 * n, scale: 0.3))
        let v = Matrix(rows: 150, columns: n, storage: rng.floats(150 * n, scale: 0.3))
        let fq = try Self.factors(q, rank: 340), fv = try Self.factors(v, rank: 117)
        let skippedV = try BlockSkipping.skip(left: fv.left, right: fv.right)
        let separate = ProjectionGroup(site: .attentionInput, layout: .separate([
            .lowRank(LowRankLinear(left: fq.left, right: fq.right)), .dense(DenseLinear(k)),
            .lowRank(LowRankLinear(left: LeftFactor(skippedV.left), right: .skipped(skippedV.right)))]))
        #expect(GroupChunks(members: [GroupChunks.Member(units: 340, unitBytes: 4 * (600 + 1000), lowRank: true)]).slots
                == [GroupChunks.maximumLowRankChunks])
        let tight = ProjectionGroup(site: .attentionInput, layout: .separate([
            .lowRank(LowRankLinear(left: fq.left, right: fq.right)), .dense(DenseLinear(k)), .dense(DenseLinear(v))]))
        let shared = try Self.sharedFactors([q, k, v], rank: 203)
        let sharedGroup = ProjectionGroup(site: .attentionInput, layout: .sharedRight(SharedRightGroup(
            right: .plain(WeightMatrix(shared.right)), lefts: shared.lefts.map { LeftFactor($0) })))
        let guardCount = 4096, sentinel: Float = 12345
        for group in [tight, separate, sharedGroup, separate.converted(to: .float16)] {
            for t in [1, 3, 4] {
                let count = group.scratchCount(rows: t)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: count + guardCount)
                defer { scratch.deallocate() }
                (scratch + count).initialize(repeating: sentinel, count: guardCount)
                let x = rng.floats(t * n, scale: 1)
                let outputs = Self.run(group, x, rows: t, scratch: scratch)
                let written = (0..<guardCount).filter { scratch[count + $0] != sentinel }.count
                #expect(written == 0, "rows \(t): \(written) floats written past the \(count) of scratch")
                for (member, y) in zip(group.members, outputs) {
                    let error = Self.relativeError(y, Self.reference(x, rows: t, member.reconstruction))
                    #expect(error < 1e-5, "rows \(t): relative error \(error)")
                }
            }
        }
    }

    /// Many rows (prefill) through a group of dense members: one region over the members' output
    /// columns laid end to end, each worker's share cutting across member boundaries.
    @Test(arguments: [WeightPrecision.float32, .float16, .bfloat16])
    func aDenseGroupCutAcrossItsMembersColumnsEqualsEachMembersProductForManyRows(precision: WeightPrecision) throws {
        var rng = SeededGenerator(seed: 37)
        let n = 72
        let weights = [320, 64, 288].map { Matrix(rows: $0, columns: n, storage: rng.floats($0 * n, scale: 0.3)) }
        let group = ProjectionGroup(site: .attentionInput, layout: .separate(weights.map { .dense(DenseLinear($0, precision: precision)) }))
        #expect(Parallel.workers == 1 || Parallel.partCount(320 + 64 + 288, minimum: 128) >= 2, "the group is wide enough to split")
        for t in [WeightMatrix.smallBatch + 1, 40] {
            let x = rng.floats(t * n, scale: 1)
            for (member, y) in zip(group.members, Self.run(group, x, rows: t)) {
                let error = Self.relativeError(y, Self.reference(x, rows: t, member.reconstruction))
                #expect(error < 1e-5, "rows \(t) \(precision): relative error \(error)")
            }
        }
    }

    @Test func theWholeModelInEveryFormMatchesTheDenseModelOfItsReconstructions() throws {
        let model = try Self.everyFormModel()
        var dense = Self.tiny.weights
        for l in 0..<2 { for kind in ProjectionKind.allCases { dense[ProjectionID(layer: l, kind: kind)] = model[ProjectionID(layer: l, kind: kind)].reconstruction } }
        let reference = LlamaModel(configuration: Self.tiny.configuration, weights: dense)
        let positions = Set(Self.tokens.indices)
        let a = model.score(Self.tokens, keepLogitsAt: positions), b = reference.score(Self.tokens, keepLogitsAt: positions)
        for p in Self.tokens.indices { for (x, y) in zip(a.logits[p]!, b.logits[p]!) { #expect(abs(x - y) < 1e-4) } }
        let greedy = Generator(model: model, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 8, sampling: .greedy, stopTokens: [])
        let expected = Generator(model: reference, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 8, sampling: .greedy, stopTokens: [])
        #expect(greedy.tokens == expected.tokens)
    }

    @Test func skippingIsAnExactRewriteOfTheFactorisation() throws {
        var rng = SeededGenerator(seed: 8)
        for selection in BlockSkipping.Selection.allCases {
            let w = Matrix(rows: 48, columns: 40, storage: rng.floats(48 * 40, scale: 0.2))
            let (left, right) = try Self.factors(w, rank: 12)
            let skipped = try BlockSkipping.skip(left: left, right: right, selection: selection)
            let before = LowRankLinear(left: left, right: right), after = LowRankLinear(left: LeftFactor(skipped.left), right: .skipped(skipped.right))
            #expect(after.parameterCount == 12 * (48 + 40 - 12))
            #expect(skipped.right.selected.count == 12 && Set(skipped.right.selected + skipped.right.rest) == Set(0..<40))
            for t in [1, 5] {
                let x = rng.floats(t * 40, scale: 1)
                let y = Self.run(ProjectionGroup(site: .attentionOutput, layout: .separate([.lowRank(after)])), x, rows: t)[0]
                let yBefore = Self.run(ProjectionGroup(site: .attentionOutput, layout: .separate([.lowRank(before)])), x, rows: t)[0]
                let error = Self.relativeError(y, yBefore.map(Double.init))
                #expect(error < 1e-5, "\(selection) rows \(t): \(error)")
            }
        }
    }

    @Test func pivotingKeepsTheRemainderSmallerThanTheLeadingColumns() throws {
        // A right factor whose leading r columns are nearly dependent: the leading block's inverse
        // blows A′ up; pivoting picks well-conditioned columns.
        var rng = SeededGenerator(seed: 21)
        var right = Matrix(rows: 4, columns: 12, storage: rng.floats(48, scale: 1))
        for i in 0..<4 { right[i, 1] = right[i, 0] + 1e-4 * Float(i) }
        let left = Matrix(rows: 6, columns: 4, storage: rng.floats(24, scale: 1))
        let pivoted = try BlockSkipping.skip(left: left, right: right, selection: .pivoted)
        let leading = try BlockSkipping.skip(left: left, right: right, selection: .leading)
        #expect(pivoted.maxAbsRemainder < 100)
        #expect(leading.maxAbsRemainder > 100 * pivoted.maxAbsRemainder)
    }

    /// The active rank reads a prefix of each factor in place; the same logits come from a model
    /// built from copies of those prefixes (rows 1 and many, bit for bit).
    @Test(arguments: [WeightPrecision.float32, .float16])
    func anActiveRankGivesTheLogitsOfACheckpointTruncatedToIt(precision: WeightPrecision) throws {
        let w = Self.tiny.weights
        var full = LlamaModel(configuration: Self.tiny.configuration, weights: w)
        var truncated = full
        let fraction = 0.55
        for l in 0..<2 {
            for kind in ProjectionKind.allCases where kind.inputSite != .mlpInput {
                let (left, right) = try Self.factors(w[ProjectionID(layer: l, kind: kind)], rank: 20)
                full[ProjectionID(layer: l, kind: kind)] = .lowRank(LowRankLinear(left: left, right: right))
                let r = Int((fraction * 20).rounded(.up))
                let cut = LowRankLinear(left: WeightMatrix(left).prefix(rows: left.rows, columns: r), right: WeightMatrix(right).prefix(rows: r, columns: right.columns))
                truncated[ProjectionID(layer: l, kind: kind)] = .lowRank(cut)
            }
            let gu = try Self.sharedFactors([w.layers[l].gate, w.layers[l].up], rank: 30)
            full.layers[l].mlpInput = ProjectionGroup(site: .mlpInput, layout: .sharedRight(SharedRightGroup(
                right: .plain(WeightMatrix(gu.right)), lefts: gu.lefts.map { LeftFactor($0) })))
            let r = Int((fraction * 30).rounded(.up))
            truncated.layers[l].mlpInput = ProjectionGroup(site: .mlpInput, layout: .sharedRight(SharedRightGroup(
                right: .plain(WeightMatrix(WeightMatrix(gu.right).prefix(rows: r, columns: 64))),
                lefts: gu.lefts.map { LeftFactor(WeightMatrix($0).prefix(rows: $0.rows, columns: r)) })))
        }
        full = full.converted(to: precision)
        truncated = truncated.converted(to: precision)
        let fullBytes = full.weightBytes
        full.setActiveRank(fraction: fraction)
        #expect(full.weightBytes == truncated.weightBytes && full.weightBytes < fullBytes)
        let positions = Set(Self.tokens.indices)
        #expect(full.score(Self.tokens, keepLogitsAt: positions).logits == truncated.score(Self.tokens, keepLogitsAt: positions).logits)
        let a = Generator(model: full, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 8, sampling: .greedy, stopTokens: [])
        let b = Generator(model: truncated, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 8, sampling: .greedy, stopTokens: [])
        #expect(a.tokens == b.tokens)
        // One row, bit for bit: the decode kernels read the prefix with the stored row stride.
        var rng = SeededGenerator(seed: 2)
        for l in 0..<2 {
            for site in InputSite.allCases {
                let x = rng.floats(full.layers[l][site].members[0].inputs, scale: 1)
                #expect(Self.run(full.layers[l][site], x, rows: 1) == Self.run(truncated.layers[l][site], x, rows: 1), "layer \(l) \(site)")
            }
        }
        full.setActiveRank(fraction: 1)
        #expect(full.weightBytes == fullBytes)
    }

    /// Decoding one row fuses a group into two parallel regions; it must give exactly what the
    /// members give one by one.
    @Test func groupedDecodingOfACompressedModelEqualsUngrouped() throws {
        let model = try Self.everyFormModel()
        var rng = SeededGenerator(seed: 9)
        for layer in model.layers {
            for group in layer.groups {
                let x = rng.floats(group.members[0].inputs, scale: 1)
                let grouped = Self.run(group, x, rows: 1)
                for (i, member) in group.members.enumerated() {
                    let alone = Self.run(ProjectionGroup(site: .attentionOutput, layout: .separate([member])), x, rows: 1)[0]
                    #expect(alone == grouped[i], "\(group.site) member \(i)")
                }
            }
        }
    }

    /// What every command runs: `LlamaModel(moving:)` copies each Float32 weight onto a cache line,
    /// keeps buffers the forms share as one, releases the loaded weights, and changes no logit.
    @Test(arguments: [WeightPrecision.float32, .float16])
    func aModelBuiltByMovingTheLoadedWeightsHasThemOnCacheLinesAndTheSameLogits(precision: WeightPrecision) throws {
        let dir = TemporaryDirectory()
        try Checkpoint.write(try Self.everyFormModel(), tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        var loaded = try ModelLoader.load(dir.file("ck"))
        let reference = LlamaModel(configuration: loaded.configuration, weights: loaded.weights, precision: precision)
        let moved = LlamaModel(configuration: loaded.configuration, moving: &loaded.weights, precision: precision)
        #expect(moved.layers == reference.layers && moved.outputHead == reference.outputHead && moved.tokenEmbedding == reference.tokenEmbedding)
        #expect(loaded.weights.layers.isEmpty && loaded.weights.compressedGroups.isEmpty && loaded.weights.tokenEmbedding.storage.isEmpty)
        #expect(loaded.weights.finalNorm == moved.finalNorm)
        // 11 matrices per layer (see everyFormModel), every one on a cache line.
        var matrices = 0, aligned = 0
        for layer in moved.layers {
            _ = layer.mapWeights { w in
                matrices += 1
                if w.isCacheLineAligned { aligned += 1 }
                return w
            }
        }
        #expect(matrices == 22 && aligned == 22)
        guard case .dense(let head) = moved.outputHead, case .plain(let basis0) = moved.layers[0][.down].lowRank?.right,
              case .plain(let basis1) = moved.layers[1][.down].lowRank?.right else {
            Issue.record("the head is dense and both down projections are low-rank on a plain basis")
            return
        }
        #expect(head.weight.isCacheLineAligned)
        #expect(head.weight.sharesStorage(with: moved.tokenEmbedding) == (precision == .float32), "the tied Float32 head is the embedding")
        #expect(basis0.sharesStorage(with: basis1), "the shared basis stays one buffer")
        let positions = Set(Self.tokens.indices)
        #expect(moved.score(Self.tokens, keepLogitsAt: positions).logits == reference.score(Self.tokens, keepLogitsAt: positions).logits)
        let a = Generator(model: moved, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
        let b = Generator(model: reference, capacity: 32, prefillRows: 4).generate(prompt: Self.tokens, maxTokens: 6, sampling: .greedy, stopTokens: [])
        #expect(a.tokens == b.tokens)
    }

    @Test func everyFormSavesAndReloadsBitExactlyWithItsParameterCount() throws {
        let model = try Self.everyFormModel()
        let dir = TemporaryDirectory()
        try Checkpoint.write(model, tokenizer: try Self.tiny.tokenizer(), chatTemplate: nil, to: dir.file("ck"))
        let loaded = try ModelLoader.load(dir.file("ck"))
        let reloaded = LlamaModel(configuration: loaded.configuration, weights: loaded.weights)
        #expect(reloaded.layers == model.layers)
        let positions = Set(Self.tokens.indices)
        #expect(reloaded.score(Self.tokens, keepLogitsAt: positions).logits == model.score(Self.tokens, keepLogitsAt: positions).logits)
        // The parameters the forms store equal the elements of the tensors in model.safetensors
        // (less the embedding, the norms and the skipped layers' channel selections).
        let file = try SafetensorsFile(path: dir.file("ck/model.safetensors"))
        var stored = 0
        for info in file.tensors where !info.name.hasSuffix("_selection") && !info.name.contains("norm") && !info.name.contains("embed_tokens") {
            stored += info.elementCount
        }
        let counts = ParameterCount(configuration: loaded.configuration, compressedGroups: loaded.weights.compressedGroups)
        #expect(counts.projectionTotal == stored)
        // Basis Sharing stores the basis once: 28 × 96, not twice.
        #expect(file.tensors.map(\.name).filter { $0.hasPrefix("model.shared_bases.down_proj") } == ["model.shared_bases.down_proj.layers_0_1.right"])
    }
}
