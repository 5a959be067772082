import LinearAlgebra

/// Keys and values of every layer for positions `0..<count`, each `[capacity × kvHeads·d]` row-major.
/// A class: the cache is one mutable buffer shared by a forward pass and its caller. `truncate`
/// rewinds it, which lets several continuations share one computed prefix.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let width: Int
    public let layerCount: Int
    public private(set) var count = 0
    let keys: [UnsafeMutablePointer<Float>]
    let values: [UnsafeMutablePointer<Float>]

    public init(configuration: LlamaConfiguration, capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        width = configuration.keyValueWidth
        layerCount = configuration.layerCount
        keys = (0..<layerCount).map { _ in AlignedAllocation.floats(capacity * configuration.keyValueWidth) }
        values = (0..<layerCount).map { _ in AlignedAllocation.floats(capacity * configuration.keyValueWidth) }
    }

    /// Bytes a cache of `capacity` positions holds (keys and values, Float32, every layer).
    public static func byteCount(configuration c: LlamaConfiguration, capacity: Int) -> Int {
        c.layerCount * 2 * capacity * c.keyValueWidth * MemoryLayout<Float>.size
    }

    deinit {
        for p in keys { AlignedAllocation.deallocate(p) }
        for p in values { AlignedAllocation.deallocate(p) }
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
}
