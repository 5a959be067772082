import Llama

/// Why an allocator could not choose ranks.
public enum AllocationError: Error, CustomStringConvertible, Equatable {
    case missingSpectrum(ProjectionID)
    case needsDenseCalibration(AllocationMethod)
    case missingImportance(ProjectionID)
    case nonFiniteImportance(ProjectionID, Double)  // NaN, ±∞ or negative
    case zeroImportance
    case truncationLossBelowOne(ProjectionID, Double)
    case missingSensitivity(ProjectionID)
    case missingSensitivityBaseline(ProjectionID)
    case nonFiniteSensitivity(ProjectionID, Double)
    case searchCannotReachBudget(smallestKeptFraction: Double, keep: Double)
    case sensitivityRecordMismatch(path: String, field: String, recorded: String, wanted: String)
    case sensitivityRecordIncomplete(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingSpectrum(let id): "no singular values for \(id): this allocator needs every projection profiled first"
        case .missingImportance(let id): "no Fisher importance for \(id): this allocator needs the backward pass over the calibration windows first"
        case .nonFiniteImportance(let id, let value):
            "the Fisher importance of \(id) is \(value): importances must be finite and ≥ 0; check the model and the calibration windows for NaNs"
        case .truncationLossBelowOne(let id, let loss):
            "svd-llm-v2 allocation: the truncation loss of \(id) at the uniform rank is \(loss); its rule 1/log(loss) needs a loss above 1 (more calibration tokens raise it)"
        case .missingSensitivity(let id): "no sensitivity probes for \(id): asvd-search and asvd-knapsack need every projection probed first"
        case .missingSensitivityBaseline(let id):
            "no dense loss beside the sensitivity probes of \(id): asvd-knapsack compares every probe with the dense model's loss on the probe windows"
        case .nonFiniteSensitivity(let id, let fraction):
            "sensitivity probes: the calibration loss with \(id) at \(fraction) of its parameters is not finite; check the model and the calibration windows for NaNs"
        case .searchCannotReachBudget(let smallest, let keep):
            "asvd-search and asvd-knapsack cannot keep only \(keep) of the projection parameters: their smallest candidate keeps \(smallest) of each matrix (use --remove ≤ \(1 - smallest))"
        case .sensitivityRecordMismatch(let path, let field, let recorded, let wanted):
            "--sensitivity-from: \(path) was made with \(field) \(Self.clipped(recorded)), this run has \(Self.clipped(wanted)); its probes are reusable only by a run that differs in --remove alone"
        case .sensitivityRecordIncomplete(let path, let reason):
            "--sensitivity-from: \(path) does not hold a complete sensitivity list (asvd-search or asvd-knapsack): \(reason)"
        case .zeroImportance: "every Fisher importance is 0 (the gradients vanished): nothing to allocate by"
        case .needsDenseCalibration(let method):
            method.readsSensitivity
                ? "--allocation \(method.rawValue) measures its probes on every layer's full-rank factors, so layers cannot be calibrated on the compressed prefix: use --calibrate-on dense, or reuse the probes of a dense run with --sensitivity-from DIR"
                : "--allocation \(method.rawValue) chooses ranks from every layer's spectrum, so layers cannot be calibrated on the compressed prefix: use --calibrate-on dense"
        }
    }

    private static func clipped(_ value: String) -> String {
        value.count <= 80 ? value : value.prefix(77) + "..."
    }
}
