import Foundation
import LinearAlgebra
import Llama

/// The factorisation methods of this issue; allocation and sharing methods come later.
public enum CompressionMethod: String, CaseIterable, Codable, Sendable {
    /// Plain truncated SVD (no calibration data needed).
    case svd
    /// ASVD: activation-magnitude column scaling, s_j = mean|x_j|^α.
    case asvd
    /// SVD-LLM (W): truncation-aware Cholesky whitening, no parameter update.
    case svdLLM = "svd-llm"

    public var needsGram: Bool { self == .svdLLM }
    public var needsAbsoluteMean: Bool { self == .asvd }
    public var needsCalibration: Bool { needsGram || needsAbsoluteMean }
}

/// How SVD-LLM turns a Gram matrix into a whitening (both give the same singular values of W·S;
/// they differ in numerics and in what happens when the Gram is singular).
public enum WhiteningKind: String, CaseIterable, Codable, Sendable {
    /// SVD-LLM: Cholesky factor, with a reported eigenvalue shift if not positive definite.
    case cholesky
    /// SVD-LLM V2: eigen-decomposition square root, tiny eigenvalues clamped and counted.
    case eigen
}

/// Everything that determines a compression run (written beside the result).
public struct CompressionRecipe: Codable, Sendable, Equatable {
    public var method: CompressionMethod
    /// Fraction of the q/k/v/o/gate/up/down parameters removed (the papers' "compression ratio").
    public var removedFraction: Double
    public var asvdAlpha: Double
    public var calibrationCorpus: String
    public var calibrationSamples: Int
    public var calibrationLength: Int
    public var seed: UInt64
    public var calibrationStarts: [Int]?
    /// SVD-LLM whitening (ignored by svd and asvd).
    public var whitening: WhiteningKind
    /// Original activations (default, as the references) or the compressed prefix's.
    public var calibrateOn: CalibrationSource

    public init(method: CompressionMethod, removedFraction: Double, asvdAlpha: Double = 0.5, calibrationCorpus: String = "c4",
                calibrationSamples: Int = 64, calibrationLength: Int = 512, seed: UInt64 = 3, calibrationStarts: [Int]? = nil,
                whitening: WhiteningKind = .cholesky, calibrateOn: CalibrationSource = .dense) {
        self.whitening = whitening
        self.calibrateOn = calibrateOn
        self.method = method
        self.removedFraction = removedFraction
        self.asvdAlpha = asvdAlpha
        self.calibrationCorpus = calibrationCorpus
        self.calibrationSamples = calibrationSamples
        self.calibrationLength = calibrationLength
        self.seed = seed
        self.calibrationStarts = calibrationStarts
    }

    public var keptFraction: Double { 1 - removedFraction }
}

/// What happened to one projection.
public struct ProjectionReport: Codable, Sendable {
    public var layer: Int
    public var projection: String
    public var outputs: Int
    public var inputs: Int
    /// nil when the projection stayed dense.
    public var rank: Int?
    public var parametersBefore: Int
    public var parametersAfter: Int
    /// ‖dropped σ‖/‖σ‖ of the scaled weight (for SVD-LLM: relative error of the layer output on the
    /// calibration data).
    public var relativeTruncationError: Double?
    /// Eigenvalue shift added to a Gram matrix that was not positive definite (0: none).
    public var whiteningShift: Double?
    /// Eigen whitening: how many eigenvalues of the Gram were raised to the floor (0: none).
    public var clampedEigenvalues: Int?
    public var note: String?
}

public struct CompressionReport: Codable, Sendable {
    public var projections: [ProjectionReport]
    public var projectionParametersBefore: Int
    public var projectionParametersAfter: Int
    public var modelParametersBefore: Int
    public var modelParametersAfter: Int
    public var factorisationSeconds: Double
    /// Forward passes and statistics (0 for plain SVD).
    public var calibrationSeconds: Double
    public var calibrationTokens: Int
    /// The largest amount of statistics alive at once (one layer's Gram matrices and sums) plus
    /// the calibration windows' residual streams.
    public var peakCalibrationBytes: Int

    /// Fraction of projection parameters removed (what `--remove` asks for).
    public var removedProjectionFraction: Double { 1 - Double(projectionParametersAfter) / Double(projectionParametersBefore) }
    /// Fraction of all model parameters removed (embeddings and norms are not compressed).
    public var removedModelFraction: Double { 1 - Double(modelParametersAfter) / Double(modelParametersBefore) }
}

public enum Compressor {
    /// What one compression step was (for progress): a calibration window through a layer, or a
    /// projection factorised.
    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var layer: Int
    }

    /// Factorises every projection of `model` at the uniform rank r = ⌊keep·m·n/(m+n)⌋, scaling by
    /// the method's statistic. Layer by layer: run the layer on every calibration window (its
    /// statistics only), factorise its seven projections, drop the statistics, move on; with
    /// `recipe.calibrateOn == .compressed` the windows then pass through the compressed layer.
    /// A projection whose rank would not save parameters stays dense and the report says so.
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe,
                                calibration: CalibrationSet?, progress: (Progress) -> Void = { _ in }) throws
        -> (LlamaModel, CompressionReport) {
        guard recipe.removedFraction > 0 && recipe.removedFraction < 1 else {
            throw CompressionError.invalidBudget(recipe.removedFraction)
        }
        let c = model.configuration
        let clock = ContinuousClock()
        var calibrationTime = Duration.zero, factorisationTime = Duration.zero
        var compressed = model
        var reports: [ProjectionReport] = []
        let kinds = ProjectionKind.allCases
        let layerwise: LayerwiseCalibration?
        if recipe.method.needsCalibration {
            guard let calibration else { throw CompressionError.missingCalibration(recipe.method) }
            let started = clock.now
            layerwise = LayerwiseCalibration(model: model, calibration: calibration)
            calibrationTime += clock.now - started
        } else {
            layerwise = nil
        }
        let passes = layerwise == nil ? 0 : (recipe.calibrateOn == .compressed ? 2 : 1)
        let stepsPerLayer = passes * (layerwise?.windows.count ?? 0) + kinds.count
        var peakBytes = 0
        for layer in 0..<c.layerCount {
            let base = layer * stepsPerLayer
            var statistics: ActivationStatistics?
            if let layerwise {
                let started = clock.now
                let collector = ActivationStatistics(gram: recipe.method.needsGram, absoluteMean: recipe.method.needsAbsoluteMean)
                // Dense: the original layer's outputs feed the next layer in the same pass.
                // Compressed: this pass only observes; the stream advances through the factors below.
                let source = recipe.calibrateOn == .compressed ? compressed : model
                layerwise.run(source, observer: collector, advance: recipe.calibrateOn == .dense) {
                    progress(Progress(done: base + $0, total: c.layerCount * stepsPerLayer, layer: layer))
                }
                peakBytes = max(peakBytes, collector.byteCount + layerwise.streamBytes)
                statistics = collector
                calibrationTime += clock.now - started
            }
            let started = clock.now
            // One scaling per input site, shared by the projections that read it.
            var scalings: [InputSite: (InputScaling, Double, Int)] = [:]
            for site in InputSite.allCases {
                let key = ActivationStatistics.Key(layer: layer, site: site)
                switch recipe.method {
                case .svd:
                    scalings[site] = (.identity, 0, 0)
                case .asvd:
                    guard let mean = statistics?.meanAbsolute(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    scalings[site] = (.diagonal(activationScale(meanAbsolute: mean, alpha: recipe.asvdAlpha)), 0, 0)
                case .svdLLM:
                    guard let gram = statistics?.symmetricGram(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    switch recipe.whitening {
                    case .cholesky:
                        let whitening = try Whitening.cholesky(gram: gram)
                        scalings[site] = (.cholesky(whitening.s), whitening.shift, 0)
                    case .eigen:
                        let whitening = try Whitening.eigen(gram: gram)
                        scalings[site] = (.eigen(vectors: whitening.vectors, roots: whitening.roots), 0, whitening.clamped)
                    }
                }
            }
            statistics = nil  // the Gram matrices go now; only the scalings are needed
            // The seven projections of a layer in parallel (LAPACK is single-threaded per call).
            let box = UncheckedSendableBox(UnsafeMutableBufferPointer<Result<(Linear, ProjectionReport), any Error>?>.allocate(capacity: kinds.count))
            box.value.initialize(repeating: nil)
            defer {
                _ = box.value.deinitialize()
                box.value.deallocate()
            }
            Parallel.forEach(kinds.count) { i in
                let kind = kinds[i]
                let (scaling, shift, clamped) = scalings[kind.inputSite]!
                box.value[i] = Result {
                    var (linear, report) = try factorizeProjection(weights[ProjectionID(layer: layer, kind: kind)], id: ProjectionID(layer: layer, kind: kind),
                                                                   keep: recipe.keptFraction, scaling: scaling, shift: shift)
                    if case .eigen = scaling { report.clampedEigenvalues = clamped }
                    return (linear, report)
                }
            }
            let stepsBefore = base + (passes == 0 ? 0 : layerwise?.windows.count ?? 0)
            for (i, kind) in kinds.enumerated() {
                let (linear, report) = try box.value[i]!.get()
                compressed[ProjectionID(layer: layer, kind: kind)] = linear
                reports.append(report)
                progress(Progress(done: stepsBefore + i + 1, total: c.layerCount * stepsPerLayer, layer: layer))
            }
            factorisationTime += clock.now - started
            if let layerwise, recipe.calibrateOn == .compressed {
                let started = clock.now
                layerwise.run(compressed, observer: nil, advance: true) {
                    progress(Progress(done: stepsBefore + kinds.count + $0, total: c.layerCount * stepsPerLayer, layer: layer))
                }
                calibrationTime += clock.now - started
            }
        }
        let before = reports.reduce(0) { $0 + $1.parametersBefore }
        let after = reports.reduce(0) { $0 + $1.parametersAfter }
        let counts = ParameterCount(configuration: c)
        let report = CompressionReport(projections: reports, projectionParametersBefore: before, projectionParametersAfter: after,
                                       modelParametersBefore: counts.total, modelParametersAfter: counts.total - before + after,
                                       factorisationSeconds: factorisationTime.seconds, calibrationSeconds: calibrationTime.seconds,
                                       calibrationTokens: layerwise?.tokenCount ?? 0, peakCalibrationBytes: peakBytes)
        return (compressed, report)
    }

    static func factorizeProjection(_ w: Matrix<Float>, id: ProjectionID, keep: Double, scaling: InputScaling, shift: Double) throws
        -> (Linear, ProjectionReport) {
        let m = w.rows, n = w.columns
        let rank = uniformRank(outputs: m, inputs: n, keptFraction: keep)
        var report = ProjectionReport(layer: id.layer, projection: id.kind.shortName, outputs: m, inputs: n, rank: nil,
                                      parametersBefore: m * n, parametersAfter: m * n, relativeTruncationError: nil,
                                      whiteningShift: shift, note: nil)
        guard rank >= 1, rank * (m + n) < m * n else {
            report.note = rank < 1 ? "rank would be 0: kept dense" : "rank \(rank) would not save parameters: kept dense"
            return (.dense(DenseLinear(w)), report)
        }
        let f = try ScaledSVD.factorize(Matrix(rows: m, columns: n, storage: w.storage.map(Double.init)), rank: rank, scaling: scaling)
        let left = Matrix(rows: m, columns: rank, storage: f.left.storage.map(Float.init))
        let right = Matrix(rows: rank, columns: n, storage: f.right.storage.map(Float.init))
        let nonFinite = left.storage.filter { !$0.isFinite }.count + right.storage.filter { !$0.isFinite }.count
        guard nonFinite == 0 else { throw CompressionError.nonFiniteFactors(id, count: nonFinite) }
        report.rank = rank
        report.parametersAfter = rank * (m + n)
        report.relativeTruncationError = f.relativeTruncationError
        return (.lowRank(LowRankLinear(left: left, right: right)), report)
    }
}

public enum CompressionError: Error, CustomStringConvertible, Equatable {
    case invalidBudget(Double)
    case missingStatistics(layer: Int, site: InputSite)
    case missingCalibration(CompressionMethod)
    case nonFiniteFactors(ProjectionID, count: Int)

    public var description: String {
        switch self {
        case .invalidBudget(let r): "--remove \(r) must be strictly between 0 and 1 (the fraction of projection parameters removed)"
        case .missingStatistics(let layer, let site): "no calibration statistics for layer \(layer), \(site.rawValue)"
        case .missingCalibration(let method): "\(method.rawValue) needs calibration windows (--calibration, --samples, --length)"
        case .nonFiniteFactors(let id, let count): "factorising \(id) gave \(count) non-finite values; check the calibration data"
        }
    }
}
