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

    public init(method: CompressionMethod, removedFraction: Double, asvdAlpha: Double = 0.5, calibrationCorpus: String = "c4",
                calibrationSamples: Int = 64, calibrationLength: Int = 512, seed: UInt64 = 3, calibrationStarts: [Int]? = nil) {
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
    public var note: String?
}

public struct CompressionReport: Codable, Sendable {
    public var projections: [ProjectionReport]
    public var projectionParametersBefore: Int
    public var projectionParametersAfter: Int
    public var modelParametersBefore: Int
    public var modelParametersAfter: Int
    public var factorisationSeconds: Double

    /// Fraction of projection parameters removed (what `--remove` asks for).
    public var removedProjectionFraction: Double { 1 - Double(projectionParametersAfter) / Double(projectionParametersBefore) }
    /// Fraction of all model parameters removed (embeddings and norms are not compressed).
    public var removedModelFraction: Double { 1 - Double(modelParametersAfter) / Double(modelParametersBefore) }
}

public enum Compressor {
    /// Factorises every projection of `model` at the uniform rank r = ⌊keep·m·n/(m+n)⌋, scaling by
    /// the method's statistic. A projection whose rank would not save parameters stays dense and the
    /// report says so. `progress(done, total)` after each projection.
    public static func compress(_ model: LlamaModel, weights: LlamaWeights, recipe: CompressionRecipe,
                                statistics: ActivationStatistics?, progress: (Int, Int) -> Void = { _, _ in }) throws
        -> (LlamaModel, CompressionReport) {
        guard recipe.removedFraction > 0 && recipe.removedFraction < 1 else {
            throw CompressionError.invalidBudget(recipe.removedFraction)
        }
        let c = model.configuration
        let clock = ContinuousClock()
        let started = clock.now
        var compressed = model
        var reports: [ProjectionReport] = []
        let total = c.layerCount * ProjectionKind.allCases.count
        for layer in 0..<c.layerCount {
            // One scaling per input site, shared by the projections that read it.
            var scalings: [InputSite: (InputScaling, Double)] = [:]
            for site in InputSite.allCases {
                let key = ActivationStatistics.Key(layer: layer, site: site)
                switch recipe.method {
                case .svd:
                    scalings[site] = (.identity, 0)
                case .asvd:
                    guard let mean = statistics?.meanAbsolute(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    scalings[site] = (.diagonal(activationScale(meanAbsolute: mean, alpha: recipe.asvdAlpha)), 0)
                case .svdLLM:
                    guard let gram = statistics?.symmetricGram(key) else { throw CompressionError.missingStatistics(layer: layer, site: site) }
                    let whitening = try Whitening.cholesky(gram: gram)
                    scalings[site] = (.cholesky(whitening.s), whitening.shift)
                }
            }
            // The seven projections of a layer in parallel (LAPACK is single-threaded per call).
            let kinds = ProjectionKind.allCases
            let box = UncheckedSendableBox(UnsafeMutableBufferPointer<Result<(Linear, ProjectionReport), any Error>?>.allocate(capacity: kinds.count))
            box.value.initialize(repeating: nil)
            defer {
                _ = box.value.deinitialize()
                box.value.deallocate()
            }
            Parallel.forEach(kinds.count) { i in
                let kind = kinds[i]
                let (scaling, shift) = scalings[kind.inputSite]!
                box.value[i] = Result { try factorizeProjection(weights[ProjectionID(layer: layer, kind: kind)], id: ProjectionID(layer: layer, kind: kind),
                                                                keep: recipe.keptFraction, scaling: scaling, shift: shift) }
            }
            for (i, kind) in kinds.enumerated() {
                let (linear, report) = try box.value[i]!.get()
                compressed[ProjectionID(layer: layer, kind: kind)] = linear
                reports.append(report)
                progress(layer * kinds.count + i + 1, total)
            }
        }
        let before = reports.reduce(0) { $0 + $1.parametersBefore }
        let after = reports.reduce(0) { $0 + $1.parametersAfter }
        let counts = ParameterCount(configuration: c)
        let report = CompressionReport(projections: reports, projectionParametersBefore: before, projectionParametersAfter: after,
                                       modelParametersBefore: counts.total, modelParametersAfter: counts.total - before + after,
                                       factorisationSeconds: (clock.now - started).seconds)
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
    case nonFiniteFactors(ProjectionID, count: Int)

    public var description: String {
        switch self {
        case .invalidBudget(let r): "--remove \(r) must be strictly between 0 and 1 (the fraction of projection parameters removed)"
        case .missingStatistics(let layer, let site): "no calibration statistics for layer \(layer), \(site.rawValue)"
        case .nonFiniteFactors(let id, let count): "factorising \(id) gave \(count) non-finite values; check the calibration data"
        }
    }
}
