import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

@Suite("Layer-by-layer calibration and whitening variants")
struct LayerwiseCalibrationTests {
    static let tiny = TinyLlama(seed: 17, tiedEmbeddings: false)
    static let corpus = [3, 77, 140, 9, 201, 45, 12, 8, 99, 250, 31, 6, 64, 128, 7, 19, 220, 5, 43, 88, 2, 150, 17, 61]

    /// 16 windows of 24 tokens (384 in all) from a corpus that cycles through all 265 tokens.
    static func everyTokenCalibration() throws -> CalibrationSet {
        try CalibrationSet(tokens: (0..<600).map { ($0 * 37 + 11) % 265 }, count: 16, length: 24, seed: 1)
    }

    @Test func layerByLayerStatisticsEqualThoseOfAWholeForwardPass() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let calibration = try CalibrationSet(tokens: Self.corpus, starts: [0, 7, 13], length: 10)
        let whole = ActivationStatistics(gram: true, absoluteMean: true)
        for window in calibration.windows { _ = model.score(window, observer: whole) }
        let layerwise = LayerwiseCalibration(model: model, calibration: calibration)
        for layer in 0..<model.configuration.layerCount {
            let one = ActivationStatistics(gram: true, absoluteMean: true)
            layerwise.run(model, observer: one, advance: true)
            #expect(Set(one.gram.keys) == Set(InputSite.allCases.map { ActivationStatistics.Key(layer: layer, site: $0) }))
            for site in InputSite.allCases {
                let key = ActivationStatistics.Key(layer: layer, site: site)
                let a = try #require(one.symmetricGram(key)), b = try #require(whole.symmetricGram(key))
                // Same kernels on the same rows: equal up to the last bit.
                #expect(a == b, "layer \(layer) \(site)")
                #expect(one.meanAbsolute(key) == whole.meanAbsolute(key))
            }
        }
    }

    @Test func calibratingOnTheCompressedPrefixChangesOnlyTheLaterLayers() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let calibration = try CalibrationSet(tokens: Self.corpus, starts: [0, 7, 13], length: 10)
        let (dense, _) = try Compressor.compress(model, weights: Self.tiny.weights, recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.3),
                                                 calibration: calibration)
        let (sequential, report) = try Compressor.compress(model, weights: Self.tiny.weights,
                                                           recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.3, calibrateOn: .compressed),
                                                           calibration: calibration)
        #expect(sequential.layers[0] == dense.layers[0])
        #expect(sequential.layers[1][.query] != dense.layers[1][.query])
        #expect(report.calibrationTokens == 30)
        // Two windows' streams plus one layer's statistics at most: 4 Gram matrices of 64, 64, 64, 96.
        #expect(report.peakCalibrationBytes < 30 * 64 * 4 + (3 * 64 * 64 + 96 * 96) * 8 + 30 * 96 * 8 + 4 * 96 * 8 + 1)
    }

    /// Both whitenings make W·S with the same singular values (S_eigen = S_cholesky·Q, Q orthogonal),
    /// so on a positive definite Gram the truncated products agree.
    @Test func eigenWhiteningGivesTheCholeskyProductOnAPositiveDefiniteGram() throws {
        var random = SeededGenerator(seed: 5)
        let n = 24, m = 16, tokens = 80
        let x = (0..<(tokens * n)).map { _ in random.uniform(1) }
        var gram = Matrix<Double>.zeros(rows: n, columns: n)
        var scratch: [Double] = []
        x.withUnsafeBufferPointer { Decompositions.accumulateGram(&gram, $0.baseAddress!, rows: tokens, columns: n, scratch: &scratch) }
        Decompositions.symmetrize(&gram)
        let w = Matrix(rows: m, columns: n, storage: (0..<(m * n)).map { _ in Double(random.uniform(1)) })
        let cholesky = try Whitening.cholesky(gram: gram)
        let eigen = try Whitening.eigen(gram: gram)
        #expect(cholesky.shift == 0 && eigen.clamped == 0)
        let a = try ScaledSVD.factorize(w, rank: 6, scaling: .cholesky(cholesky.s))
        let b = try ScaledSVD.factorize(w, rank: 6, scaling: .eigen(vectors: eigen.vectors, roots: eigen.roots))
        for (s, t) in zip(a.singularValues, b.singularValues) { #expect(abs(s - t) <= 1e-10 * a.singularValues[0]) }
        let pa = a.product, pb = b.product
        let scale = pa.storage.map(abs).max()!
        #expect(zip(pa.storage, pb.storage).allSatisfy { abs($0 - $1) <= 1e-9 * scale })
    }

    @Test func eigenWhiteningCountsTheEigenvaluesItRaisesOnASingularGram() throws {
        // 5 tokens of 12 channels: XᵀX has rank 5, so 7 eigenvalues are (numerically) zero.
        var random = SeededGenerator(seed: 8)
        let n = 12, tokens = 5
        let x = (0..<(tokens * n)).map { _ in random.uniform(1) }
        var gram = Matrix<Double>.zeros(rows: n, columns: n)
        var scratch: [Double] = []
        x.withUnsafeBufferPointer { Decompositions.accumulateGram(&gram, $0.baseAddress!, rows: tokens, columns: n, scratch: &scratch) }
        Decompositions.symmetrize(&gram)
        let eigen = try Whitening.eigen(gram: gram)
        #expect(eigen.clamped == 7)
        #expect(eigen.roots.allSatisfy { $0.isFinite && $0 > 0 })
        let w = Matrix(rows: 4, columns: n, storage: (0..<(4 * n)).map { _ in Double(random.uniform(1)) })
        let f = try ScaledSVD.factorize(w, rank: 2, scaling: .eigen(vectors: eigen.vectors, roots: eigen.roots))
        #expect(f.right.storage.allSatisfy(\.isFinite) && f.left.storage.allSatisfy(\.isFinite))
    }

    @Test func eigenWhiteningCompressesTheTinyModelAndReportsNoClamping() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        // Layer 0's q/k/v input is the normed embedding of the tokens seen: with fewer than 64 distinct
        // tokens its Gram would be singular (and clamped). These windows see all 265.
        let calibration = try Self.everyTokenCalibration()
        let (_, report) = try Compressor.compress(model, weights: Self.tiny.weights,
                                                  recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.2, whitening: .eigen),
                                                  calibration: calibration)
        #expect(report.projections.allSatisfy { $0.clampedEigenvalues == 0 && $0.rank != nil },
                "\(report.projections.map { "\($0.layer) \($0.projection) \($0.clampedEigenvalues ?? -1)" })")
    }

    /// Compensation's closed form against its plain twin: W* = W·Cᵀ·Ĝ⁻¹ by an LU solve, then the
    /// ordinary whitened truncation of W* in X̂'s whitening. And the property it exists for: against
    /// the dense outputs X·Wᵀ, its factors do better than whitening X̂ alone (SVD-LLM's sequential
    /// recipe), which truncates W itself.
    @Test(arguments: [WhiteningKind.cholesky, .eigen])
    func compensatedFactorsAreTheWhitenedTruncationOfTheLeastSquaresFitToTheDenseOutputs(whitening: WhiteningKind) throws {
        var random = SeededGenerator(seed: 23)
        let n = 20, m = 14, tokens = 90, rank = 5
        let x = (0..<(tokens * n)).map { _ in random.uniform(1) }  // dense inputs X [tokens × n]
        let drift = (0..<(n * n)).map { _ in random.uniform(0.3) }  // X̂ = X·(I + D) + noise: a drifted prefix
        var xHat = [Float](repeating: 0, count: tokens * n)
        for t in 0..<tokens {
            for j in 0..<n {
                var v = x[t * n + j] + random.uniform(0.05)
                for k in 0..<n { v += x[t * n + k] * drift[k * n + j] }
                xHat[t * n + j] = v
            }
        }
        let w = Matrix(rows: m, columns: n, storage: (0..<(m * n)).map { _ in Double(random.uniform(1)) })
        var gram = Matrix<Double>.zeros(rows: n, columns: n), cross = Matrix<Double>.zeros(rows: n, columns: n)
        var scratch: [Double] = []
        xHat.withUnsafeBufferPointer { Decompositions.accumulateGram(&gram, $0.baseAddress!, rows: tokens, columns: n, scratch: &scratch) }
        Decompositions.symmetrize(&gram)
        xHat.withUnsafeBufferPointer { ap in
            x.withUnsafeBufferPointer { Decompositions.accumulateCross(&cross, ap.baseAddress!, $0.baseAddress!, rows: tokens, columns: n, scratch: &scratch) }
        }
        let inner: InputScaling
        switch whitening {
        case .cholesky: inner = .cholesky(try Whitening.cholesky(gram: gram).s)
        case .eigen:
            let e = try Whitening.eigen(gram: gram)
            inner = .eigen(vectors: e.vectors, roots: e.roots)
        }
        let compensated = try ScaledSVD.factorize(w, rank: rank, scaling: .compensating(inner, cross: cross))

        // Twin: Ĝ·W*ᵀ = C·Wᵀ, then plain Cholesky whitening of W*.
        let target = try Decompositions.solve(gram, Decompositions.multiply(cross, w, transposeB: true)).transposed()
        let twin = try ScaledSVD.factorize(target, rank: rank, scaling: .cholesky(try Whitening.cholesky(gram: gram).s))
        let p = compensated.product, q = twin.product
        let scale = q.storage.map(abs).max()!
        let worst = zip(p.storage, q.storage).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-8 * scale, "\(whitening): \(worst) against \(scale)")

        /// ‖X·Wᵀ − X̂·W′ᵀ‖_F.
        func errorAgainstDense(_ f: Factorization) -> Double {
            let wPrime = f.product
            var sum = 0.0
            for t in 0..<tokens {
                for i in 0..<m {
                    var d = 0.0
                    for j in 0..<n { d += Double(x[t * n + j]) * w[i, j] - Double(xHat[t * n + j]) * wPrime[i, j] }
                    sum += d * d
                }
            }
            return sum.squareRoot()
        }
        let sequential = try ScaledSVD.factorize(w, rank: rank, scaling: inner)
        #expect(errorAgainstDense(compensated) < 0.9 * errorAgainstDense(sequential),
                "\(errorAgainstDense(compensated)) against \(errorAgainstDense(sequential))")
    }

    /// Layer 0's q/k/v see the same inputs on both streams (nothing before them is compressed), so
    /// C = Ĝ and, without a ridge, compensation reduces to the sequential recipe there. Every later
    /// unit differs: o's input already comes through the compressed q/k/v, and so on.
    @Test func compensationWithoutARidgeEqualsTheSequentialRecipeWhereNothingBeforeIsCompressed() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        // More tokens (384) than any input has channels (96), so every Gram matrix is positive
        // definite: with a singular one, the Cholesky shift alone makes C·S⁻ᵀ differ from S.
        let calibration = try Self.everyTokenCalibration()
        let (sequential, _) = try Compressor.compress(model, weights: Self.tiny.weights,
                                                      recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.3, calibrateOn: .compressed),
                                                      calibration: calibration)
        let (compensated, report) = try Compressor.compress(model, weights: Self.tiny.weights,
                                                            recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.3, calibrateOn: .compensated,
                                                                                      compensationRidge: 0),
                                                            calibration: calibration)
        func product(_ m: LlamaModel, _ layer: Int, _ kind: ProjectionKind) throws -> [Double] {
            try #require(m.layers[layer][kind].lowRank).reconstruction.storage.map(Double.init)
        }
        for layer in 0..<2 {
            for kind in ProjectionKind.allCases {
                let a = try product(sequential, layer, kind), b = try product(compensated, layer, kind)
                let scale = a.map(abs).max()!, worst = zip(a, b).map { abs($0 - $1) }.max()!
                if layer == 0 && [.query, .key, .value].contains(kind) {
                    #expect(worst <= 1e-4 * scale, "layer 0 \(kind): \(worst) against \(scale)")
                } else {
                    #expect(worst > 1e-3 * scale, "layer \(layer) \(kind) is fitted to the dense outputs")
                }
            }
        }
        #expect(report.calibrationTokens == 384)
        #expect(report.projections.map(\.projection) == (0..<2).flatMap { _ in ProjectionKind.allCases.map(\.shortName) },
                "the report lists each layer's projections in order, as the one-stage recipes do")
        #expect(report.projections.allSatisfy { $0.rank != nil && $0.whiteningShift == 0 })
    }

    @Test func compensatedCalibrationIsRefusedForMethodsWithoutAWhitening() throws {
        let model = LlamaModel(configuration: Self.tiny.configuration, weights: Self.tiny.weights)
        let calibration = try CalibrationSet(tokens: Self.corpus, starts: [0, 7, 13], length: 10)
        #expect(throws: CompressionError.compensationNeedsWhitening(.asvd)) {
            try Compressor.compress(model, weights: Self.tiny.weights, recipe: CompressionRecipe(method: .asvd, removedFraction: 0.3, calibrateOn: .compensated),
                                    calibration: calibration)
        }
    }

    /// What compensation is for: on its calibration windows, the compressed model's last hidden
    /// states stay closer to the dense model's than with SVD-LLM's sequential recipe.
    @Test func onItsCalibrationWindowsTheCompensatedModelTracksTheDenseOneCloserThanTheSequentialOne() throws {
        let tiny = TinyLlama(seed: 31, tiedEmbeddings: false, layerCount: 4)
        let model = LlamaModel(configuration: tiny.configuration, weights: tiny.weights)
        let calibration = try Self.everyTokenCalibration()
        final class LastLayer: ForwardObserver {
            let layer: Int
            var rows: [Float] = []
            init(layer: Int) { self.layer = layer }
            func wants(_ point: ObservationPoint) -> Bool { point == .layerOutput(layer: layer) }
            func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
                self.rows += UnsafeBufferPointer(start: values, count: rows * columns)
            }
        }
        func hidden(_ m: LlamaModel) -> [Float] {
            let observer = LastLayer(layer: m.configuration.layerCount - 1)
            for window in calibration.windows { _ = m.score(window, observer: observer) }
            return observer.rows
        }
        let dense = hidden(model)
        var errors: [CalibrationSource: Double] = [:]
        for source in [CalibrationSource.compressed, .compensated] {
            let (compressed, _) = try Compressor.compress(model, weights: tiny.weights,
                                                          recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.5, calibrateOn: source,
                                                                                    compensationRidge: 0),
                                                          calibration: calibration)
            errors[source] = zip(hidden(compressed), dense).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        }
        let norm = dense.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        #expect(errors[.compensated]! < errors[.compressed]!, "relative errors: compensated \(errors[.compensated]! / norm), sequential \(errors[.compressed]! / norm)")
    }
}
