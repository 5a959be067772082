import Testing
import Dispatch
import Synchronization
import LinearAlgebra

/// `Parallel.forEachStealing` and its claim state `StealingSegments`: the one-row products (the
/// output head) claim chunks of their rows from per-worker segments and take the end of a slower
/// worker's segment.
@Suite("Stealing split")
struct StealingSplitTests {
    @Test func everyItemRunsOnceInNonEmptyChunksNoLargerThanAsked() {
        for count in [1, 2, 7, 128, 1000, 49_152] {
            for chunk in [1, 8, 37, 1000, 100_000] {
                let ran = Mutex<[Range<Int>]>([])
                Parallel.forEachStealing(count, minimum: 1, chunk: chunk) { rows in ran.withLock { $0.append(rows) } }
                var next = 0
                for rows in ran.withLock({ $0 }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
                    #expect(!rows.isEmpty && rows.count <= chunk, "count \(count), chunk \(chunk): \(rows)")
                    #expect(rows.lowerBound == next, "count \(count), chunk \(chunk): \(rows) after \(next) (an item skipped or run twice)")
                    next = rows.upperBound
                }
                #expect(next == count, "count \(count), chunk \(chunk): \(next) items run")
            }
        }
    }

    /// Two parts over chunks 0..<10 (segments 0..<5 and 5..<10), claims made in a fixed order on
    /// one thread: part 1 runs its own segment, then takes part 0's chunks from the back while
    /// part 0 keeps taking its own from the front.
    @Test func aPartThatFinishesItsSegmentTakesTheLastChunksOfTheOther() {
        var storage = [UInt64](repeating: 0, count: 2 * StealingSegments.stride)
        storage.withUnsafeMutableBufferPointer { words in
            let segments = StealingSegments(words.baseAddress!, parts: 2, chunks: 10)
            #expect(segments.next(for: 0) == 0)
            #expect((0..<5).map { _ in segments.next(for: 1) } == [5, 6, 7, 8, 9])
            #expect(segments.next(for: 1) == 4)
            #expect(segments.next(for: 0) == 1)
            #expect(segments.next(for: 1) == 3)
            #expect(segments.next(for: 0) == 2)
            #expect(segments.next(for: 0) == nil && segments.next(for: 1) == nil)
        }
    }

    /// Of three parts, one that runs out steals from the segment with the most chunks left.
    @Test func aThiefTakesFromTheSegmentWithTheMostLeft() {
        var storage = [UInt64](repeating: 0, count: 3 * StealingSegments.stride)
        storage.withUnsafeMutableBufferPointer { words in
            let segments = StealingSegments(words.baseAddress!, parts: 3, chunks: 9)  // 0..<3, 3..<6, 6..<9
            for _ in 0..<2 { _ = segments.next(for: 0) }  // part 0 has 1 left
            for _ in 0..<3 { _ = segments.next(for: 2) }  // part 2 has none, part 1 has 3
            #expect(segments.next(for: 2) == 5)
        }
    }

    /// Threads claiming at once from every part: each chunk is returned exactly once.
    @Test func concurrentClaimsReturnEachChunkOnce() {
        let parts = 4, chunks = 200_000
        var storage = [UInt64](repeating: 0, count: parts * StealingSegments.stride)
        let claimed = storage.withUnsafeMutableBufferPointer { words in
            let segments = StealingSegments(words.baseAddress!, parts: parts, chunks: chunks)
            let all = Mutex<[Int]>([])
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                var mine: [Int] = []
                while let c = segments.next(for: p) { mine.append(c) }
                all.withLock { $0 += mine }
            }
            return all.withLock { $0 }
        }
        #expect(claimed.count == chunks)
        #expect(claimed.sorted() == Array(0..<chunks))
    }
}
