import Testing
import LinearAlgebra
import TestSupport

@Suite("Vector kernels match their reference twins")
struct VectorMathTests {
    func withBuffer<R>(_ values: [Float], _ body: (UnsafeMutablePointer<Float>) -> R) -> (R, [Float]) {
        var copy = values
        let r = copy.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        return (r, copy)
    }

    @Test func fastExpIsWithinTwoTenMillionthsRelative() {
        var x: Float = -87
        var worst: Float = 0
        while x < 88 {
            let fast = VectorMath.exp(x)
            let exact = Reference.exp(x)
            worst = max(worst, abs(fast - exact) / exact)
            x += 0.0137
        }
        #expect(worst < 2e-7, "worst relative error \(worst)")
        #expect(VectorMath.exp(0) == 1)
        #expect(VectorMath.exp(-1000) < 1e-37)
    }

    @Test(arguments: [1, 15, 16, 33, 577])
    func softmaxMatchesReference(count: Int) {
        var rng = SeededGenerator(seed: UInt64(count))
        let x = rng.floats(count, scale: 20)
        let (lse, y) = withBuffer(x) { VectorMath.softmax($0, count: count) }
        for (a, b) in zip(y, Reference.softmax(x)) { #expect(abs(a - b) <= 1e-6 * max(1, b) + 1e-7) }
        #expect(abs(Double(lse) - Reference.logSumExp(x)) < 1e-5)
        #expect(abs(x.withUnsafeBufferPointer { VectorMath.logSumExp($0.baseAddress!, count: count) } - Reference.logSumExp(x)) < 1e-9 * 100)
    }

    /// The last count % 16 values are exponentiated as one padded vector: each must get the bits
    /// the one-value `exp` gives it (lane for lane), the padding must not reach the sum, and
    /// nothing past `count` may be written.
    @Test func exponentiateGivesEveryValueTheOneValueExpBitsForEveryTailLength() {
        var rng = SeededGenerator(seed: 41)
        for count in 1...49 {
            let x = rng.floats(count, scale: 6)
            let shift = x.max()!
            let (sum, y) = withBuffer(x + [1234]) { VectorMath.exponentiate($0, count: count, shift: shift) }
            for i in 0..<count {
                #expect(y[i].bitPattern == VectorMath.exp(x[i] - shift).bitPattern, "count \(count), value \(i)")
            }
            #expect(y[count] == 1234, "count \(count): the value after the last was written")
            let expected = (0..<count).reduce(0.0) { $0 + Double(VectorMath.exp(x[$1] - shift)) }
            #expect(abs(Double(sum) - expected) <= 1e-6 * expected, "count \(count): sum \(sum), expected \(expected)")
        }
    }

    @Test(arguments: [7, 64, 576])
    func rmsNormMatchesReference(count: Int) {
        var rng = SeededGenerator(seed: 9)
        let x = rng.floats(count, scale: 3)
        let w = rng.floats(count, scale: 2)
        var y = [Float](repeating: 0, count: count)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { VectorMath.rmsNorm(xp.baseAddress!, weight: wp.baseAddress!, epsilon: 1e-5, count: count, into: $0.baseAddress!) }
            }
        }
        for (a, b) in zip(y, Reference.rmsNorm(x, weight: w, epsilon: 1e-5)) { #expect(abs(a - b) <= 2e-6 * max(1, abs(b))) }
    }

    @Test func siluMultiplyMatchesReference() {
        var rng = SeededGenerator(seed: 4)
        let g = rng.floats(37, scale: 12)
        let u = rng.floats(37, scale: 2)
        let (_, y) = withBuffer(g) { gp in u.withUnsafeBufferPointer { VectorMath.siluMultiply(gp, $0.baseAddress!, count: 37) } }
        for i in 0..<37 {
            let expected = Reference.silu(g[i]) * u[i]
            #expect(abs(y[i] - expected) <= 1e-6 * max(1, abs(expected)))
        }
    }

    @Test func maximumAndSumOfSquaresCoverTheTail() {
        let x: [Float] = (0..<19).map { Float($0) - 3 }
        x.withUnsafeBufferPointer {
            #expect(VectorMath.maximum($0.baseAddress!, count: 19) == 15)
            #expect(VectorMath.sumOfSquares($0.baseAddress!, count: 19) == x.reduce(0) { $0 + $1 * $1 })
        }
    }
}

@Suite("BLAS wrappers match plain loops")
struct BLASTests {
    @Test func gemmNTWithLeadingDimensionsMatchesReference() {
        var rng = SeededGenerator(seed: 2)
        let m = 5, n = 7, k = 9
        // A is embedded in a wider buffer (lda 12) to check leading dimensions.
        let wide = rng.floats(m * 12, scale: 1)
        let a = (0..<m).flatMap { Array(wide[($0 * 12)..<($0 * 12 + k)]) }
        let b = rng.floats(n * k, scale: 1)
        var c = [Float](repeating: 0, count: m * n)
        wide.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer {
                    BLAS.gemmNT(m: m, n: n, k: k, a: ap.baseAddress!, lda: 12, b: bp.baseAddress!, ldb: k, c: $0.baseAddress!, ldc: n)
                }
            }
        }
        for (x, y) in zip(c, Reference.matmulNT(a, b, m: m, n: n, k: k)) { #expect(abs(x - y) < 1e-5) }
    }

    @Test func gemvAndTransposedGemvMatchReference() {
        var rng = SeededGenerator(seed: 3)
        let rows = 6, columns = 4
        let a = rng.floats(rows * columns, scale: 1)
        let x = rng.floats(columns, scale: 1)
        let z = rng.floats(rows, scale: 1)
        var y = [Float](repeating: 0, count: rows)
        var yt = [Float](repeating: 0, count: columns)
        a.withUnsafeBufferPointer { ap in
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { BLAS.gemv(rows: rows, columns: columns, a: ap.baseAddress!, lda: columns, x: xp.baseAddress!, y: $0.baseAddress!) } }
            z.withUnsafeBufferPointer { zp in yt.withUnsafeMutableBufferPointer { BLAS.gemvTransposed(rows: rows, columns: columns, a: ap.baseAddress!, lda: columns, x: zp.baseAddress!, y: $0.baseAddress!) } }
        }
        for r in 0..<rows {
            let expected = (0..<columns).reduce(Float(0)) { $0 + a[r * columns + $1] * x[$1] }
            #expect(abs(y[r] - expected) < 1e-5)
        }
        for col in 0..<columns {
            let expected = (0..<rows).reduce(Float(0)) { $0 + a[$1 * columns + col] * z[$1] }
            #expect(abs(yt[col] - expected) < 1e-5)
        }
    }

    @Test func matrixStoresRowMajor() {
        var m = Matrix<Float>.zeros(rows: 2, columns: 3)
        m[1, 2] = 5
        #expect(m.storage == [0, 0, 0, 0, 0, 5])
        #expect(m.row(1) == [0, 0, 5])
    }
}
