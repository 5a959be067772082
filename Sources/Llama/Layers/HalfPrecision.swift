import LinearAlgebra

/// Conversions for half-precision weight storage.
enum HalfPrecision {
    /// Round-to-nearest-even Float32 → bfloat16 (NaN kept quiet).
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) &+ 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }
}

extension WeightPrecision {
    var halfFormat: HalfFormat? {
        switch self {
        case .float32: nil
        case .float16: .float16
        case .bfloat16: .bfloat16
        }
    }
}
