import Foundation

/// How the projections are factorised (`--method`): the scaling, and which projections one
/// factorisation covers (`FactorizationUnit`). Every method after svd-llm whitens as SVD-LLM does.
public enum CompressionMethod: String, CaseIterable, Codable, Sendable {
    /// Plain truncated SVD (no calibration data needed).
    case svd
    /// ASVD: activation-magnitude column scaling, s_j = mean|x_j|^α.
    case asvd
    /// SVD-LLM (W): truncation-aware Cholesky whitening, no parameter update.
    case svdLLM = "svd-llm"
    /// SkipCat's Cat: q/k/v and gate/up each factorised as one stacked matrix sharing one right
    /// factor (one whitening: they read one input); o and down as svd-llm.
    case cat
    /// SkipCat's Skip: svd-llm factors, each block-skipped (cost r·(m+n−r)).
    case skip
    /// Cat and Skip: the shared right factors and o, down all block-skipped.
    case skipCat = "skipcat"
    /// Basis Sharing: q, k, v, gate and up of `groupSize` consecutive layers share one right factor
    /// (whitened by their summed Gram matrices) with per-layer left factors; o and down as svd-llm.
    case basisSharing = "basis-sharing"

    public var needsGram: Bool { self != .svd && self != .asvd }
    public var needsAbsoluteMean: Bool { self == .asvd }
    public var needsCalibration: Bool { needsGram || needsAbsoluteMean }
    /// Whether projections that read one input are factorised together (Cat).
    public var stacksSharedInput: Bool { self == .cat || self == .skipCat }
    /// Whether every factorisation is block-skipped.
    public var skips: Bool { self == .skip || self == .skipCat }
    /// Whether a basis is shared across layers (`groupSize`).
    public var sharesAcrossLayers: Bool { self == .basisSharing }
}

/// How allocators treat skipped units, whose cost r·(m+n−r) is concave in r (SkipCat does not say;
/// our choice, switchable).
public enum SkippedAllocation: String, CaseIterable, Codable, Sendable {
    /// The allocator sees plain costs and decides each unit's parameter share; the share becomes the
    /// largest skipped rank it pays for (uniform keeps its own rule: the same fraction of every unit).
    case parameterShare = "parameter-share"
    /// The allocator sees the skipped cost itself.
    case exactCost = "exact-cost"
}

/// How SVD-LLM turns a Gram matrix into a whitening (both give the same singular values of W·S;
/// they differ in numerics and in what happens when the Gram is singular).
public enum WhiteningKind: String, CaseIterable, Codable, Sendable {
    /// SVD-LLM: Cholesky factor, with a reported eigenvalue shift if not positive definite.
    case cholesky
    /// SVD-LLM V2: eigen-decomposition square root, tiny eigenvalues clamped and counted.
    case eigen
}

/// How the SVD of a scaled weight `[m × n]` is computed (ours to choose; switchable, recorded).
public enum SVDSolver: String, CaseIterable, Codable, Sendable {
    /// LAPACK `dgesdd` on the matrix (what every result up to SmolLM2 size uses).
    case gesdd
    /// The eigen-decomposition (`dsyevd`) of the smaller Gram matrix AᵀA or AAᵀ, then the other
    /// factor by one product: half the memory-bound work of `dgesdd`'s bidiagonalisation, the rest
    /// in level-3 products (docs/BENCHMARKS.md has the 8B-shape timings). It squares the
    /// condition number, so singular values below about 1e-8·σ₁ are lost; those are far below any
    /// rank a compression keeps (docs/ARCHITECTURE.md has the comparison).
    case gram
    /// `gram` for matrices whose smaller side is at least `SVDSolver.gramThreshold`, else `gesdd`
    /// (so SmolLM2-size results are unchanged).
    case auto

    /// Smaller side from which `auto` uses the Gram route.
    public static let gramThreshold = 2048

    /// The solver used for an `[m × n]` matrix.
    public func resolved(rows m: Int, columns n: Int) -> SVDSolver {
        self == .auto ? (min(m, n) >= Self.gramThreshold ? .gram : .gesdd) : self
    }
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
    /// How the budget becomes a rank per projection.
    public var allocation: AllocationMethod
    /// D-Rank's Q/K → V transfer fraction (effective-rank allocation only).
    public var beta: Double
    /// D-Rank's released code: o/up/down keep uniform ranks unless dynamic ones lower the error,
    /// gate always (effective-rank allocation only).
    public var uniformFallback: Bool
    /// FLRC allocations: what a rank too large to save parameters does (break-even: dense).
    public var fisherCap: FisherCap
    /// asvd-search, asvd-knapsack: how many of the calibration windows (the first ones) its sensitivity probes score.
    public var searchSamples: Int
    /// asvd-search, asvd-knapsack: the `compression.json` whose probes this run reused (nil: measured here).
    public var sensitivitySource: SensitivitySource?
    /// basis-sharing: how many consecutive layers share a basis (1 for every other method).
    public var groupSize: Int
    /// skip and skipcat: which r input channels pass through (UNCONFIRMED in the paper; pivoted QR
    /// by default, the first r as the reported unstable baseline).
    public var skipSelection: BlockSkipping.Selection
    /// skip and skipcat with an allocator: how it sees the skipped cost.
    public var skippedAllocation: SkippedAllocation
    /// How each SVD is computed (`--svd-solver`).
    public var svdSolver: SVDSolver
    /// `--calibrate-on compensated`: the ridge α added to X̂'s Gram matrix as α·trace(Ĝ)/n·I
    /// before the fit to the dense outputs (nil for the other sources).
    public var compensationRidge: Double?

    public init(method: CompressionMethod, removedFraction: Double, asvdAlpha: Double = 0.5, calibrationCorpus: String = "c4",
                calibrationSamples: Int = 64, calibrationLength: Int = 512, seed: UInt64 = 3, calibrationStarts: [Int]? = nil,
                whitening: WhiteningKind = .cholesky, calibrateOn: CalibrationSource = .dense, allocation: AllocationMethod = .uniform,
                beta: Double = 0.3, uniformFallback: Bool = false, fisherCap: FisherCap = .breakEven,
                searchSamples: Int = 4, sensitivitySource: SensitivitySource? = nil, groupSize: Int? = nil,
                skipSelection: BlockSkipping.Selection = .pivoted, skippedAllocation: SkippedAllocation = .parameterShare,
                svdSolver: SVDSolver = .auto, compensationRidge: Double? = nil) {
        self.svdSolver = svdSolver
        self.compensationRidge = calibrateOn == .compensated ? (compensationRidge ?? Self.defaultCompensationRidge) : nil
        self.skippedAllocation = skippedAllocation
        self.groupSize = groupSize ?? (method.sharesAcrossLayers ? 2 : 1)
        self.skipSelection = skipSelection
        self.sensitivitySource = sensitivitySource
        self.searchSamples = searchSamples
        self.uniformFallback = uniformFallback
        self.fisherCap = fisherCap
        self.allocation = allocation
        self.beta = beta
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

    /// The ridge `--calibrate-on compensated` uses unless told otherwise.
    public static let defaultCompensationRidge = 1e-2

    enum CodingKeys: String, CodingKey {
        case method, removedFraction, asvdAlpha, calibrationCorpus, calibrationSamples, calibrationLength, seed, calibrationStarts
        case whitening, calibrateOn, allocation, beta, uniformFallback, fisherCap, searchSamples, sensitivitySource
        case groupSize, skipSelection, skippedAllocation, svdSolver, compensationRidge
    }

    /// Records written before allocation existed read as uniform.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        method = try c.decode(CompressionMethod.self, forKey: .method)
        removedFraction = try c.decode(Double.self, forKey: .removedFraction)
        asvdAlpha = try c.decode(Double.self, forKey: .asvdAlpha)
        calibrationCorpus = try c.decode(String.self, forKey: .calibrationCorpus)
        calibrationSamples = try c.decode(Int.self, forKey: .calibrationSamples)
        calibrationLength = try c.decode(Int.self, forKey: .calibrationLength)
        seed = try c.decode(UInt64.self, forKey: .seed)
        calibrationStarts = try c.decodeIfPresent([Int].self, forKey: .calibrationStarts)
        whitening = try c.decode(WhiteningKind.self, forKey: .whitening)
        calibrateOn = try c.decode(CalibrationSource.self, forKey: .calibrateOn)
        allocation = try c.decodeIfPresent(AllocationMethod.self, forKey: .allocation) ?? .uniform
        beta = try c.decodeIfPresent(Double.self, forKey: .beta) ?? 0.3
        uniformFallback = try c.decodeIfPresent(Bool.self, forKey: .uniformFallback) ?? false
        fisherCap = try c.decodeIfPresent(FisherCap.self, forKey: .fisherCap) ?? .breakEven
        searchSamples = try c.decodeIfPresent(Int.self, forKey: .searchSamples) ?? 4
        sensitivitySource = try c.decodeIfPresent(SensitivitySource.self, forKey: .sensitivitySource)
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize) ?? 1
        skipSelection = try c.decodeIfPresent(BlockSkipping.Selection.self, forKey: .skipSelection) ?? .pivoted
        // Records written before the choice existed used the exact cost.
        skippedAllocation = try c.decodeIfPresent(SkippedAllocation.self, forKey: .skippedAllocation) ?? (method.skips ? .exactCost : .parameterShare)
        // Records written before the choice existed used dgesdd.
        svdSolver = try c.decodeIfPresent(SVDSolver.self, forKey: .svdSolver) ?? .gesdd
        compensationRidge = try c.decodeIfPresent(Double.self, forKey: .compensationRidge)
    }
}
