import LinearAlgebra

/// How a cache stores keys and values. Attention always computes in Float32; a half-precision
/// cache halves the bytes each decoded token reads from it (llama.cpp's default cache type is F16).
public enum KVCachePrecision: String, Sendable, Codable, CaseIterable {
    case float32 = "f32"
    case float16 = "f16"

    public var bytesPerValue: Int { self == .float32 ? 4 : 2 }

    /// The cache that goes with weights stored at `weights`: half-precision weights get a half
    /// cache, Float32 weights a Float32 one (the run that reproduces the references exactly).
    public init(following weights: WeightPrecision) {
        self = weights == .float32 ? .float32 : .float16
    }
}

/// Keys and values of every layer for positions `0..<count`, in Float32 or IEEE half (`precision`).
/// Each layer stores its keys (and its values) head-major, `[kvHeads × capacity × d]`: one key
/// head's rows are contiguous, at `headStride` from the previous head's. Decoding reads one key
/// head's rows in a pass, and read contiguously they came from memory in half the time of rows
/// strided by the key width (docs/BENCHMARKS.md, "A head-major KV cache"). Passes compute new keys
/// and values position-major, as projections write them, and `write` scatters them.
///
/// A class: the cache is one mutable buffer shared by a forward pass and its caller. `truncate`
/// rewinds it, which lets several continuations share one computed prefix.
///
/// A half cache rounds each key and value once, when it is written (to nearest even; a finite
/// value beyond the half range saturates to ±65504 and is counted in `saturatedValues`). Passes of
/// several rows attend in a Float32 window of one layer widened from the stored halves
/// (`floatLayer`), so every pass — prefill, decoding, packed scoring — attends to the same rounded
/// values.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    /// Values per position and layer, keys or values: `kvHeads · d`.
    public let width: Int
    public let headDimension: Int
    public let keyValueHeads: Int
    public let layerCount: Int
    public let precision: KVCachePrecision
    public private(set) var count = 0
    /// Keys and values that were beyond the half range when written (a half cache only): each was
    /// stored as ±65504 instead of an infinity.
    public private(set) var saturatedValues = 0

    /// Elements between the first rows of consecutive key heads (or value heads) of one layer.
    public var headStride: Int { capacity * headDimension }

    /// One layer's stored keys and values `[kvHeads × capacity × d]` each, from position 0 of head 0.
    enum Rows {
        case float32(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>)
        case float16(keys: UnsafeMutablePointer<UInt16>, values: UnsafeMutablePointer<UInt16>)
    }

    private let floatKeys: [UnsafeMutablePointer<Float>]
    private let floatValues: [UnsafeMutablePointer<Float>]
    private let halfKeys: [UnsafeMutablePointer<UInt16>]
    private let halfValues: [UnsafeMutablePointer<UInt16>]
    /// A half cache's Float32 window `[kvHeads × capacity × d]` (keys, values): one layer at a time,
    /// allocated on first use.
    private var window: (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>)?

    public init(configuration: LlamaConfiguration, capacity: Int, precision: KVCachePrecision = .float32) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.precision = precision
        width = configuration.keyValueWidth
        headDimension = configuration.headDimension
        keyValueHeads = configuration.keyValueHeads
        layerCount = configuration.layerCount
        let n = capacity * configuration.keyValueWidth
        switch precision {
        case .float32:
            floatKeys = (0..<layerCount).map { _ in AlignedAllocation.floats(n) }
            floatValues = (0..<layerCount).map { _ in AlignedAllocation.floats(n) }
            halfKeys = []; halfValues = []
        case .float16:
            floatKeys = []; floatValues = []
            halfKeys = (0..<layerCount).map { _ in AlignedAllocation.halves(n) }
            halfValues = (0..<layerCount).map { _ in AlignedAllocation.halves(n) }
        }
    }

    /// Bytes a cache of `capacity` positions holds (keys and values, every layer).
    public static func byteCount(configuration c: LlamaConfiguration, capacity: Int, precision: KVCachePrecision = .float32) -> Int {
        c.layerCount * 2 * capacity * c.keyValueWidth * precision.bytesPerValue
    }

    deinit {
        for p in floatKeys + floatValues { AlignedAllocation.deallocate(p) }
        for p in halfKeys + halfValues { AlignedAllocation.deallocate(p) }
        if let window {
            AlignedAllocation.deallocate(window.keys)
            AlignedAllocation.deallocate(window.values)
        }
    }

    /// Forget positions from `length` on.
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= count, "cannot truncate a cache of \(count) positions to \(length)")
        count = length
    }

    public func reset() { count = 0 }

    func advance(by n: Int) {
        precondition(count + n <= capacity)
        count += n
    }

    /// Layer `l`'s stored keys and values, for decoding kernels that read either precision.
    func rows(layer l: Int) -> Rows {
        switch precision {
        case .float32: .float32(keys: floatKeys[l], values: floatValues[l])
        case .float16: .float16(keys: halfKeys[l], values: halfValues[l])
        }
    }

    /// Stores the keys and values of positions `positions` of layer `l`, given position-major
    /// `[positions.count × width]` (row stride `width`), as a pass's projections wrote them. A half
    /// cache rounds them; attention then reads the stored values (`rows`, `floatLayer`), never these rows.
    func write(layer l: Int, positions: Range<Int>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        precondition(positions.lowerBound >= 0 && positions.upperBound <= capacity)
        let d = headDimension
        for (i, position) in positions.enumerated() {
            for head in 0..<keyValueHeads {
                let from = i * width + head * d, to = head * headStride + position * d
                switch precision {
                case .float32:
                    (floatKeys[l] + to).update(from: keys + from, count: d)
                    (floatValues[l] + to).update(from: values + from, count: d)
                case .float16:
                    saturatedValues += DecodeKernels.roundToHalf(keys + from, into: halfKeys[l] + to, count: d)
                    saturatedValues += DecodeKernels.roundToHalf(values + from, into: halfValues[l] + to, count: d)
                }
            }
        }
    }

    /// Float32 keys and values of layer `l` `[kvHeads × capacity × d]`, where attention over several
    /// rows reads positions `positions`: the storage itself for a Float32 cache; for a half one, its
    /// window, filled with those positions widened.
    func floatLayer(_ l: Int, positions: Range<Int>) -> (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32: return (floatKeys[l], floatValues[l])
        case .float16:
            let window = self.window ?? (keys: AlignedAllocation.floats(capacity * width), values: AlignedAllocation.floats(capacity * width))
            self.window = window
            guard !positions.isEmpty else { return window }
            let offset = positions.lowerBound * headDimension, n = positions.count * headDimension
            for head in 0..<keyValueHeads {
                let at = head * headStride + offset
                DecodeKernels.widen(halfKeys[l] + at, format: .float16, count: n, into: window.keys + at)
                DecodeKernels.widen(halfValues[l] + at, format: .float16, count: n, into: window.values + at)
            }
            return window
        }
    }

    /// The stored key and value of layer `l` at `position` `[width]` each, widened to Float32
    /// (tests, inspection).
    public func entry(layer l: Int, position: Int) -> (key: [Float], value: [Float]) {
        precondition(l >= 0 && l < layerCount && position >= 0 && position < capacity)
        var key = [Float](repeating: 0, count: width), value = key
        let d = headDimension
        for head in 0..<keyValueHeads {
            let at = head * headStride + position * d
            switch precision {
            case .float32:
                for j in 0..<d { key[head * d + j] = floatKeys[l][at + j]; value[head * d + j] = floatValues[l][at + j] }
            case .float16:
                key.withUnsafeMutableBufferPointer { DecodeKernels.widen(halfKeys[l] + at, format: .float16, count: d, into: $0.baseAddress! + head * d) }
                value.withUnsafeMutableBufferPointer { DecodeKernels.widen(halfValues[l] + at, format: .float16, count: d, into: $0.baseAddress! + head * d) }
            }
        }
        return (key, value)
    }
}
