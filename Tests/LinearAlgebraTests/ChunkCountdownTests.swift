import Testing
import Dispatch
import Synchronization
import LinearAlgebra

/// `ChunkCountdowns`: a decode region counts each low-rank member's finished chunks, and the worker
/// that finishes a member's last chunk adds its partial outputs. Exactly one call per member may
/// answer true, whichever thread makes it, and only after all the member's chunks.
@Suite("Chunk countdowns")
struct ChunkCountdownTests {
    @Test func onlyTheCallThatFinishesAnItemsLastChunkAnswersTrue() {
        let counts = [3, 1, 5]
        var storage = [Int64](repeating: 0, count: counts.count * ChunkCountdowns.stride)
        storage.withUnsafeMutableBufferPointer { words in
            counts.withUnsafeBufferPointer { c in
                let countdowns = ChunkCountdowns(words.baseAddress!, counts: c)
                for (item, n) in counts.enumerated() {
                    let answers = (0..<n).map { _ in countdowns.finish(item) }
                    #expect(answers == Array(repeating: false, count: n - 1) + [true], "item \(item) of \(n) chunks")
                }
            }
        }
        var one = [Int64](repeating: 0, count: ChunkCountdowns.stride)
        one.withUnsafeMutableBufferPointer { words in
            let countdown = ChunkCountdowns(words.baseAddress!, count: 2)
            #expect(countdown.finish(0) == false)
            #expect(countdown.finish(0) == true)
        }
    }

    @Test func concurrentFinishesAnswerTrueOncePerItemAfterEveryChunkOfIt() {
        let items = 64, chunks = 40, threads = 4
        var storage = [Int64](repeating: 0, count: items * ChunkCountdowns.stride)
        let counts = [Int](repeating: chunks, count: items)
        // Each chunk marks itself (a plain store) before counting down; the finisher must see
        // every mark of its item (the countdown's acquire-release publishes them).
        let marks = UnsafeMutablePointer<Int>.allocate(capacity: items * chunks)
        marks.initialize(repeating: 0, count: items * chunks)
        defer { marks.deallocate() }
        let winners = Mutex<[Int: Int]>([:])
        storage.withUnsafeMutableBufferPointer { words in
            counts.withUnsafeBufferPointer { c in
                let countdowns = ChunkCountdowns(words.baseAddress!, counts: c)
                let box = UncheckedSendableBox(marks)  // each chunk writes its own mark
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    let marks = box.value
                    for i in stride(from: t, to: items * chunks, by: threads) {
                        let item = i % items, chunk = i / items
                        marks[item * chunks + chunk] = 1
                        if countdowns.finish(item) {
                            let seen = (0..<chunks).reduce(0) { $0 + marks[item * chunks + $1] }
                            winners.withLock { $0[item, default: 0] += seen == chunks ? 1 : 1000 }
                        }
                    }
                }
            }
        }
        let result = winners.withLock { $0 }
        #expect(result.count == items)
        #expect(result.values.allSatisfy { $0 == 1 }, "one finisher per item, after all its chunks: \(result.filter { $0.value != 1 })")
    }
}
