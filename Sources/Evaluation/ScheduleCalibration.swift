import Llama

/// The three forms of FLRC's Table 4: one rank throughout, more rank for the first tokens, or less.
public enum ScheduleForm: String, Sendable, CaseIterable, Codable {
    case `static`, decreasing, increasing
}

/// FLRC's scheduler calibration (App. C): candidate schedules that all reach the same average
/// compression rate on a calibration set, each scored there, the best kept.
///
/// Our candidates (the paper does not list its own): two-step schedules. Decreasing: the prefill and
/// the tokens before a switch token s at fraction `high` of the stored rank, the rest at the
/// fraction that makes the average rate the target. Increasing: the mirror (the first part lower).
/// Static: one fraction. The rate of a schedule depends on how many rows run at each fraction, so
/// the prompt and reply lengths are measured first (the checkpoint at its stored ranks on the same
/// samples) and each candidate's low fraction is solved against them; the rate each candidate then
/// actually reaches is recorded beside its score, since replies change length with the ranks.
///
/// The high fractions are steps *above the static fraction* f_s (the one fraction that reaches the
/// target), not fixed fractions of the stored rank: prompt rows are most of the rows (DialogSum
/// prompts average 262 tokens against replies of 15–55), so a prefill much above f_s leaves the
/// decode rows no rank to pay for it, and fixed anchors (1.0, 0.9, 0.8, 0.7 before 2026-12-01) had
/// no feasible candidate unless the checkpoint stored about the target's rank.
public struct ScheduleCalibration {
    /// Switch tokens, and the steps above the static fraction tried for the high part (decreasing:
    /// the first part, prefill included; increasing: the second).
    public var switchTokens: [Int] = [8, 16, 32, 64]
    public var anchorSteps: [Double] = [0.02, 0.05, 0.1, 0.2]

    public init() {}

    /// The high fractions tried when the static fraction is `staticFraction`: each step above it,
    /// at most 1 (the stored rank), written to 4 decimals, without repeats.
    public func anchorFractions(above staticFraction: Double) -> [Double] {
        var anchors: [Double] = []
        for step in anchorSteps {
            let f = min(1, ((staticFraction + step) * 10_000).rounded() / 10_000)
            if f > staticFraction, !anchors.contains(f) { anchors.append(f) }
        }
        return anchors
    }

    /// Prompt and generated lengths of one calibration generation.
    public struct Lengths: Sendable {
        public var prompt: Int
        public var generated: Int

        public init(prompt: Int, generated: Int) {
            self.prompt = prompt
            self.generated = generated
        }
    }

    /// Projection parameters one row uses at each fraction (a step function of the fraction).
    public struct ParameterCurve {
        let model: LlamaModel
        private var cache: [Double: Int] = [:]

        public init(model: LlamaModel) { self.model = model }

        public mutating func parameters(at fraction: Double) -> Int {
            if let p = cache[fraction] { return p }
            var m = model
            m.setActiveRank(fraction: fraction)
            let p = m.activeProjectionParameters
            cache[fraction] = p
            return p
        }
    }

    /// FLRC's rate of `schedule` over generations of `lengths`: prompt rows at the first fraction,
    /// decode rows (one per generated token but the last) at fraction(t).
    public static func predictedRate(_ schedule: StepRankSchedule, lengths: [Lengths], curve: inout ParameterCurve, denseParameters: Int) -> Double {
        var used = 0.0, rows = 0
        for l in lengths {
            used += Double(l.prompt) * Double(curve.parameters(at: schedule.fraction(forToken: 0)))
            rows += l.prompt
            if l.generated > 1 {
                for t in 1..<l.generated { used += Double(curve.parameters(at: schedule.fraction(forToken: t))) }
                rows += l.generated - 1
            }
        }
        return 1 - used / (Double(max(rows, 1)) * Double(denseParameters))
    }

    /// The candidates of `form` whose predicted rate is `target` (to 1e-4), those that cannot reach
    /// it left out. Static has one candidate.
    public func candidates(_ form: ScheduleForm, target: Double, lengths: [Lengths], curve: inout ParameterCurve, denseParameters: Int)
        -> [StepRankSchedule] {
        func rate(_ s: StepRankSchedule) -> Double { Self.predictedRate(s, lengths: lengths, curve: &curve, denseParameters: denseParameters) }
        // The fraction in (0, upper] at which `make(f)` reaches the target; the rate falls as f grows.
        func solve(upper: Double, _ make: (Double) -> StepRankSchedule?) -> StepRankSchedule? {
            // At its largest fraction the variable part must not already compress more than the target,
            // and at its smallest it must reach it.
            guard let top = make(upper), rate(top) <= target + 1e-4 else { return nil }
            var lo = 1e-3, hi = upper  // the rate at lo is at least the target, at hi at most
            guard let bottom = make(lo), rate(bottom) >= target else { return nil }
            for _ in 0..<40 {
                let mid = (lo + hi) / 2
                guard let s = make(mid) else { return nil }
                if rate(s) >= target { lo = mid } else { hi = mid }
            }
            // Written to 4 decimals, rounded down: a little more compression, never less.
            return make((lo * 10_000).rounded(.down) / 10_000)
        }
        guard let staticSchedule = solve(upper: 1, { try? StepRankSchedule.constant($0) }) else { return [] }
        let anchors = anchorFractions(above: staticSchedule.fraction(forToken: 0))
        switch form {
        case .static:
            return [staticSchedule]
        case .decreasing:
            return switchTokens.flatMap { s in
                anchors.compactMap { high in
                    solve(upper: high) { low in try? StepRankSchedule(steps: [.init(fromToken: 0, fraction: high), .init(fromToken: s, fraction: low)]) }
                }
            }
        case .increasing:
            return switchTokens.flatMap { s in
                anchors.compactMap { high in
                    solve(upper: high) { low in try? StepRankSchedule(steps: [.init(fromToken: 0, fraction: low), .init(fromToken: s, fraction: high)]) }
                }
            }
        }
    }
}
