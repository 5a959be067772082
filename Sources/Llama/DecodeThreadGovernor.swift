/// Chooses, by measuring, how many workers decoding uses: all of them, or one.
///
/// Decoding is a chain of short parallel regions (about 150 per token); each waits for its
/// slowest worker. When another process keeps a core busy, a worker is descheduled for whole
/// scheduler slices and every region waits for it: measured on a loaded machine, two threads
/// decoded at 12 tokens/s and one at 21 (issue 11). So the generator times each token and, now
/// and then, decodes one token with the other setting (a probe); if the probe is more than 10%
/// faster than the running average, the setting switches. Probes become rarer while they keep
/// losing (every 64 tokens, doubling to every 1024), so a quiet machine loses at most about 1%
/// of its tokens to probing. A `Generator` keeps its governor across generations.
///
/// The load can change between probes: a probe that lost narrowly once kept two workers for
/// the next 128 tokens while another process made each of them 40% slower than one worker
/// (docs/BENCHMARKS.md, 2026-12-04). So when the running average of the setting in use becomes
/// more than 25% slower than it was when the last probe ended, the governor probes at once and
/// starts the periods again: a change of load is what a probe is for. A context that grows makes
/// tokens slower too (attention reads more of the cache), but slowly: one extra probe per 25%.
public struct DecodeThreadGovernor: Sendable {
    public let workers: Int
    /// The setting in use between probes, and the one probed.
    public private(set) var primary: Int
    private var other: Int
    /// Exponential average of the seconds per token with `primary`.
    private var average: Double?
    /// `average` when the last probe ended: the baseline a slowdown is measured against.
    private var baseline: Double?
    private var untilProbe = Self.firstProbe
    private var period = Self.basePeriod
    private var probing = false
    /// Probe tokens measured so far in this probe, and the slowest of them.
    private var probeTokens = 0
    private var probeSeconds = 0.0
    /// Tokens per probe: the slower one decides, so one lucky token does not switch the setting.
    static let probeLength = 2

    static let firstProbe = 4
    static let basePeriod = 64
    static let longestPeriod = 1024
    /// A probe must be this much faster to switch.
    static let margin = 0.9
    /// The setting in use slowing to this multiple of its baseline calls a probe at once.
    static let slowdown = 1.25

    public init(workers: Int) {
        self.workers = max(1, workers)
        primary = self.workers
        other = 1
    }

    /// Workers for the next token.
    public mutating func workersForNextToken() -> Int {
        guard workers > 1 else { return 1 }
        if untilProbe <= 0, average != nil {
            probing = true
            return other
        }
        return primary
    }

    /// The seconds the last token took, with the setting `workersForNextToken` gave.
    public mutating func record(seconds: Double) {
        guard workers > 1, seconds.isFinite, seconds > 0 else { return }
        if probing {
            probeTokens += 1
            probeSeconds = max(probeSeconds, seconds)
            guard probeTokens >= Self.probeLength else { return }
            let seconds = probeSeconds
            probing = false
            probeTokens = 0
            probeSeconds = 0
            if let average, seconds < Self.margin * average {
                swap(&primary, &other)
                self.average = seconds
                period = Self.basePeriod
            } else {
                period = min(2 * period, Self.longestPeriod)
            }
            untilProbe = period
            baseline = self.average
            return
        }
        average = average.map { 0.75 * $0 + 0.25 * seconds } ?? seconds
        untilProbe -= 1
        if let baseline, let average, average > Self.slowdown * baseline {
            untilProbe = 0
            period = Self.basePeriod
        }
    }
}
