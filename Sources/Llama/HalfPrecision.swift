import LinearAlgebra

/// Half-precision weight kernels: widening to Float32 and a matrix-vector product that widens on
/// the fly (decode reads half the bytes of Float32).
enum HalfPrecision {
    /// Round-to-nearest-even Float32 → bfloat16 (NaN kept quiet).
    static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) &+ 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }

    @inline(__always)
    static func widen16(_ p: UnsafePointer<UInt16>, _ precision: WeightPrecision) -> SIMD16<Float> {
        let raw = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt16>.self)
        if precision == .bfloat16 {
            return unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: raw) &<< 16, to: SIMD16<Float>.self)
        }
        return SIMD16<Float>(unsafeBitCast(raw, to: SIMD16<Float16>.self))
    }

    @inline(__always)
    static func widen1(_ v: UInt16, _ precision: WeightPrecision) -> Float {
        precision == .bfloat16 ? Float(bitPattern: UInt32(v) << 16) : Float(Float16(bitPattern: v))
    }

    static func widen(_ h: UnsafePointer<UInt16>, _ precision: WeightPrecision, count: Int, into out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 16 <= count {
            UnsafeMutableRawPointer(out + i).storeBytes(of: widen16(h + i, precision), as: SIMD16<Float>.self)
            i += 16
        }
        while i < count { out[i] = widen1(h[i], precision); i += 1 }
    }

    /// `y[outputs] = W[outputs × inputs] · x`, W in half precision, split by rows across workers.
    static func gemv(_ w: UnsafePointer<UInt16>, _ precision: WeightPrecision, outputs: Int, inputs: Int,
                     x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        let parts = Parallel.ranges(outputs, minimum: 256)
        let box = UncheckedSendableBox((w, x, y))  // disjoint rows of y per part
        Parallel.forEach(parts.count) { p in
            let (w, x, y) = box.value
            for r in parts[p] {
                let row = w + r * inputs
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
                var i = 0
                while i + 32 <= inputs {
                    a0 += widen16(row + i, precision) * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                    a1 += widen16(row + i + 16, precision) * UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self)
                    i += 32
                }
                while i + 16 <= inputs {
                    a0 += widen16(row + i, precision) * UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                    i += 16
                }
                var sum = (a0 + a1).sum()
                while i < inputs { sum += widen1(row[i], precision) * x[i]; i += 1 }
                y[r] = sum
            }
        }
    }
}
