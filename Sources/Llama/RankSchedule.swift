/// How much of its stored rank every low-rank module runs at while a given token is generated
/// (FLRC's progressive low-rank decoding, §3.2). Open: step schedules now, others later.
public protocol RankSchedule: Sendable {
    /// The fraction, in (0, 1], of every low-rank module's stored rank used while producing
    /// generated token `t` (t = 0 is produced by the prefill, which runs at this fraction too).
    func fraction(forToken t: Int) -> Double
}

/// Which way a schedule moves over the generated tokens (FLRC Table 4's three forms).
public enum ScheduleDirection: String, Sendable, Codable {
    case `static`, decreasing, increasing, mixed
}

/// A step function: `steps[i].fraction` from generated token `steps[i].fromToken` on.
///
/// Per module this is FLRC's Eq. 3, r(t) = round(α/S · R(t)), with R(t) = fraction(t) · R: the
/// stored ranks of a Fisher checkpoint are round(α/S · R), so each module runs ⌈fraction · r⌉ of
/// its stored r (equal up to rounding), and any other allocation keeps its own proportions.
/// Matrices kept dense stay dense.
public struct StepRankSchedule: RankSchedule, Equatable {
    public struct Step: Sendable, Equatable, Codable {
        public var fromToken: Int
        public var fraction: Double

        public init(fromToken: Int, fraction: Double) {
            self.fromToken = fromToken
            self.fraction = fraction
        }

        enum CodingKeys: String, CodingKey {
            case fromToken = "from_token"
            case fraction
        }
    }

    public let steps: [Step]

    /// Steps must start at token 0, in increasing token order, with fractions in (0, 1].
    public init(steps: [Step]) throws(RankScheduleError) {
        guard let first = steps.first else { throw .invalid(field: "steps", reason: "needs at least one step") }
        guard first.fromToken == 0 else { throw .invalid(field: "steps[0].from_token", reason: "is \(first.fromToken); the first step starts at token 0") }
        for (i, step) in steps.enumerated() {
            guard step.fraction > 0 && step.fraction <= 1 && step.fraction.isFinite else {
                throw .invalid(field: "steps[\(i)].fraction", reason: "is \(step.fraction); a fraction of the stored rank is in (0, 1]")
            }
            if i > 0 && step.fromToken <= steps[i - 1].fromToken {
                throw .invalid(field: "steps[\(i)].from_token", reason: "is \(step.fromToken), not after the previous step's \(steps[i - 1].fromToken)")
            }
        }
        self.steps = steps
    }

    /// One fraction for every token (static rank decoding).
    public static func constant(_ fraction: Double) throws(RankScheduleError) -> StepRankSchedule {
        try StepRankSchedule(steps: [Step(fromToken: 0, fraction: fraction)])
    }

    public func fraction(forToken t: Int) -> Double {
        var f = steps[0].fraction
        for step in steps where step.fromToken <= t { f = step.fraction }
        return f
    }

    public var direction: ScheduleDirection {
        let f = steps.map(\.fraction)
        if Set(f).count == 1 { return .static }
        if zip(f, f.dropFirst()).allSatisfy({ $0 >= $1 }) { return .decreasing }
        if zip(f, f.dropFirst()).allSatisfy({ $0 <= $1 }) { return .increasing }
        return .mixed
    }
}

public enum RankScheduleError: Error, CustomStringConvertible, Equatable {
    case invalid(field: String, reason: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "rank schedule: \(field) \(reason)"
        case .unreadable(let path, let reason): "rank schedule \(path): \(reason)"
        }
    }
}
