import Testing
import LinearAlgebra
import Llama
import LowRank
import TestSupport

@Suite("Layer-by-layer calibration and whitening variants")
struct LayerwiseCalibrationTests {
    static let tiny = TinyLlama(seed: 17, tiedEmbeddings: false)
    static let corpus = [3, 77, 140, 9, 201, 45, 12, 8, 99, 250, 31, 6, 64, 128, 7, 19, 220, 5, 43, 88, 2, 150, 17, 61]

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
        let corpus = (0..<600).map { ($0 * 37 + 11) % 265 }
        let calibration = try CalibrationSet(tokens: corpus, count: 16, length: 24, seed: 1)
        let (_, report) = try Compressor.compress(model, weights: Self.tiny.weights,
                                                  recipe: CompressionRecipe(method: .svdLLM, removedFraction: 0.2, whitening: .eigen),
                                                  calibration: calibration)
        #expect(report.projections.allSatisfy { $0.clampedEigenvalues == 0 && $0.rank != nil },
                "\(report.projections.map { "\($0.layer) \($0.projection) \($0.clampedEigenvalues ?? -1)" })")
    }
}
