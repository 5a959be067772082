import Foundation

/// What happened to one factorisation unit: a projection, or several factorised as one (then
/// `projection` names the first, `members` all of them, and `outputs` is their sum).
public struct ProjectionReport: Codable, Sendable {
    public var layer: Int
    public var projection: String
    /// A Cat group's projections (`["q_proj", "k_proj", "v_proj"]`); nil for one projection.
    public var members: [String]?
    /// Basis Sharing: how many consecutive layers (from `layer`) share this unit's right factor.
    public var layers: Int?
    /// skip, skipcat: the right factor is block-skipped.
    public var skipped: Bool?
    /// max |A′| of the skipped right factor with the r input channels chosen by pivoted QR, and
    /// with the first r (whichever the run used; the known fp16 failure: above 65504 a
    /// half-precision A′ overflows). ∞ when the leading block is singular.
    public var maxAbsRemainderPivoted: Double?
    public var maxAbsRemainderLeading: Double?
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
    /// D-Rank's effective rank exp(entropy of σ²/Σσ²) of the scaled weight.
    public var effectiveRank: Double?
    /// The importance the allocator ranked by (FLRC's α, or an ablation's Σ W² or Σ G²).
    public var importance: Double?
    /// asvd-search, asvd-knapsack: the calibration loss with only this projection truncated, per kept fraction.
    public var sensitivity: [SensitivityPoint]?
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
    /// Statistics only the allocator needs (FLRC: the backward pass over the calibration windows;
    /// asvd-search, asvd-knapsack: their sensitivity probes);
    /// nil when it needs none beyond the factorisation's.
    public var allocationSeconds: Double?
    public var calibrationTokens: Int
    /// asvd-search, asvd-knapsack: the dense model's loss on the probe windows, the reference every
    /// probe's loss is compared with.
    public var sensitivityBaseline: Double?
    /// The largest amount of statistics alive at once (one layer's Gram matrices and sums) plus
    /// the calibration windows' residual streams.
    public var peakCalibrationBytes: Int
    /// Where the run's memory went; `compression.json` records it at its top level
    /// (`CompressionRecord.memory`), with the checkpoint write added.
    public var memory: CompressionMemory?

    enum CodingKeys: String, CodingKey {
        case projections, projectionParametersBefore, projectionParametersAfter, modelParametersBefore, modelParametersAfter
        case factorisationSeconds, calibrationSeconds, allocationSeconds, calibrationTokens, sensitivityBaseline, peakCalibrationBytes
    }

    /// Fraction of projection parameters removed (what `--remove` asks for).
    public var removedProjectionFraction: Double { 1 - Double(projectionParametersAfter) / Double(projectionParametersBefore) }
    /// Fraction of all model parameters removed (embeddings and norms are not compressed).
    public var removedModelFraction: Double { 1 - Double(modelParametersAfter) / Double(modelParametersBefore) }
}
