import Testing
import Llama
import TestSupport

/// The chunks of a group's decode work that the workers claim, on member lists made up by hand and seeded.
@Suite("Group chunks")
struct GroupChunksTests {
    /// Checks that the chunks tile every member's units in order, dense chunks writing the output
    /// (slot 0) and each low-rank member's chunks writing slots 0, 1, … in order, and returns each
    /// chunk's bytes.
    static func chunkBytes(_ plan: GroupChunks, _ members: [GroupChunks.Member]) -> [Int] {
        var next = [Int](repeating: 0, count: members.count), slot = next
        var previous = 0
        for c in plan.chunks {
            #expect(c.member >= previous, "chunks go member by member")
            previous = c.member
            #expect(c.units.lowerBound == next[c.member] && !c.units.isEmpty, "member \(c.member): \(c.units) after \(next[c.member])")
            next[c.member] = c.units.upperBound
            #expect(c.slot == (members[c.member].lowRank ? slot[c.member] : 0))
            slot[c.member] += 1
        }
        for (i, m) in members.enumerated() {
            #expect(next[i] == m.units, "member \(i): \(next[i]) of \(m.units) units")
            #expect(plan.slots[i] == (m.lowRank ? max(1, slot[i]) : 1))
        }
        return plan.chunks.map { $0.units.count * max(1, members[$0.member].unitBytes) }
    }

    @Test func gateAndUpAtFortyPercentAreEightChunksOfWholeSixteens() {
        // SVD-LLM 40% gate/up: rank 251; a rank reads 576 inputs and 1536 outputs in Float32.
        let members = [GroupChunks.Member(units: 251, unitBytes: 4 * (576 + 1536), lowRank: true),
                       GroupChunks.Member(units: 251, unitBytes: 4 * (576 + 1536), lowRank: true)]
        let plan = GroupChunks(members: members)
        _ = Self.chunkBytes(plan, members)
        // ⌈251 / 8⌉ = 32 ranks a chunk: seven of 32 and one of 27 per member.
        #expect(plan.chunks.filter { $0.member == 0 }.map(\.units) == [0..<32, 32..<64, 64..<96, 96..<128, 128..<160, 160..<192, 192..<224, 224..<251])
        #expect(plan.slots == [8, 8])
        #expect(plan.boundaries(parts: 2) == [0, 8, 16])
    }

    @Test func aLowRankMemberIsCutIntoQuartersOf64To256KilobytesInWholeSixteens() {
        // SVD-LLM 20% in f16, q: rank 230, a rank reads (576 + 576) halves, 530 KB: quarters of
        // 132 KB, ⌈230 / 4⌉ = 58 rounded up to 64 ranks.
        let q = GroupChunks.Member(units: 230, unitBytes: 2 * (576 + 576), lowRank: true)
        #expect(GroupChunks(members: [q]).chunks.map(\.units) == [0..<64, 64..<128, 128..<192, 192..<230])
        // k: rank 115 of (576 + 192) halves, 177 KB: a quarter is under 64 KB, so 2 chunks of 64 KB or more.
        let k = GroupChunks.Member(units: 115, unitBytes: 2 * (576 + 192), lowRank: true)
        #expect(GroupChunks(members: [k]).chunks.map(\.units) == [0..<64, 64..<115])
        // gate: rank 335 of (576 + 1536) halves, 1.4 MB: a quarter is over 256 KB, so as many
        // chunks as 256 KB fits, 5 (⌈335 / 5⌉ = 67 ranks, rounded up to 80).
        let gate = GroupChunks.Member(units: 335, unitBytes: 2 * (576 + 1536), lowRank: true)
        #expect(GroupChunks(members: [gate]).chunks.map(\.units) == [0..<80, 80..<160, 160..<240, 240..<320, 320..<335])
        // Under 64 KB: one chunk, the member's output written directly.
        #expect(GroupChunks(members: [GroupChunks.Member(units: 20, unitBytes: 2304, lowRank: true)]).slots == [1])
        // Any size: every chunk but a member's last holds at least 64 KB, and at most
        // `maximumLowRankChunks` per member; a member below that many times 256 KB has none of more
        // than 256 KB, give or take a quarter (the count is rounded down) and 16 ranks (the size is
        // rounded up to them).
        var rng = SeededGenerator(seed: 73)
        for _ in 0..<300 {
            let m = GroupChunks.Member(units: 1 + Int(rng.next() % 3000), unitBytes: 1 + Int(rng.next() % 40000), lowRank: true)
            let plan = GroupChunks(members: [m])
            let bytes = Self.chunkBytes(plan, [m])
            #expect(plan.slots[0] <= GroupChunks.maximumLowRankChunks)
            for (c, b) in zip(plan.chunks.dropLast(), bytes) {
                #expect(b >= GroupChunks.lowRankChunkBytes.lowerBound, "\(m): chunk \(c.units) of \(b) bytes")
            }
            if m.units * m.unitBytes < GroupChunks.maximumLowRankChunks * GroupChunks.lowRankChunkBytes.upperBound {
                #expect(bytes[0] <= 5 * GroupChunks.lowRankChunkBytes.upperBound / 4 + 16 * m.unitBytes, "\(m): a chunk of \(bytes[0]) bytes")
            }
        }
    }

    @Test func aDenseMemberIsCutIntoChunksOfAtMostTheChunkBytes() {
        // Dense q in Float32: a row of 576 inputs is 2,304 bytes, 28 rows fit 64 KB.
        let members = [GroupChunks.Member(units: 576, unitBytes: 2304, lowRank: false), GroupChunks.Member(units: 192, unitBytes: 2304, lowRank: false)]
        let plan = GroupChunks(members: members)
        let bytes = Self.chunkBytes(plan, members)
        #expect(bytes.allSatisfy { $0 <= GroupChunks.chunkBytes })
        #expect(plan.chunks.first!.units == 0..<28 && plan.slots == [1, 1])
        // Half-precision rows (1,152 bytes): 56 fit, cut to 48, a multiple of the kernels' 16 rows.
        #expect(GroupChunks(members: [GroupChunks.Member(units: 576, unitBytes: 1152, lowRank: false)]).chunks.first!.units == 0..<48)
    }

    @Test func seededMemberListsAreTiledAndEveryPartCountGetsEqualBytesToOneChunk() {
        var rng = SeededGenerator(seed: 71)
        for _ in 0..<200 {
            let count = 1 + Int(rng.next() % 4)
            let members = (0..<count).map { _ in
                GroupChunks.Member(units: Int(rng.next() % 400), unitBytes: 1 + Int(rng.next() % 9000), lowRank: rng.next() % 2 == 0)
            }
            let plan = GroupChunks(members: members)
            let bytes = Self.chunkBytes(plan, members)
            for (i, m) in members.enumerated() where m.lowRank {
                #expect(plan.slots[i] <= GroupChunks.maximumLowRankChunks, "\(m): \(plan.slots[i]) chunks")
            }
            for (c, b) in zip(plan.chunks, bytes) where !members[c.member].lowRank {
                #expect(b <= max(GroupChunks.chunkBytes, members[c.member].unitBytes), "dense chunk of \(b) bytes")
            }
            let total = bytes.reduce(0, +), largest = bytes.max() ?? 0
            for parts in 1...10 {
                let b = plan.boundaries(parts: parts)
                #expect(b.count == parts + 1 && b.first == 0 && b.last == plan.chunks.count && zip(b, b.dropFirst()).allSatisfy { $0 <= $1 })
                for p in 0..<parts {
                    let share = bytes[b[p]..<b[p + 1]].reduce(0, +)
                    #expect(abs(share - total / parts) <= largest + parts, "\(members) in \(parts): part \(p) has \(share) of \(total)")
                }
            }
        }
    }
}
