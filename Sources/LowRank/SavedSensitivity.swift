import Foundation
import Llama

/// The sensitivity probes of an earlier `asvd-search` or `asvd-knapsack` run, reused at another
/// budget or by the other allocation (both read the same probes).
///
/// ASVD's probes (the calibration loss of the model with one projection truncated to each
/// candidate kept fraction) depend on the model, the factorisation (method, scaling, whitening),
/// the calibration windows and how many of them the probes score — never on the budget. Measuring
/// them is nearly all of asvd-search's cost (23 minutes for SmolLM2 on one window of 512), so a
/// table over several budgets measures them once and re-runs only the binary search. Reuse is
/// refused unless every one of those inputs matches the record it came from.
public struct SavedSensitivity: Sendable {
    /// Every projection's probes, candidates in `SensitivitySearchAllocator.candidates` order.
    public let points: [ProjectionID: [SensitivityPoint]]
    /// The dense model's loss on the probe windows, when the record kept it (records made before
    /// it was kept lack it; the compressor then measures it again).
    public let baseline: Double?
    /// Where they came from (recorded in the new run's recipe).
    public let source: SensitivitySource

    /// The probes in `record` (read from `path`, its bytes hashing to `sha256`), checked against
    /// the run about to use them: the same source model digest, calibration file digest, and recipe
    /// in everything but the budget.
    public init(record: CompressionRecord, path: String, sha256: String, configuration: LlamaConfiguration,
                matching recipe: CompressionRecipe, sourceSHA256: String, calibrationSHA256: String?) throws(AllocationError) {
        guard record.recipe.allocation.readsSensitivity else {
            throw .sensitivityRecordMismatch(path: path, field: "allocation", recorded: record.recipe.allocation.rawValue, wanted: "asvd-search or asvd-knapsack")
        }
        guard record.source_sha256 == sourceSHA256 else {
            throw .sensitivityRecordMismatch(path: path, field: "source_sha256", recorded: record.source_sha256, wanted: sourceSHA256)
        }
        guard record.calibration_sha256 == calibrationSHA256 else {
            throw .sensitivityRecordMismatch(path: path, field: "calibration_sha256", recorded: record.calibration_sha256 ?? "none", wanted: calibrationSHA256 ?? "none")
        }
        if let (field, recorded, wanted) = Self.firstDifference(record.recipe, recipe) {
            throw .sensitivityRecordMismatch(path: path, field: "recipe.\(field)", recorded: recorded, wanted: wanted)
        }
        var points: [ProjectionID: [SensitivityPoint]] = [:]
        for report in record.report.projections {
            guard let kind = ProjectionKind.allCases.first(where: { $0.shortName == report.projection }),
                  (0..<configuration.layerCount).contains(report.layer) else {
                throw .sensitivityRecordIncomplete(path: path, reason: "projection \(report.projection) of layer \(report.layer) is not in this model")
            }
            let id = ProjectionID(layer: report.layer, kind: kind)
            guard let list = report.sensitivity, list.map(\.keptFraction) == SensitivitySearchAllocator.candidates else {
                throw .sensitivityRecordIncomplete(path: path, reason: "\(id) has no probes at the kept fractions \(SensitivitySearchAllocator.candidates)")
            }
            points[id] = list
        }
        // One list per factorisation unit (a Cat group's under its first member).
        let expected = Set(FactorizationUnit.units(method: recipe.method, configuration: configuration, groupSize: recipe.groupSize).map(\.id))
        if let missing = expected.subtracting(points.keys).min() {
            throw .sensitivityRecordIncomplete(path: path, reason: "\(missing) has no probes (\(points.count) units probed, this model has \(expected.count))")
        }
        if let extra = Set(points.keys).subtracting(expected).min() {
            throw .sensitivityRecordIncomplete(path: path, reason: "\(extra) is not a unit of --method \(recipe.method.rawValue)")
        }
        self.points = points
        baseline = record.report.sensitivityBaseline
        source = SensitivitySource(path: path, sha256: sha256)
    }

    /// The first recipe field (as `compression.json` spells it) that differs between two recipes,
    /// ignoring the budget, where probes came from, what the layers were calibrated on, and which of
    /// the two allocations read the probes: every probe is measured on factors from dense
    /// calibration (a fresh search cannot calibrate otherwise), so a sequential or compensated run
    /// may take an earlier run's probes for its ranks, and asvd-knapsack may take asvd-search's.
    static func firstDifference(_ a: CompressionRecipe, _ b: CompressionRecipe) -> (String, String, String)? {
        func fields(_ recipe: CompressionRecipe) -> [String: String] {
            var r = recipe
            r.removedFraction = 0
            r.sensitivitySource = nil
            r.calibrateOn = .dense
            r.compensationRidge = nil
            if r.allocation.readsSensitivity { r.allocation = .asvdSearch }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            guard let data = try? encoder.encode(r),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object.mapValues { "\($0)" }
        }
        let x = fields(a), y = fields(b)
        for key in Set(x.keys).union(y.keys).sorted() where x[key] != y[key] {
            return (key, x[key] ?? "absent", y[key] ?? "absent")
        }
        return nil
    }
}

/// Which `compression.json` an asvd-search run took its probes from.
public struct SensitivitySource: Codable, Sendable, Equatable {
    public var path: String
    public var sha256: String

    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}
