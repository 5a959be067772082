import Testing
import LinearAlgebra
import TestSupport

@Suite("Gram accumulation matches its reference twin")
struct GramTests {
    @Test("the parallel block-split XᵀX equals plain Float64 loops in the lower triangle", arguments: [(7, 3), (130, 129), (300, 257)])
    func parallelGramMatchesLoops(shape: (rows: Int, columns: Int)) {
        var random = SeededGenerator(seed: 41)
        let x = (0..<(shape.rows * shape.columns)).map { _ in random.uniform(2) }
        var g = Matrix<Double>.zeros(rows: shape.columns, columns: shape.columns)
        var scratch: [Double] = []
        // Two calls: accumulation (β = 1) must add, not overwrite.
        x.withUnsafeBufferPointer { Decompositions.accumulateGram(&g, $0.baseAddress!, rows: shape.rows, columns: shape.columns, scratch: &scratch) }
        x.withUnsafeBufferPointer { Decompositions.accumulateGram(&g, $0.baseAddress!, rows: shape.rows, columns: shape.columns, scratch: &scratch) }
        let reference = Decompositions.gramReference(x, rows: shape.rows, columns: shape.columns)
        var worst = 0.0
        for i in 0..<shape.columns {
            for j in 0...i { worst = max(worst, abs(g[i, j] - 2 * reference[i, j]) / max(1, abs(reference[i, j]))) }
        }
        // Products of Float32 values are exact in Float64; only summation order differs.
        #expect(worst < 1e-12)
    }

    @Test("the parallel row-split AᵀB of two activation streams equals plain Float64 loops", arguments: [(7, 3), (130, 129), (300, 257)])
    func parallelCrossMatchesLoops(shape: (rows: Int, columns: Int)) {
        var random = SeededGenerator(seed: 43)
        let a = (0..<(shape.rows * shape.columns)).map { _ in random.uniform(2) }
        let b = (0..<(shape.rows * shape.columns)).map { _ in random.uniform(2) }
        var c = Matrix<Double>.zeros(rows: shape.columns, columns: shape.columns)
        var scratch: [Double] = []
        // Two calls: accumulation (β = 1) must add, not overwrite; A and B must not be swapped (AᵀB ≠ BᵀA).
        for _ in 0..<2 {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { Decompositions.accumulateCross(&c, ap.baseAddress!, $0.baseAddress!, rows: shape.rows, columns: shape.columns, scratch: &scratch) }
            }
        }
        let reference = Decompositions.crossReference(a, b, rows: shape.rows, columns: shape.columns)
        var worst = 0.0
        for i in 0..<shape.columns {
            for j in 0..<shape.columns { worst = max(worst, abs(c[i, j] - 2 * reference[i, j]) / max(1, abs(reference[i, j]))) }
        }
        #expect(worst < 1e-12)
    }
}
