import Testing
import Synchronization
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#endif

/// `Parallel.forEachStealing`: the one-row products (the output head) claim chunks of their rows
/// from per-worker segments and take the end of a slower worker's segment.
@Suite("Stealing split")
struct StealingSplitTests {
    /// Runs a split and returns the chunks it ran with the thread that ran each, in run order.
    static func record(count: Int, chunk: Int, _ delay: (Range<Int>) -> Void = { _ in }) -> [(rows: Range<Int>, thread: UInt)] {
        let ran = Mutex<[(rows: Range<Int>, thread: UInt)]>([])
        Parallel.forEachStealing(count, minimum: 1, chunk: chunk) { rows in
            delay(rows)
            let me = UInt(pthread_self())
            ran.withLock { $0.append((rows, me)) }
        }
        return ran.withLock { $0 }
    }

    @Test func everyItemRunsOnceInNonEmptyChunksNoLargerThanAsked() {
        for count in [1, 2, 7, 128, 1000, 49_152] {
            for chunk in [1, 8, 37, 1000, 100_000] {
                let chunks = Self.record(count: count, chunk: chunk).map(\.rows).sorted { $0.lowerBound < $1.lowerBound }
                var next = 0
                for rows in chunks {
                    #expect(!rows.isEmpty && rows.count <= chunk, "count \(count), chunk \(chunk): \(rows)")
                    #expect(rows.lowerBound == next, "count \(count), chunk \(chunk): \(rows) after \(next) (an item skipped or run twice)")
                    next = rows.upperBound
                }
                #expect(next == count, "count \(count), chunk \(chunk): \(next) items run")
            }
        }
    }

    /// Chunks of the first half are slow: the worker of the second half finishes its own segment
    /// and takes the slow segment's last chunks, from the back. Needs two workers; a region started
    /// while another test holds the worker pool runs on one thread, so up to five attempts are made.
    @Test(.enabled(if: Parallel.activeWorkers >= 2, "one worker has nobody to steal from"))
    func aWorkerThatFinishesItsSegmentTakesTheEndOfASlowerOne() {
        let count = 64, half = 32
        var stolen = false
        for _ in 0..<5 where !stolen {
            let ran = Self.record(count: count, chunk: 1) { rows in
                if rows.lowerBound < half { usleep(2_000) }
            }
            let slowOwner = ran.first { $0.rows.lowerBound == 0 }!.thread
            let taken = ran.filter { $0.rows.lowerBound < half && $0.thread != slowOwner }.map(\.rows.lowerBound)
            // Taken from the back: the chunks another worker ran are the segment's last ones.
            #expect(taken.sorted() == Array((half - taken.count)..<half), "taken: \(taken.sorted())")
            // The slow segment's owner ran its chunks from the front, in order.
            let own = ran.filter { $0.rows.lowerBound < half && $0.thread == slowOwner }.map(\.rows.lowerBound)
            #expect(own == Array(0..<own.count), "owner ran: \(own)")
            stolen = !taken.isEmpty
        }
        #expect(stolen, "no chunk of the slow segment was taken by another worker in five attempts")
    }
}
