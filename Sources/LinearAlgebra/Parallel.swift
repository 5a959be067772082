import Dispatch

/// Work split across a fixed number of workers with `DispatchQueue.concurrentPerform`. BLAS itself
/// runs single-threaded (see `BLASRuntime`); parallelism is at the level of heads and column blocks.
public enum Parallel {
    nonisolated(unsafe) private static var configuredWorkers = 0
    nonisolated(unsafe) private static var pool: WorkerPool?

    /// Number of workers; defaults to the active processor count (capped at 8). Set it before the
    /// first parallel region (the pool is created once).
    public static var workers: Int {
        get { configuredWorkers > 0 ? configuredWorkers : defaultWorkers }
        set {
            configuredWorkers = max(1, newValue)
            pool = nil
        }
    }

    nonisolated(unsafe) private static var limit: Int?
    /// Read once: `sysconf(_SC_NPROCESSORS_ONLN)` reads sysfs on every call, and the regions ask
    /// for the worker count several hundred times per decoded token (measured: a visible share of
    /// decode time in `perf`, in kernel path lookups).
    private static let defaultWorkers = min(8, ProcessInfo_activeProcessorCount())

    /// Workers the parallel regions use now, at most `workers` (buffers are sized for `workers`).
    /// Decoding lowers it to 1 when measurement shows that the other cores are busy elsewhere
    /// (`DecodeThreadGovernor`); nil restores `workers`.
    public static var activeWorkers: Int {
        get { min(workers, limit ?? workers) }
        set { limit = max(1, newValue) }
    }

    public static func resetActiveWorkers() { limit = nil }

    /// Runs `body(i)` for i in 0..<iterations, spread over the active workers (a persistent
    /// `WorkerPool`). Sequential for one iteration or one active worker.
    public static func forEach(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 || activeWorkers <= 1 {
            for i in 0..<iterations { body(i) }
            return
        }
        if pool == nil {
            BLASRuntime.useOneThreadUnlessChosen()
            pool = WorkerPool(helpers: workers - 1)
        }
        pool!.run(iterations, body)
    }

    /// How many contiguous parts to cut `count` items into: one per worker, each at least `minimum`
    /// items. (Finer parts were measured slower for streaming kernels: docs/BENCHMARKS.md.)
    @inline(__always)
    public static func partCount(_ count: Int, minimum: Int) -> Int {
        max(1, min(activeWorkers, count / max(1, minimum)))
    }

    /// Runs `body` on contiguous parts of `0..<count` over the workers, each part at least
    /// `minimum` items (one part, on the caller, below that): element-wise passes over many rows
    /// (prefill's norms, activations and residual adds), which on one thread left the other
    /// workers waiting (`perf`: the SwiGLU pass alone was 4% of a 512-token prefill's samples).
    @inline(__always)
    public static func forEachPart(_ count: Int, minimum: Int, _ body: (Range<Int>) -> Void) {
        let parts = partCount(count, minimum: minimum)
        if parts <= 1 {
            body(0..<count)
            return
        }
        forEach(parts) { p in body(part(p, of: parts, count: count)) }
    }

    /// Part `p` of `parts` equal contiguous parts of `0..<count` (no allocation, for per-token use).
    @inline(__always)
    public static func part(_ p: Int, of parts: Int, count: Int) -> Range<Int> {
        (count * p / parts)..<(count * (p + 1) / parts)
    }
}

/// Lets a non-Sendable closure or pointer cross into `concurrentPerform`; each use is documented
/// at the call site (disjoint writes per iteration).
public struct UncheckedSendableBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
import Glibc
func ProcessInfo_activeProcessorCount() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
#endif
