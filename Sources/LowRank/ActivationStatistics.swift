import LinearAlgebra
import Llama

/// Per layer and input site: the Gram matrix XᵀX (Float64) and Σ|x| per channel over every
/// calibration token, collected by observing forward passes of the model.
public final class ActivationStatistics: ForwardObserver {
    public struct Key: Hashable, Sendable {
        public var layer: Int
        public var site: InputSite
        public init(layer: Int, site: InputSite) {
            self.layer = layer
            self.site = site
        }
    }

    public let wantsGram: Bool
    public let wantsAbsoluteMean: Bool
    public private(set) var gram: [Key: Matrix<Double>] = [:]
    public private(set) var absoluteSum: [Key: [Double]] = [:]
    public private(set) var tokenCount: [Key: Int] = [:]
    private var scratch: [Double] = []

    public init(gram: Bool, absoluteMean: Bool) {
        wantsGram = gram
        wantsAbsoluteMean = absoluteMean
    }

    public func wants(_ point: ObservationPoint) -> Bool {
        if case .projectionInput = point { return wantsGram || wantsAbsoluteMean }
        return false
    }

    public func observe(_ point: ObservationPoint, values: UnsafePointer<Float>, rows: Int, columns: Int) {
        guard case .projectionInput(let layer, let site) = point else { return }
        let key = Key(layer: layer, site: site)
        if wantsGram {
            var g = gram[key] ?? Matrix<Double>.zeros(rows: columns, columns: columns)
            Decompositions.accumulateGram(&g, values, rows: rows, columns: columns, scratch: &scratch)
            gram[key] = g
        }
        if wantsAbsoluteMean {
            var sums = absoluteSum[key] ?? [Double](repeating: 0, count: columns)
            for r in 0..<rows { for c in 0..<columns { sums[c] += Double(abs(values[r * columns + c])) } }
            absoluteSum[key] = sums
        }
        tokenCount[key, default: 0] += rows
    }

    /// Bytes held by the Gram matrices and sums.
    public var byteCount: Int {
        gram.values.reduce(0) { $0 + $1.storage.count * 8 } + absoluteSum.values.reduce(0) { $0 + $1.count * 8 } + scratch.count * 8
    }

    /// XᵀX with both triangles filled.
    public func symmetricGram(_ key: Key) -> Matrix<Double>? {
        guard var g = gram[key] else { return nil }
        Decompositions.symmetrize(&g)
        return g
    }

    public func meanAbsolute(_ key: Key) -> [Double]? {
        guard let sums = absoluteSum[key], let n = tokenCount[key], n > 0 else { return nil }
        return sums.map { $0 / Double(n) }
    }
}
