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

/// Keys and values of every layer for positions `0..<count`, each `[capacity × kvHeads·d]` row-major,
/// in Float32 or IEEE half (`precision`). A class: the cache is one mutable buffer shared by a
/// forward pass and its caller. `truncate` rewinds it, which lets several continuations share one
/// computed prefix.
///
/// A half cache rounds each key and value once, when it is written (to nearest even; a finite
/// value beyond the half range saturates to ±65504 and is counted in `saturatedValues`). Passes of
/// several rows compute in a Float32 window of one layer (`floatRows`, `commit`, `loadWindow`), so
/// every pass — prefill, decoding, packed scoring — attends to the same rounded values.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let width: Int
    public let layerCount: Int
    public let precision: KVCachePrecision
    public private(set) var count = 0
    /// Keys and values that were beyond the half range when written (a half cache only): each was
    /// stored as ±65504 instead of an infinity.
    public private(set) var saturatedValues = 0

    /// One layer's stored rows, from position 0.
    enum Rows {
        case float32(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>)
        case float16(keys: UnsafeMutablePointer<UInt16>, values: UnsafeMutablePointer<UInt16>)
    }

    private let floatKeys: [UnsafeMutablePointer<Float>]
    private let floatValues: [UnsafeMutablePointer<Float>]
    private let halfKeys: [UnsafeMutablePointer<UInt16>]
    private let halfValues: [UnsafeMutablePointer<UInt16>]
    /// A half cache's Float32 window `[capacity × width]` (keys, values): one layer at a time,
    /// allocated on first use.
    private var window: (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>)?

    public init(configuration: LlamaConfiguration, capacity: Int, precision: KVCachePrecision = .float32) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.precision = precision
        width = configuration.keyValueWidth
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

    /// Float32 keys and values of layer `l` `[capacity × width]` from position 0, where a pass
    /// writes its new rows (then `commit`s them) and where attention over several rows reads
    /// (after `loadWindow`): the storage itself for a Float32 cache, the window for a half one.
    func floatRows(layer l: Int) -> (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        switch precision {
        case .float32: return (floatKeys[l], floatValues[l])
        case .float16:
            if let window { return window }
            let made = (keys: AlignedAllocation.floats(capacity * width), values: AlignedAllocation.floats(capacity * width))
            window = made
            return made
        }
    }

    /// Stores the rows `positions` a pass wrote through `floatRows(layer: l)`. A half cache rounds
    /// them and puts the rounded values back into the window, so this pass attends to what later
    /// ones will read.
    func commit(layer l: Int, positions: Range<Int>) {
        guard precision == .float16, !positions.isEmpty, let window else { return }
        let offset = positions.lowerBound * width, n = positions.count * width
        saturatedValues += DecodeKernels.roundToHalf(window.keys + offset, into: halfKeys[l] + offset, count: n)
        saturatedValues += DecodeKernels.roundToHalf(window.values + offset, into: halfValues[l] + offset, count: n)
        DecodeKernels.widen(halfKeys[l] + offset, format: .float16, count: n, into: window.keys + offset)
        DecodeKernels.widen(halfValues[l] + offset, format: .float16, count: n, into: window.values + offset)
    }

    /// Fills the window with layer `l`'s stored rows `positions` (a half cache; a Float32 cache
    /// reads its storage directly).
    func loadWindow(layer l: Int, positions: Range<Int>) {
        guard precision == .float16, !positions.isEmpty else { return }
        let window = floatRows(layer: l)
        let offset = positions.lowerBound * width, n = positions.count * width
        DecodeKernels.widen(halfKeys[l] + offset, format: .float16, count: n, into: window.keys + offset)
        DecodeKernels.widen(halfValues[l] + offset, format: .float16, count: n, into: window.values + offset)
    }

    /// Stores one key and one value row `[width]` at `position` of layer `l` (a batched decoding step).
    func store(layer l: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let offset = position * width
        switch precision {
        case .float32:
            (floatKeys[l] + offset).update(from: key, count: width)
            (floatValues[l] + offset).update(from: value, count: width)
        case .float16:
            saturatedValues += DecodeKernels.roundToHalf(key, into: halfKeys[l] + offset, count: width)
            saturatedValues += DecodeKernels.roundToHalf(value, into: halfValues[l] + offset, count: width)
        }
    }

    /// The stored key and value of layer `l` at `position`, widened to Float32 (tests, inspection).
    public func entry(layer l: Int, position: Int) -> (key: [Float], value: [Float]) {
        precondition(l >= 0 && l < layerCount && position >= 0 && position < capacity)
        let offset = position * width
        switch precision {
        case .float32:
            return (Array(UnsafeBufferPointer(start: floatKeys[l] + offset, count: width)),
                    Array(UnsafeBufferPointer(start: floatValues[l] + offset, count: width)))
        case .float16:
            var key = [Float](repeating: 0, count: width), value = key
            key.withUnsafeMutableBufferPointer { DecodeKernels.widen(halfKeys[l] + offset, format: .float16, count: width, into: $0.baseAddress!) }
            value.withUnsafeMutableBufferPointer { DecodeKernels.widen(halfValues[l] + offset, format: .float16, count: width, into: $0.baseAddress!) }
            return (key, value)
        }
    }
}
