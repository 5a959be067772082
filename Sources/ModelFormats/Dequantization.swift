/// Dequantisation of every supported element type to Float32, following ggml's reference
/// `dequantize_row_*` functions (ggml-quants.c) value for value.
public enum Dequantization {
    /// Converts `count` elements of `type` stored in `source` into `destination`.
    /// `source` must hold exactly `type.byteCount(elements: count)` bytes.
    public static func dequantize(
        _ type: ElementType, source: UnsafeRawBufferPointer, count: Int,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(destination.count >= count)
        precondition(source.count == type.byteCount(elements: count), "source size does not match \(count) \(type) elements")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        let blocks = count / type.blockSize
        switch type {
        case .f32:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { dst[i] = bfloat16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .q8_0:
            for b in 0..<blocks { q8_0Block(src + b * 34, dst + b * 32) }
        case .q4_0:
            for b in 0..<blocks { q4_0Block(src + b * 18, dst + b * 32) }
        case .q4_1:
            for b in 0..<blocks { q4_1Block(src + b * 20, dst + b * 32) }
        case .q4_K:
            for b in 0..<blocks { q4_KBlock(src + b * 144, dst + b * 256) }
        case .q5_K:
            for b in 0..<blocks { q5_KBlock(src + b * 176, dst + b * 256) }
        case .q6_K:
            for b in 0..<blocks { q6_KBlock(src + b * 210, dst + b * 256) }
        }
    }

    /// Convenience: a new array.
    public static func dequantize(_ type: ElementType, source: UnsafeRawBufferPointer, count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            dequantize(type, source: source, count: count, into: buffer)
            initialized = count
        }
    }

    // MARK: - Scalars

    @inline(__always)
    public static func halfToFloat(_ bits: UInt16) -> Float { Float(Float16(bitPattern: UInt16(littleEndian: bits))) }

    /// bfloat16 is the top half of a float32.
    @inline(__always)
    public static func bfloat16ToFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(UInt16(littleEndian: bits)) << 16) }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float { halfToFloat(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }

    // MARK: - 32-value blocks

    /// block_q8_0: x = d · q.
    @inline(__always)
    static func q8_0Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        for j in 0..<32 { y[j] = d * Float(Int8(bitPattern: p.load(fromByteOffset: 2 + j, as: UInt8.self))) }
    }

    /// block_q4_0: low nibbles are values 0..<16, high nibbles 16..<32; x = d · (q − 8).
    @inline(__always)
    static func q4_0Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        for j in 0..<16 {
            let q = p.load(fromByteOffset: 2 + j, as: UInt8.self)
            y[j] = d * Float(Int(q & 0x0F) - 8)
            y[j + 16] = d * Float(Int(q >> 4) - 8)
        }
    }

    /// block_q4_1: x = d · q + m.
    @inline(__always)
    static func q4_1Block(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let m = half(p, 2)
        for j in 0..<16 {
            let q = p.load(fromByteOffset: 4 + j, as: UInt8.self)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    // MARK: - 256-value super-blocks (k-quants)

    /// The 6-bit scale and min of sub-block `j` (0..<8) packed in 12 bytes (ggml's get_scale_min_k4).
    @inline(__always)
    static func scaleMin(_ j: Int, _ s: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
        func q(_ i: Int) -> UInt8 { s.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 {
            return (q(j) & 63, q(j + 4) & 63)
        }
        return ((q(j + 4) & 0x0F) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4))
    }

    /// block_q4_K: 8 sub-blocks of 32, each x = d·scale·q − dmin·min.
    @inline(__always)
    static func q4_KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let dmin = half(p, 2)
        let scales = p + 4
        let qs = p + 16
        var out = 0
        for chunk in 0..<4 {  // 64 values per chunk: low nibbles then high nibbles of 32 bytes
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            let q = qs + 32 * chunk
            for l in 0..<32 { y[out + l] = d1 * Float(q.load(fromByteOffset: l, as: UInt8.self) & 0x0F) - min1 }
            for l in 0..<32 { y[out + 32 + l] = d2 * Float(q.load(fromByteOffset: l, as: UInt8.self) >> 4) - min2 }
            out += 64
        }
    }

    /// block_q5_K: as Q4_K with a fifth bit per value from qh.
    @inline(__always)
    static func q5_KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let dmin = half(p, 2)
        let scales = p + 4
        let qh = p + 16
        let ql = p + 48
        var out = 0
        var u1: UInt8 = 1, u2: UInt8 = 2
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            let q = ql + 32 * chunk
            for l in 0..<32 {
                let high: UInt8 = (qh.load(fromByteOffset: l, as: UInt8.self) & u1) != 0 ? 16 : 0
                y[out + l] = d1 * Float((q.load(fromByteOffset: l, as: UInt8.self) & 0x0F) + high) - min1
            }
            for l in 0..<32 {
                let high: UInt8 = (qh.load(fromByteOffset: l, as: UInt8.self) & u2) != 0 ? 16 : 0
                y[out + 32 + l] = d2 * Float((q.load(fromByteOffset: l, as: UInt8.self) >> 4) + high) - min2
            }
            out += 64
            u1 <<= 2
            u2 <<= 2
        }
    }

    /// block_q6_K: 16 sub-blocks of 16 with int8 scales; q = 4 low bits (ql) | 2 high bits (qh) − 32.
    @inline(__always)
    static func q6_KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 208)
        for half128 in 0..<2 {
            let ql = p + 64 * half128
            let qh = p + 128 + 32 * half128
            let sc = p + 192 + 8 * half128
            let out = y + 128 * half128
            func s(_ i: Int) -> Float { Float(Int8(bitPattern: sc.load(fromByteOffset: i, as: UInt8.self))) }
            for l in 0..<32 {
                let group = l / 16
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                let lo0 = ql.load(fromByteOffset: l, as: UInt8.self)
                let lo32 = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let q1 = Int((lo0 & 0x0F) | (((h >> 0) & 3) << 4)) - 32
                let q2 = Int((lo32 & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int((lo32 >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[l] = d * s(group) * Float(q1)
                out[l + 32] = d * s(group + 2) * Float(q2)
                out[l + 64] = d * s(group + 4) * Float(q3)
                out[l + 96] = d * s(group + 6) * Float(q4)
            }
        }
    }
}
