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

    /// A context that grows makes every token slower without any change of load: few extra probes,
    /// and the quiet machine keeps both workers. Returns the probe tokens and the final setting.
    static func decodeGrowing(tokens: Int, growth: Double) -> (probes: Int, primary: Int) {
        var governor = DecodeThreadGovernor(workers: 2)
        var probes = 0
        for t in 0..<tokens {
            let workers = governor.workersForNextToken()
            if workers == 1 { probes += 1 }
            let slower = 1 + growth * Double(t) / Double(tokens)
            governor.record(seconds: (workers == 2 ? 0.010 : 0.017) * slower)
        }
        return (probes, governor.primary)
    }

    @Test func aSlowlyGrowingContextCostsFewProbes() {
        // 60% slower at the end: 7 periodic probes of 2 tokens; the slowdown rule never fires, since
        // no 1,024-token period slows by 25%.
        let slow = Self.decodeGrowing(tokens: 4000, growth: 0.6)
        #expect(slow.primary == 2)
        #expect(slow.probes <= 16, "\(slow.probes) probe tokens")
        // 4 times slower at the end (attention over a long cache): 2 probes called by the slowdown
        // rule on top of the periodic ones (22 tokens); a rule firing at 10% would make 40.
        let steep = Self.decodeGrowing(tokens: 4000, growth: 3.0)
        #expect(steep.primary == 2)
        #expect(steep.probes <= 24, "\(steep.probes) probe tokens")
    }

    @Test func oneWorkerNeverProbes() {
        var governor = DecodeThreadGovernor(workers: 1)
        #expect(Set(Self.run(&governor, tokens: 200) { _ in 0.01 }) == [1])
    }
}
