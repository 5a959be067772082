import Testing
import ModelFormats

/// Each block is built by hand from its ggml-common.h layout with chosen quants and scales; the
/// expected values come from the format's formula applied to those choices. Scales are powers of
/// two, so every expected value is exact.
@Suite("Dequantisation of hand-built blocks")
struct DequantizationTests {
    static func half(_ x: Float) -> [UInt8] { withUnsafeBytes(of: Float16(x).bitPattern.littleEndian) { Array($0) } }

    func dequantize(_ type: ElementType, _ bytes: [UInt8], count: Int) -> [Float] {
        bytes.withUnsafeBytes { Dequantization.dequantize(type, source: $0, count: count) }
    }

    @Test func f32F16AndBF16DecodeTheirBitPatterns() {
        let f32: [Float] = [1.5, -2.25, 0, .infinity]
        #expect(dequantize(.f32, f32.withUnsafeBytes { Array($0) }, count: 4) == f32)
        // F16 0x3C00 = 1, 0xC000 = -2, 0x3555 ≈ 0.33325195, 0x7BFF = 65504.
        #expect(dequantize(.f16, [0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35, 0xFF, 0x7B], count: 4) == [1, -2, 0.33325195, 65504])
        // BF16 is the top 16 bits of a float32: 0x3F80 = 1, 0xC0A0 = -5, 0x4049 = 3.140625.
        #expect(dequantize(.bf16, [0x80, 0x3F, 0xA0, 0xC0, 0x49, 0x40], count: 3) == [1, -5, 3.140625])
    }

    @Test func q8_0IsScaleTimesSignedByte() {
        let quants: [Int8] = (0..<32).map { Int8($0 * 8 - 128) }  // -128 ... 120
        let block = Self.half(0.5) + quants.map { UInt8(bitPattern: $0) }
        #expect(dequantize(.q8_0, block, count: 32) == quants.map { 0.5 * Float($0) })
    }

    @Test func q4_0StoresLowNibblesFirstWithOffsetEight() {
        // Byte j holds value j in its low nibble and value j + 16 in its high nibble.
        let low = (0..<16).map { UInt8($0) }
        let high = (0..<16).map { UInt8(15 - $0) }
        let block = Self.half(2) + zip(low, high).map { $0 | ($1 << 4) }
        let expected = low.map { 2 * (Float($0) - 8) } + high.map { 2 * (Float($0) - 8) }
        #expect(dequantize(.q4_0, block, count: 32) == expected)
    }

    @Test func q4_1AddsTheMinimum() {
        let low = (0..<16).map { UInt8(($0 * 5) % 16) }
        let high = (0..<16).map { UInt8(($0 * 3 + 1) % 16) }
        let block = Self.half(0.25) + Self.half(-1) + zip(low, high).map { $0 | ($1 << 4) }
        let expected = low.map { 0.25 * Float($0) - 1 } + high.map { 0.25 * Float($0) - 1 }
        #expect(dequantize(.q4_1, block, count: 32) == expected)
    }

    /// Packs eight 6-bit (scale, min) pairs into the 12 bytes k-quants use: pairs 0-3 in the low 6
    /// bits of bytes 0-3 (scales) and 4-7 (mins); pairs 4-7 in the nibbles of bytes 8-11, their top
    /// two bits in the high bits of bytes 0-7.
    static func packScales(_ scales: [UInt8], _ mins: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            out[j] = scales[j]
            out[j + 4] = mins[j]
        }
        for j in 4..<8 {
            out[j + 4] = (scales[j] & 0x0F) | ((mins[j] & 0x0F) << 4)
            out[j - 4] |= (scales[j] >> 4) << 6
            out[j] |= (mins[j] >> 4) << 6
        }
        return out
    }

    static let scales: [UInt8] = [1, 2, 3, 4, 17, 33, 50, 63]

    /// Deterministic quants in 0..<modulus for 256 values, such that v and v + 32 (which share a
    /// byte in Q4_K/Q5_K) differ, so a swapped nibble cannot go unnoticed.
    static func quants(multiplier: Int, subBlockStep: Int, modulus: Int) -> [UInt8] {
        var q: [UInt8] = []
        for v in 0..<256 {
            let value: Int = (v * multiplier + (v / 32) * subBlockStep) % modulus
            q.append(UInt8(value))
        }
        return q
    }

    /// d = 0.5, dmin = 0.25: x = d·scale·q − dmin·min for the sub-block of 32 a value is in.
    static func kQuantExpected(_ q: [UInt8]) -> [Float] {
        var out: [Float] = []
        for v in 0..<256 {
            let scale = Float(scales[v / 32])
            let minimum = Float(mins[v / 32])
            out.append(0.5 * scale * Float(q[v]) - 0.25 * minimum)
        }
        return out
    }
    static let mins: [UInt8] = [0, 5, 10, 15, 20, 40, 60, 63]

    /// Position of value v (0..<256) in a Q4_K/Q5_K quant array: chunks of 64 values use 32 bytes,
    /// the first 32 values in low nibbles, the next 32 in high nibbles.
    static func nibblePosition(_ v: Int) -> (byte: Int, high: Bool) {
        (v / 64 * 32 + v % 32, v % 64 >= 32)
    }

    @Test func q4_KUsesSixBitScalesAndMinsPerSubBlock() {
        let q = Self.quants(multiplier: 7, subBlockStep: 3, modulus: 16)
        var qs = [UInt8](repeating: 0, count: 128)
        for v in 0..<256 {
            let (byte, high) = Self.nibblePosition(v)
            qs[byte] |= high ? q[v] << 4 : q[v]
        }
        let block = Self.half(0.5) + Self.half(0.25) + Self.packScales(Self.scales, Self.mins) + qs
        let expected = Self.kQuantExpected(q)
        #expect(dequantize(.q4_K, block, count: 256) == expected)
    }

    @Test func q5_KTakesTheFifthBitFromQh() {
        let q = Self.quants(multiplier: 11, subBlockStep: 5, modulus: 32)
        var qs = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 32)
        for v in 0..<256 {
            let (byte, high) = Self.nibblePosition(v)
            qs[byte] |= high ? (q[v] & 15) << 4 : q[v] & 15
            // Sub-block s = v / 32 keeps its fifth bits in bit s of qh[v % 32].
            if q[v] >= 16 { qh[v % 32] |= 1 << (v / 32) }
        }
        let block = Self.half(0.5) + Self.half(0.25) + Self.packScales(Self.scales, Self.mins) + qh + qs
        let expected = Self.kQuantExpected(q)
        #expect(dequantize(.q5_K, block, count: 256) == expected)
    }

    @Test func q6_KCombinesFourLowAndTwoHighBitsMinus32() {
        let q = (0..<256).map { UInt8(($0 * 13 + 5) % 64) }
        let subScales: [Int8] = [1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16]
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        for v in 0..<256 {
            // Each half of 128 values: quarter k (0..<4) of 32 values; quarters 0/1 use low nibbles of
            // ql[l] / ql[l + 32], quarters 2/3 the high nibbles; qh[l] holds 2 bits per quarter.
            let half = v / 128, w = v % 128, quarter = w / 32, l = w % 32
            let lowIndex = half * 64 + l + (quarter % 2 == 1 ? 32 : 0)
            ql[lowIndex] |= quarter < 2 ? q[v] & 15 : (q[v] & 15) << 4
            qh[half * 32 + l] |= (q[v] >> 4) << (2 * quarter)
        }
        let block = ql + qh + subScales.map { UInt8(bitPattern: $0) } + Self.half(0.5)
        let expected = (0..<256).map { v in 0.5 * Float(subScales[v / 16]) * Float(Int(q[v]) - 32) }
        #expect(dequantize(.q6_K, block, count: 256) == expected)
    }

    @Test func byteCountsFollowBlockSizes() {
        #expect(ElementType.q4_1.byteCount(elements: 64) == 40)
        #expect(ElementType.q6_K.byteCount(elements: 512) == 420)
        #expect(ElementType.q4_K.byteCount(elements: 100) == nil)
        #expect(ElementType(ggmlTypeID: 30) == .bf16)
        #expect(ElementType.ggmlName(of: 6) == "Q5_0")
    }
}
