/// Element-wise kernels on Float32 buffers, written with 16-lane SIMD (one AVX-512 register when
/// built with `-target-cpu skylake-avx512`). Each has a plain reference twin in
/// `TestSupport.Reference` and a test comparing them.
public enum VectorMath {
    public typealias Lanes = SIMD16<Float>

    // MARK: exp

    /// e^x for 16 lanes, Cephes `expf` (range reduction by ln 2 in two parts, degree-6 polynomial),
    /// relative error below 2e-7 on [-87, 88]. Inputs are clamped to that range: e^-87 ≈ 1.6e-38
    /// stands in for smaller results (callers subtract a maximum first, so this never matters).
    @inline(__always)
    public static func exp(_ x: Lanes) -> Lanes {
        let clamped = minimum(maximum(x, Lanes(repeating: -87.33654)), Lanes(repeating: 88.37626))
        // Adding 1.5·2^23 rounds to the nearest integer (ties to even) and leaves that integer in the
        // low mantissa bits: n without Swift's generic (per-lane, slow) conversions.
        let magic = Lanes(repeating: 12_582_912)
        let shifted = clamped * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693359375
        r = r - n * -2.12194440e-4
        let z = r * r
        var p = Lanes(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * z + r + 1
        let integer = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: Lanes.self)
        return y * scale
    }

    /// e^x for one value, through the vector kernel so scalar tails agree with vector bodies.
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(Lanes(repeating: x))[0] }

    // MARK: lane-wise min/max

    /// Lane-wise maximum as compare-and-blend. Swift's `pointwiseMax` and `clamped` follow IEEE
    /// NaN rules and compile to per-lane scalar code; a NaN here passes through from `b`.
    @inline(__always)
    public static func maximum(_ a: Lanes, _ b: Lanes) -> Lanes { a.replacing(with: b, where: .!(b .<= a)) }

    @inline(__always)
    public static func minimum(_ a: Lanes, _ b: Lanes) -> Lanes { a.replacing(with: b, where: .!(b .>= a)) }

    // MARK: reductions

    @inline(__always)
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Lanes()
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            acc = acc + v * v
            i += 16
        }
        var sum = acc.sum()
        while i < count { sum += x[i] * x[i]; i += 1 }
        return sum
    }

    @inline(__always)
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var acc = Lanes(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            acc = maximum(acc, UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self))
            i += 16
        }
        var m = acc.max()
        while i < count { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    // MARK: normalisation

    /// `y = x / sqrt(mean(x²) + ε) · weight` (Llama RMSNorm; the mean of squares in Float32, as
    /// Hugging Face computes it). `x` and `y` may be the same buffer.
    @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, epsilon: Float,
                               count: Int, into y: UnsafeMutablePointer<Float>) {
        let scale = 1 / (sumOfSquares(x, count: count) / Float(count) + epsilon).squareRoot()
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            let w = UnsafeRawPointer(weight + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: w * (v * scale), as: Lanes.self)
            i += 16
        }
        while i < count { y[i] = weight[i] * (x[i] * scale); i += 1 }
    }

    // MARK: softmax

    /// `x[i] = e^(x[i] − shift)` in place over `x[0..<count]`; returns Σ x[i] (softmax without the
    /// normalisation: decode attention merges such partial states across workers).
    @inline(__always)
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, shift m: Float) -> Float {
        let shift = Lanes(repeating: m)
        var acc = Lanes()
        var i = 0
        while i + 16 <= count {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self) - shift)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: Lanes.self)
            acc += e
            i += 16
        }
        var sum = acc.sum()
        // The last count % 16 values in one vector: `exp(_: Float)` per value costs a whole 16-lane
        // evaluation each, and decode attention's rows (a worker's share of the positions) end in
        // 7.5 such values on average, 9 rows per layer (`perf`: the scalar `exp` took a third of
        // the softmax's samples). Same lanes, same order of the sum: the same bits as before.
        if i < count {
            let n = count - i
            var tail = Lanes(repeating: m)
            for j in 0..<n { tail[j] = x[i + j] }
            let e = exp(tail - shift)
            for j in 0..<n { x[i + j] = e[j]; sum += e[j] }
        }
        return sum
    }

    /// In-place softmax of `x[0..<count]`; returns log(Σ e^(x − max)) + max (the logsumexp).
    @discardableResult
    @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) -> Float {
        let m = maximum(x, count: count)
        let sum = exponentiate(x, count: count, shift: m)
        let inverse = Lanes(repeating: 1 / sum)
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v * inverse, as: Lanes.self)
            i += 16
        }
        while i < count { x[i] *= inverse[0]; i += 1 }
        return Foundation_log(sum) + m
    }

    /// log Σ e^x over `x[0..<count]`, accumulated in Double for long rows (vocabulary-sized).
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        let m = maximum(x, count: count)
        guard m.isFinite else { return Double(m) }
        let shift = Lanes(repeating: m)
        var total = 0.0
        var i = 0
        while i + 16 <= count {
            total += Double(exp(UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self) - shift).sum())
            i += 16
        }
        while i < count { total += Double(exp(x[i] - m)); i += 1 }
        return Foundation_log(total) + Double(m)
    }

    // MARK: activations

    /// `gate[i] = silu(gate[i]) · up[i]` with silu(x) = x / (1 + e^-x) (SwiGLU).
    @inline(__always)
    public static func siluMultiply(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: Lanes.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(gate + i).storeBytes(of: g / (1 + exp(-g)) * u, as: Lanes.self)
            i += 16
        }
        while i < count { gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]; i += 1 }
    }

    /// `y[i] += x[i]`.
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            let b = UnsafeRawPointer(y + i).loadUnaligned(as: Lanes.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: Lanes.self)
            i += 16
        }
        while i < count { y[i] += x[i]; i += 1 }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_log(_ x: Float) -> Float { logf(x) }
@inline(__always) func Foundation_log(_ x: Double) -> Double { Glibc.log(x) }
#endif
