/// A fixed-size, immutable buffer of plain values starting on a cache-line boundary (64 bytes).
///
/// Holds the weights of a runtime model (half-precision values always, Float32 ones once copied
/// by `WeightMatrix.cacheLineAligned`). Why: the decode kernels stream weights in
/// 64-byte vectors, and Swift arrays (and `allocate`) start 48 bytes into a line for large sizes,
/// so every 512-bit load would span two cache lines. On the
/// project's AMD EPYC (Zen 4) the row product streamed SmolLM2's 30 layers at 27 GB/s from such
/// storage and at 40 GB/s from aligned storage, one thread, same kernel (docs/BENCHMARKS.md). Rows
/// whose byte length is a multiple of 64 (576, 1536 or 192 Float32 values; 576 or 1536 halves)
/// then all start on a line.
public final class AlignedBuffer<Element: BitwiseCopyable>: @unchecked Sendable {  // never written after init
    public static var alignment: Int { 64 }

    public let count: Int
    private let base: UnsafeMutablePointer<Element>

    /// A copy of `values` (an array, a buffer, or a lazy map converting as it copies).
    public init(_ values: some Collection<Element>) {
        count = values.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(1, count * MemoryLayout<Element>.stride), alignment: Self.alignment)
            .bindMemory(to: Element.self, capacity: max(1, count))
        let (_, copied) = UnsafeMutableBufferPointer(start: base, count: count).initialize(from: values)
        precondition(copied == count, "the collection gave \(copied) of its \(count) values")
    }

    /// `count` elements written by `fill`, which must initialise all of them. Unlike the
    /// collection init, the loop is the caller's and specialised there: a lazy map passed across
    /// the module boundary ran unspecialised, a metadata lookup per element (7% of a short f16
    /// `bench` went to rounding weights that way).
    public init(count: Int, initializingWith fill: (UnsafeMutableBufferPointer<Element>) -> Void) {
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(1, count * MemoryLayout<Element>.stride), alignment: Self.alignment)
            .bindMemory(to: Element.self, capacity: max(1, count))
        fill(UnsafeMutableBufferPointer(start: base, count: count))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    @inline(__always)
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }
}

extension AlignedBuffer: Equatable where Element: Equatable {
    /// Equal values, element by element (so Float NaNs are never equal, as in arrays).
    public static func == (a: AlignedBuffer, b: AlignedBuffer) -> Bool {
        a === b || (a.count == b.count && a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in x.elementsEqual(y) } })
    }
}

/// Cache-line aligned scratch for buffers the engine owns by pointer (the KV cache, workspaces):
/// decode attention streams each cached key and value row in 64-byte vectors, as the products
/// stream weights (see `AlignedBuffer`).
public enum AlignedAllocation {
    /// `count` (at least one) zeroed Float32 values on a 64-byte boundary; free with `deallocate`.
    public static func floats(_ count: Int) -> UnsafeMutablePointer<Float> { zeroed(count, 0) }

    /// `count` (at least one) zeroed 16-bit values (half-precision bit patterns) on a 64-byte boundary.
    public static func halves(_ count: Int) -> UnsafeMutablePointer<UInt16> { zeroed(count, 0) }

    private static func zeroed<T>(_ count: Int, _ zero: T) -> UnsafeMutablePointer<T> {
        let n = max(1, count)
        let p = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<T>.stride, alignment: AlignedBuffer<Float>.alignment)
            .bindMemory(to: T.self, capacity: n)
        p.initialize(repeating: zero, count: n)
        return p
    }

    public static func deallocate(_ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).deallocate() }
    public static func deallocate(_ p: UnsafeMutablePointer<UInt16>) { UnsafeMutableRawPointer(p).deallocate() }
}
