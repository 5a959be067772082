import CKernels
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

    /// Runs `body` on chunks of at most `chunk` items that cover `0..<count` once, over the active
    /// workers (as many as `partCount(count, minimum:)` gives), balanced by stealing. `0..<count`
    /// is cut into one contiguous segment per part; the worker that claims a part runs its
    /// segment's chunks from the front, then takes chunks from the back of the segment with the
    /// most left. A worker thus streams one contiguous run of memory, and a slower worker (another
    /// process on its core, or a host that gives one core less memory bandwidth) is relieved of the
    /// end of its segment instead of being waited for.
    public static func forEachStealing(_ count: Int, minimum: Int, chunk: Int, _ body: (Range<Int>) -> Void) {
        let parts = partCount(count, minimum: minimum)
        if parts <= 1 {
            body(0..<count)
            return
        }
        let chunk = min(max(1, chunk), (count + parts - 1) / parts)  // at least one chunk per part
        let chunks = (count + chunk - 1) / chunk
        precondition(chunks < Int(UInt32.max), "\(count) items in chunks of \(chunk) are too many chunks to claim")
        let stride = 8  // one cache line (8 words) per segment: the owners' claims never share a line
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: parts * stride) { segments in
            for p in 0..<parts {
                let mine = part(p, of: parts, count: chunks)
                segments[p * stride] = UInt64(mine.lowerBound) << 32 | UInt64(mine.upperBound)
            }
            let box = UncheckedSendableBox(segments.baseAddress!)  // claimed atomically; each chunk runs once
            forEach(parts) { p in
                let segments = box.value
                while true {
                    let c = lowrank_claim_front(segments + p * stride)
                    if c < 0 { break }
                    let lower = Int(c) * chunk
                    body(lower..<min(count, lower + chunk))
                }
                while true {
                    var victim = -1, most: Int64 = 0
                    for q in 0..<parts where q != p {
                        let left = lowrank_segment_remaining(segments + q * stride)
                        if left > most { (victim, most) = (q, left) }
                    }
                    if victim < 0 { return }
                    let c = lowrank_claim_back(segments + victim * stride)
                    if c < 0 { continue }
                    let lower = Int(c) * chunk
                    body(lower..<min(count, lower + chunk))
                }
            }
        }
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
