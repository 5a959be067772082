import Testing
import LinearAlgebra

/// Cache-line aligned storage: the decode kernels' 64-byte loads span one line only when the
/// storage starts on one (on Zen 4 misaligned rows streamed at two thirds of the bandwidth).
@Suite("Aligned buffers")
struct AlignedBufferTests {
    @Test(arguments: [0, 1, 7, 576, 1_000_003])
    func anAlignedBufferStartsOnACacheLineAndHoldsACopyOfItsValues(count: Int) {
        let values = (0..<count).map { Float($0) * 0.5 - 3 }
        let buffer = AlignedBuffer(values)
        #expect(buffer.count == count)
        buffer.withUnsafeBufferPointer { p in
            if let base = p.baseAddress { #expect(Int(bitPattern: base) % 64 == 0) }
            #expect(Array(p) == values)
        }
        let halves = AlignedBuffer(values.map { Float16($0).bitPattern })
        halves.withUnsafeBufferPointer { p in
            if let base = p.baseAddress { #expect(Int(bitPattern: base) % 64 == 0) }
        }
    }

    @Test func buffersAreEqualExactlyWhenTheirValuesAre() {
        let a = AlignedBuffer<Float>([1, 2, 3]), b = AlignedBuffer<Float>([1, 2, 3]), c = AlignedBuffer<Float>([1, 2, 4])
        #expect(a == b)
        #expect(a != c)
        #expect(a != AlignedBuffer<Float>([1, 2]))
        #expect(AlignedBuffer<Float>([.nan]) != AlignedBuffer<Float>([.nan]))  // as arrays compare
    }

    @Test func scratchAllocationsAreZeroedAndAligned() {
        for n in [0, 1, 192 * 2048 + 5] {
            let p = AlignedAllocation.floats(n)
            defer { AlignedAllocation.deallocate(p) }
            #expect(Int(bitPattern: p) % 64 == 0)
            #expect(UnsafeBufferPointer(start: p, count: max(1, n)).allSatisfy { $0 == 0 })
        }
    }
}
