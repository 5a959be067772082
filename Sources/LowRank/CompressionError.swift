import Foundation
import Llama

public enum CompressionError: Error, CustomStringConvertible, Equatable {
    case invalidBudget(Double)
    case missingStatistics(layer: Int, site: InputSite)
    case missingCalibration(CompressionMethod)
    case missingAllocationCalibration(AllocationMethod)
    case nonFiniteFactors(ProjectionID, count: Int)
    case invalidGroupSize(Int, layers: Int)
    case sharedBasisNeedsDenseCalibration
    case compensationNeedsWhitening(CompressionMethod)
    /// A run asked to keep its finished layers (to resume) with a recipe that has none before the end.
    case notResumable(String)

    public var description: String {
        switch self {
        case .invalidBudget(let r): "--remove \(r) must be strictly between 0 and 1 (the fraction of projection parameters removed)"
        case .missingStatistics(let layer, let site): "no calibration statistics for layer \(layer), \(site.rawValue)"
        case .missingCalibration(let method): "\(method.rawValue) needs calibration windows (--calibration, --samples, --length)"
        case .missingAllocationCalibration(let allocation):
            "--allocation \(allocation.rawValue) needs calibration windows for its backward pass (--calibration, --samples, --length)"
        case .nonFiniteFactors(let id, let count): "factorising \(id) gave \(count) non-finite values; check the calibration data"
        case .invalidGroupSize(let n, let layers): "--group-size \(n) must be between 1 and the model's \(layers) layers"
        case .sharedBasisNeedsDenseCalibration:
            "basis-sharing whitens a group of layers with their summed Gram matrices, so a layer cannot be calibrated on the compressed prefix before its group is complete: use --calibrate-on dense"
        case .compensationNeedsWhitening(let method):
            "--calibrate-on compensated fits each projection to the dense model's outputs in the whitening of its Gram matrix, which --method \(method.rawValue) does not compute: use svd-llm, cat, skip or skipcat, or --calibrate-on compressed"
        case .notResumable(let reason): "this run cannot be resumed layer by layer: \(reason); run it without --resume"
        }
    }
}
