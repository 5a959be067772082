import Testing
import LinearAlgebra
import Llama
import TestSupport

/// Half-precision weights in memory, and Float32 weights once `cacheLineAligned`, start on a cache
/// line (`AlignedBuffer`), and storing them there changes no value.
@Suite("Weight storage")
struct WeightStorageTests {
    @Test(arguments: [WeightPrecision.float16, .bfloat16])
    func halfPrecisionWeightsInMemoryStartOnACacheLineAndKeepTheirValues(precision: WeightPrecision) {
        let m = Matrix(rows: 3, columns: 5, storage: (0..<15).map { Float($0) * 0.25 - 1 })  // exact in every precision
        let w = WeightMatrix(m, precision: precision)
        #expect(w.isCacheLineAligned)
        #expect(w.matrix == m)
        #expect(WeightMatrix(m).converted(to: precision).isCacheLineAligned)
        #expect(WeightMatrix(m).cacheLineAligned().converted(to: precision) == w)
    }

    @Test func float32WeightsCopiedOntoACacheLineKeepTheirValuesAndNoLongerShareTheArray() {
        var rng = SeededGenerator(seed: 5)
        for (rows, columns) in [(1, 1), (3, 5), (7, 576), (64, 33)] {
            let m = Matrix(rows: rows, columns: columns, storage: rng.floats(rows * columns, scale: 2))
            let shared = WeightMatrix(m)
            let aligned = shared.cacheLineAligned()
            #expect(aligned.isCacheLineAligned && aligned == shared && aligned.matrix == m)
            #expect(!aligned.sharesStorage(with: shared) && aligned.sharesStorage(with: aligned.cacheLineAligned()))
            var row = [Float](repeating: .nan, count: columns)
            aligned.widenRow(rows - 1, into: &row)
            #expect(row == Array(m.storage[((rows - 1) * columns)...]))
        }
    }
}
