import LinearAlgebra
import Llama

/// The statistics of one layer for `--calibrate-on compensated`, per input site: the Gram matrix
/// Ĝ = X̂ᵀX̂ of the compressed prefix's inputs and the cross-product C = X̂ᵀX with the dense
/// model's inputs X at the same tokens (Float64, `[n × n]` each). Fed by
/// `LayerwiseCalibration.runPaired`: each window's dense activations arrive first (`.reference`,
/// kept until the same window's compressed activations arrive), then the compressed ones.
public final class CompensationStatistics: ForwardObserver {
    public enum Phase: Sendable {
        /// The dense stream's window: its inputs are kept, one buffer per site.
        case reference
        /// The compressed stream's window: Ĝ and C accumulate against the kept inputs.
        case compressed
    }

    public let layer: Int
    /// The input sites collected (the others are not reported to this observer).
    public let sites: Set<InputSite>
    public var phase = Phase.reference
    public private(set) var gram: [InputSite: Matrix<Double>] = [:]
    public private(set) var cross: [InputSite: Matrix<Double>] = [:]
    private var kept: [InputSite: [Float]] = [:]
    private var gramScratch: [Double] = []
    private var crossScratch: [Double] = []

    public init(layer: Int, sites: Set<InputSite> = Set(InputSite.allCases)) {
        self.layer = layer
        self.sites = sites
    }

    public func wants(_ point: ObservationPoint) -> Bool {
        if case .projectionInput(let l, let site) = point { return l == layer && sites.contains(site) }
        return false
    }

    public func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
        guard case .projectionInput(let l, let site) = point, l == layer, sites.contains(site) else { return }
        switch phase {
        case .reference:
            kept[site] = Array(UnsafeBufferPointer(start: values, count: rows * columns))
        case .compressed:
            guard let dense = kept.removeValue(forKey: site) else {
                preconditionFailure("compressed activations of \(site) arrived without the dense window's")
            }
            precondition(dense.count == rows * columns, "the dense and compressed windows differ in shape at \(site)")
            var g = gram[site] ?? .zeros(rows: columns, columns: columns)
            Decompositions.accumulateGram(&g, values, rows: rows, columns: columns, scratch: &gramScratch)
            gram[site] = g
            var c = cross[site] ?? .zeros(rows: columns, columns: columns)
            dense.withUnsafeBufferPointer {
                Decompositions.accumulateCross(&c, values, $0.baseAddress!, rows: rows, columns: columns, scratch: &crossScratch)
            }
            cross[site] = c
        }
    }

    /// Ĝ with both triangles filled.
    public func symmetricGram(_ site: InputSite) -> Matrix<Double>? {
        guard var g = gram[site] else { return nil }
        Decompositions.symmetrize(&g)
        return g
    }

    /// Bytes held (the matrices, the kept window and the scratch).
    public var byteCount: Int {
        (gram.values.reduce(0) { $0 + $1.storage.count } + cross.values.reduce(0) { $0 + $1.storage.count }
            + gramScratch.count + crossScratch.count) * 8 + kept.values.reduce(0) { $0 + $1.count * 4 }
    }
}
