import CKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A persistent pool for the many short parallel regions of decoding (about 240 per token): helper
/// threads spin briefly on an atomic, then sleep on a condition variable, so starting a region costs
/// well under a microsecond instead of a thread wake-up. The calling thread takes part in the work.
///
/// Work items are claimed from one atomic word holding (job generation << 32 | next index), so a
/// helper that is late from an earlier job can never claim an item of a newer one.
final class WorkerPool: @unchecked Sendable {
    let helpers: Int
    private let claim = Atomic<UInt64>(0)
    private let pending = Atomic<Int>(0)
    private let generation = Atomic<UInt32>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private var iterations = 0
    private var job: ((Int) -> Void)?
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    /// Spins before sleeping (~50 µs): longer than the gap between regions while decoding.
    private static let spinLimit = 20_000

    init(helpers: Int) {
        self.helpers = helpers
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for _ in 0..<helpers {
            let box = UncheckedSendableBox(Unmanaged.passUnretained(self))
            var thread = pthread_t()
            let context = UnsafeMutableRawPointer(Unmanaged.passRetained(WorkerStart(box.value.takeUnretainedValue())).toOpaque())
            pthread_create(&thread, nil, { raw in
                let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                start.pool.helperLoop()
                return nil
            }, context)
            pthread_detach(thread)
        }
    }

    /// Runs `body(i)` for every i in 0..<count across the helpers and the calling thread; returns
    /// when all are done. A call made while the pool is busy (nested) runs sequentially.
    func run(_ count: Int, _ body: (Int) -> Void) {
        guard count > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            iterations = count
            pending.store(count, ordering: .sequentiallyConsistent)
            let next = generation.load(ordering: .relaxed) &+ 1
            claim.store(UInt64(next) << 32, ordering: .sequentiallyConsistent)
            generation.store(next, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
            }
            work(generation: next)
            while pending.load(ordering: .acquiring) > 0 { spinPause() }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func work(generation g: UInt32) {
        while true {
            var current = claim.load(ordering: .acquiring)
            var index = 0
            while true {
                guard UInt32(current >> 32) == g else { return }
                index = Int(current & 0xFFFF_FFFF)
                guard index < iterations else { return }
                let (exchanged, original) = claim.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
                if exchanged { break }
                current = original
            }
            job!(index)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func helperLoop() {
        var seen: UInt32 = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinLimit {
                    spinPause()
                    continue
                }
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(condition, mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            work(generation: seen)
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    init(_ pool: WorkerPool) { self.pool = pool }
}

@inline(__always)
func spinPause() {
    #if arch(x86_64)
    _mm_pause_shim()
    #endif
}
