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
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: parts * StealingSegments.stride) { storage in
            let segments = StealingSegments(storage.baseAddress!, parts: parts, chunks: chunks)
            forEach(parts) { p in
                while let c = segments.next(for: p) {
                    let lower = c * chunk
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

/// The claim state of a stealing split (`Parallel.forEachStealing`): chunks `0..<chunks` cut into
/// one contiguous segment per part, each segment an atomic (front << 32 | back) pair on its own
/// cache line. A part takes its own segment's chunks from the front, then the last chunk of the
/// segment with the most left, so each worker streams one contiguous run and stolen chunks come
/// from the far end of another's. Any number of threads may call `next` at once; each chunk is
/// returned once.
public struct StealingSegments: @unchecked Sendable {  // the storage is claimed atomically
    /// Words per segment: one 64-byte cache line, so the owners' claims never share a line.
    public static let stride = 8
    private let base: UnsafeMutablePointer<UInt64>
    public let parts: Int

    /// - Parameter storage: `parts · stride` words, alive while the segments are used.
    public init(_ storage: UnsafeMutablePointer<UInt64>, parts: Int, chunks: Int) {
        precondition(parts >= 1 && chunks >= 0 && chunks < Int(UInt32.max), "\(chunks) chunks in \(parts) parts cannot be claimed")
        base = storage
        self.parts = parts
        for p in 0..<parts {
            let mine = Parallel.part(p, of: parts, count: chunks)
            storage[p * Self.stride] = UInt64(mine.lowerBound) << 32 | UInt64(mine.upperBound)
        }
    }

    /// Segments given by their boundaries: part p starts on chunks `boundaries[p] ..< boundaries[p + 1]`
    /// (`parts + 1` ascending values from 0; a caller that weighs its chunks cuts them by bytes).
    public init(_ storage: UnsafeMutablePointer<UInt64>, boundaries: UnsafeBufferPointer<Int>) {
        let parts = boundaries.count - 1
        precondition(parts >= 1 && boundaries[0] == 0 && boundaries[parts] < Int(UInt32.max), "boundaries \(Array(boundaries)) cannot be claimed")
        base = storage
        self.parts = parts
        for p in 0..<parts {
            precondition(boundaries[p] <= boundaries[p + 1], "boundaries must ascend: \(Array(boundaries))")
            storage[p * Self.stride] = UInt64(boundaries[p]) << 32 | UInt64(boundaries[p + 1])
        }
    }

    /// The next chunk for part `p`, or nil when every segment is empty.
    public func next(for p: Int) -> Int? {
        let own = lowrank_claim_front(base + p * Self.stride)
        if own >= 0 { return Int(own) }
        while true {
            var victim = -1, most: Int64 = 0
            for q in 0..<parts where q != p {
                let left = lowrank_segment_remaining(base + q * Self.stride)
                if left > most { (victim, most) = (q, left) }
            }
            if victim < 0 { return nil }
            let stolen = lowrank_claim_back(base + victim * Self.stride)
            if stolen >= 0 { return Int(stolen) }
        }
    }
}

/// Per-item counts of chunks still running, for work that one worker finishes once every chunk of
/// an item is done (a low-rank member's partial outputs, summed in slot order by whichever worker
/// ran its last chunk). Each count sits on its own cache line; `finish` is an acquire-release
/// decrement, so the worker it answers true sees every write the item's other chunks made.
///
/// Before, the calling thread added every low-rank member's partials after the region while the
/// helper waited (`perf`, SVD-LLM 40% in half precision, AMD EPYC Zen 3: `VectorMath.add` 1.3% of
/// the calling thread's decode samples). Now a member's sums overlap the other worker's chunks.
/// Tokens/s against that, interleaved rounds of `bench --runs 3` (docs/BENCHMARKS.md, 2026-12-05):
/// half precision 1.12, 1.49, 1.03, 1.05, 1.07, 0.88; Float32 1.03, 0.99, 0.99, 1.03 (within noise).
public struct ChunkCountdowns: @unchecked Sendable {  // the storage is counted down atomically
    /// Words per count: one 64-byte cache line.
    public static let stride = 8
    private let base: UnsafeMutablePointer<Int64>

    /// - Parameter storage: `counts.count · stride` words, alive while the counts are used.
    public init(_ storage: UnsafeMutablePointer<Int64>, counts: UnsafeBufferPointer<Int>) {
        base = storage
        for (i, n) in counts.enumerated() { storage[i * Self.stride] = Int64(n) }
    }

    /// One item of `count` chunks (`stride` words of storage).
    public init(_ storage: UnsafeMutablePointer<Int64>, count: Int) {
        base = storage
        storage[0] = Int64(count)
    }

    /// Counts one chunk of `item` as done; true for the call that finished its last chunk.
    @inline(__always)
    public func finish(_ item: Int) -> Bool { lowrank_count_down(base + item * Self.stride) == 0 }
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
