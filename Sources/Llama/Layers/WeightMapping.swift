import LinearAlgebra

/// A layer form built from weight matrices. `mapWeights` rebuilds it with every matrix replaced by
/// `transform`'s result (same shape, same role, active ranks kept): the one place each form lists
/// its matrices, so a change of storage (precision, cache-line alignment) reaches every form.
public protocol WeightMapping {
    func mapWeights(_ transform: (WeightMatrix) throws -> WeightMatrix) rethrows -> Self
}

extension WeightMapping {
    /// The same form with every matrix stored at `precision` (rounded from its Float32 values).
    public func converted(to precision: WeightPrecision) -> Self { mapWeights { $0.converted(to: precision) } }
}
