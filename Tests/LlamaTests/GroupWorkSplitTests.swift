import Testing
import Llama
import TestSupport

/// The cut of a group's decode work between workers, on member lists made up by hand and seeded.
@Suite("Group work split")
struct GroupWorkSplitTests {
    /// The byte shares of every part, checking on the way that the parts tile every member's units
    /// in order (each unit computed once, the part holding unit 0 first).
    static func shares(_ split: GroupWorkSplit, _ members: [GroupWorkSplit.Member]) -> [Int] {
        var shares = [Int](repeating: 0, count: split.parts)
        for (i, m) in members.enumerated() {
            var next = 0
            for p in 0..<split.parts {
                let u = split.units(member: i, part: p)
                if u.isEmpty { continue }
                #expect(u.lowerBound == next, "member \(i) part \(p): \(u) does not start at \(next)")
                next = u.upperBound
                shares[p] += u.count * m.unitBytes
            }
            #expect(next == m.units, "member \(i): \(next) of \(m.units) units computed")
        }
        return shares
    }

    @Test func twoEqualMembersOnTwoWorkersGoOneToEachWorkerWhole() {
        let members = [GroupWorkSplit.Member(units: 251, unitBytes: 4 * (576 + 1536)), GroupWorkSplit.Member(units: 251, unitBytes: 4 * (576 + 1536))]  // gate/up at 40%
        let split = GroupWorkSplit(members: members, parts: 2)
        #expect(split.units(member: 0, part: 0) == 0..<251)
        #expect(split.units(member: 0, part: 1).isEmpty)
        #expect(split.units(member: 1, part: 0).isEmpty)
        #expect(split.units(member: 1, part: 1) == 0..<251)
    }

    @Test func aCutInsideAMemberGivesEachPartEqualBytesToOneUnit() {
        // q/k/v at 40%: ranks 173, 86, 86; a rank reads 576 inputs and the member's outputs.
        let members = [GroupWorkSplit.Member(units: 173, unitBytes: 4 * (576 + 576)), GroupWorkSplit.Member(units: 86, unitBytes: 4 * (576 + 192)), GroupWorkSplit.Member(units: 86, unitBytes: 4 * (576 + 192))]
        let split = GroupWorkSplit(members: members, parts: 2)
        let shares = Self.shares(split, members)
        let total = members.reduce(0) { $0 + $1.units * $1.unitBytes }
        #expect(abs(shares[0] - total / 2) <= 4 * 1152, "\(shares)")
        #expect(split.units(member: 0, part: 0) == 0..<144)  // ⌈(1,325,568 / 2) / 4,608⌉
        #expect(split.units(member: 1, part: 1) == 0..<86 && split.units(member: 2, part: 1) == 0..<86)
    }

    @Test func aCutNearAMemberEdgeMovesToTheEdge() {
        // The even cut falls 150 bytes (1.5 units) into member 1: within 1/32 of a share (6,150 / 32 = 192 bytes).
        let members = [GroupWorkSplit.Member(units: 60, unitBytes: 100), GroupWorkSplit.Member(units: 63, unitBytes: 100)]
        let split = GroupWorkSplit(members: members, parts: 2)
        #expect(split.units(member: 0, part: 0) == 0..<60)
        #expect(split.units(member: 1, part: 0).isEmpty)
        #expect(split.units(member: 1, part: 1) == 0..<63)
        // 400 bytes in is beyond the snap distance (6,400 / 32 = 200): the cut stays inside member 1.
        let farther = GroupWorkSplit(members: [GroupWorkSplit.Member(units: 60, unitBytes: 100), GroupWorkSplit.Member(units: 68, unitBytes: 100)], parts: 2)
        #expect(farther.units(member: 1, part: 0) == 0..<4)
    }

    @Test func seededMemberListsAreTiledAndBalancedForEveryPartCount() {
        var rng = SeededGenerator(seed: 71)
        for _ in 0..<200 {
            let count = 1 + Int(rng.next() % 4)
            let members = (0..<count).map { _ in GroupWorkSplit.Member(units: Int(rng.next() % 400), unitBytes: 1 + Int(rng.next() % 9000)) }
            let total = members.reduce(0) { $0 + $1.units * $1.unitBytes }
            let largest = members.map(\.unitBytes).max()!
            for parts in 1...8 {
                let split = GroupWorkSplit(members: members, parts: parts)
                let shares = Self.shares(split, members)
                // Each of a share's two cuts moves by at most the snap (1/32 of a share) or one unit.
                for s in shares { #expect(abs(s - total / parts) <= 2 * (total / (32 * parts) + largest) + parts, "\(members) in \(parts): \(shares)") }
            }
        }
    }
}
