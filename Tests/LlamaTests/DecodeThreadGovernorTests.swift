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

    /// The trace that asked for it (docs/BENCHMARKS.md, 2026-12-04): the first probe of one worker
    /// lost narrowly against two workers' first tokens, then two workers became 40% slower than
    /// one, and the governor kept two workers until the next probe 128 tokens later.
    @Test func aSlowdownOfTheSettingInUseCallsAProbeAtOnce() {
        var governor = DecodeThreadGovernor(workers: 2)
        let early = Self.run(&governor, tokens: 6) { $0 == 2 ? 0.025 : 0.023 }
        #expect(early.filter { $0 == 1 }.count == 2)  // one probe, lost
        #expect(governor.primary == 2)
        _ = Self.run(&governor, tokens: 12) { $0 == 2 ? 0.036 : 0.026 }  // another process took a core
        #expect(governor.primary == 1)
    }

    /// A context that grows makes every token slower without any change of load: one extra probe
    /// per 25% of slowdown at most, and the quiet machine keeps both workers.
    @Test func aSlowlyGrowingContextCostsFewProbes() {
        var governor = DecodeThreadGovernor(workers: 2)
        var probes = 0
        for t in 0..<4000 {
            let workers = governor.workersForNextToken()
            if workers == 1 { probes += 1 }
            let growth = 1 + 0.6 * Double(t) / 4000  // 60% slower at the end
            governor.record(seconds: (workers == 2 ? 0.010 : 0.017) * growth)
        }
        #expect(governor.primary == 2)
        #expect(probes <= 16, "\(probes) probe tokens")  // 6 periodic probes and 2 slowdowns, 2 tokens each
    }

    @Test func oneWorkerNeverProbes() {
        var governor = DecodeThreadGovernor(workers: 1)
        #expect(Set(Self.run(&governor, tokens: 200) { _ in 0.01 }) == [1])
    }
}
