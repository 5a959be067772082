import Testing
import Llama

/// The governor against token timings made up for a quiet machine and a loaded one.
@Suite("Decode thread governor")
struct DecodeThreadGovernorTests {
    /// Decodes `tokens` tokens whose time depends on the worker count; returns the settings used.
    static func run(_ governor: inout DecodeThreadGovernor, tokens: Int, seconds: (Int) -> Double) -> [Int] {
        var used: [Int] = []
        for _ in 0..<tokens {
            let workers = governor.workersForNextToken()
            used.append(workers)
            governor.record(seconds: seconds(workers))
        }
        return used
    }

    @Test func aQuietMachineKeepsEveryWorkerAndProbesRarely() {
        var governor = DecodeThreadGovernor(workers: 2)
        let used = Self.run(&governor, tokens: 2000) { $0 == 2 ? 0.010 : 0.017 }
        #expect(governor.primary == 2)
        let probes = used.filter { $0 == 1 }.count
        #expect(probes >= 4 && probes <= 12, "\(probes) probe tokens")  // two tokens per probe, probes ever rarer
    }

    @Test func aBusyCoreMovesDecodingToOneWorkerAndBackWhenItIsFree() {
        var governor = DecodeThreadGovernor(workers: 2)
        _ = Self.run(&governor, tokens: 20) { $0 == 2 ? 0.080 : 0.048 }  // two threads thrash
        #expect(governor.primary == 1)
        let loaded = Self.run(&governor, tokens: 500) { $0 == 2 ? 0.080 : 0.048 }
        #expect(loaded.filter { $0 == 1 }.count > 490)
        _ = Self.run(&governor, tokens: 1100) { $0 == 2 ? 0.010 : 0.017 }  // the other process ended
        #expect(governor.primary == 2)
    }

    @Test func oneWorkerNeverProbes() {
        var governor = DecodeThreadGovernor(workers: 1)
        #expect(Set(Self.run(&governor, tokens: 200) { _ in 0.01 }) == [1])
    }
}
