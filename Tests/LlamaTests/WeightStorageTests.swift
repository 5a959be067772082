import Testing
import LinearAlgebra
import Llama

/// Half-precision weights in memory start on a cache line (`AlignedBuffer`), and storing them there
/// changes no value.
@Suite("Weight storage")
struct WeightStorageTests {
    @Test(arguments: [WeightPrecision.float16, .bfloat16])
    func halfPrecisionWeightsInMemoryStartOnACacheLineAndKeepTheirValues(precision: WeightPrecision) {
        let m = Matrix(rows: 3, columns: 5, storage: (0..<15).map { Float($0) * 0.25 - 1 })  // exact in every precision
        let w = WeightMatrix(m, precision: precision)
        #expect(w.isCacheLineAligned)
        #expect(w.matrix == m)
        #expect(WeightMatrix(m).converted(to: precision).isCacheLineAligned)
    }
}
